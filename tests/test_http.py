"""The openai backend's HTTP client against a real local HTTP server that misbehaves on purpose: 429 with
Retry-After, 5xx, connections dropped before an answer, answers stalled past the timeout, wrong requests; and the
bound on requests in flight. (The whole backend against a real vLLM server through such faults, a run broken off
and resumed with nothing lost: tests/test_install.py.)"""

from __future__ import annotations

import json
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from conftest import QuietServer

from ladder.backends.http import MAX_RETRY_AFTER_S, Client, ServerError, retry_after


class FaultServer:
    """Answers each request by the next fault in ``script`` (then ``ok`` for ever): ``ok`` (200, JSON echo),
    ``429:<retry-after>``, ``503``, ``400``, ``drop`` (close the socket without a word), ``stall`` (answer after
    ``stall_s``), ``text`` (200, a plain-text body)."""

    def __init__(self, script: list[str], stall_s: float = 1.5, hold_s: float = 0.0):
        self.script = list(script)
        self.stall_s, self.hold_s = stall_s, hold_s
        self.seen: list[str] = []
        self.ports: set[int] = set()  # the client's ends: one per connection it opened
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._answer()

            def do_POST(self):
                self._answer()

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    fault = server.script.pop(0) if server.script else "ok"
                    server.seen.append(fault)
                    server.ports.add(self.client_address[1])
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    if server.hold_s:
                        time.sleep(server.hold_s)
                    if fault == "drop":
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    if fault == "stall":
                        time.sleep(server.stall_s)
                    if fault.startswith("429"):
                        after = fault.split(":", 1)[1]
                        self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": after})
                    elif fault in ("503", "400"):
                        self._send(int(fault), {"error": {"message": f"scripted {fault}", "type": "x"}})
                    elif fault == "text":
                        self._send(200, None, raw=b"Success: adapter loaded")
                    else:
                        self._send(200, {"path": self.path, "body": json.loads(body) if body else None})
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _send(self, status, payload, headers=None, raw=None):
                data = raw if raw is not None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if raw is None else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = QuietServer.running(Handler)
        self.url = self.httpd.url

    def close(self):
        self.httpd.stop()


@pytest.fixture
def serve():
    servers = []

    def make(script, **options):
        servers.append(FaultServer(script, **options))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def client(url: str, timeout_s: float = 5, retries: int = 4, concurrency: int = 4) -> Client:
    return Client(url, None, timeout_s, retries, concurrency, sleep=lambda _s: None)


def test_a_429_is_retried_after_the_wait_the_server_asks_for(serve):
    server = serve(["429:7", "429:2", "ok"])
    c = client(server.url)
    answer = c.call("POST", "/completions", {"prompt": [1, 2]})
    assert answer == {"path": "/v1/completions", "body": {"prompt": [1, 2]}}
    assert server.seen == ["429:7", "429:2", "ok"]
    assert c.waits == [7.0, 2.0]  # Retry-After honoured, not the backoff's 0.25-1 s


def test_retry_after_as_an_http_date_and_its_cap():
    now = time.time()
    dated = httpx.Response(429, headers={"Retry-After": formatdate(now + 30, usegmt=True)})
    assert 28 <= retry_after(dated, now) <= 31
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after(httpx.Response(429)) is None


def test_a_long_retry_after_is_capped(serve):
    server = serve(["429:99999", "ok"])
    c = client(server.url)
    c.call("GET", "/models")
    assert c.waits == [MAX_RETRY_AFTER_S]


def test_dropped_connections_and_5xx_are_retried_with_growing_waits(serve):
    server = serve(["drop", "503", "drop", "ok"])
    c = client(server.url)
    assert c.call("GET", "/models")["path"] == "/v1/models"
    assert server.seen == ["drop", "503", "drop", "ok"]
    assert len(c.waits) == 3
    # jittered exponential backoff: each wait in [d/2, d] for d = 0.5, 1, 2
    for wait, d in zip(c.waits, (0.5, 1.0, 2.0)):
        assert d / 2 <= wait <= d


def test_an_answer_stalled_past_the_timeout_is_asked_again(serve):
    server = serve(["stall", "ok"], stall_s=1.5)
    c = client(server.url, timeout_s=0.5)
    started = time.monotonic()
    assert c.call("POST", "/completions", {"n": 1})["body"] == {"n": 1}
    assert server.seen == ["stall", "ok"]
    assert time.monotonic() - started < 1.5  # the stalled answer was not waited for


def test_retries_exhausted_say_what_happened_in_one_line(serve):
    server = serve(["503"] * 3)
    with pytest.raises(ServerError, match=r"HTTP 503: scripted 503") as failed:
        client(server.url, retries=2).call("POST", "/completions", {})
    assert failed.value.status == 503 and "\n" not in str(failed.value)
    assert len(server.seen) == 3
    dropped = serve(["drop"] * 2)
    with pytest.raises(ServerError, match=r"no answer after 2 tries \(RemoteProtocolError"):
        client(dropped.url, retries=1).call("GET", "/models")
    with pytest.raises(ServerError, match=r"no answer after 1 tries \(ConnectError"):
        client("http://127.0.0.1:9/v1", retries=0).call("GET", "/models")


def test_a_wrong_request_is_not_retried(serve):
    server = serve(["400", "ok"])
    with pytest.raises(ServerError, match="HTTP 400: scripted 400") as failed:
        client(server.url).call("POST", "/completions", {})
    assert failed.value.status == 400 and server.seen == ["400"]


def test_a_plain_text_answer_and_the_root_path(serve):
    server = serve(["text", "ok"])
    c = client(server.url)
    assert c.call("POST", "/load_lora_adapter", {"lora_name": "x"}) == {"text": "Success: adapter loaded"}
    assert c.call("GET", "/version", root=True)["path"] == "/version"


def test_requests_in_flight_are_bounded_and_connections_reused(serve):
    server = serve([], hold_s=0.05)
    c = client(server.url, concurrency=3)
    answers = c.map(lambda i: c.call("POST", "/completions", {"i": i}), list(range(24)))
    assert [a["body"]["i"] for a in answers] == list(range(24))  # in order, none lost
    assert server.most_in_flight <= 3 and len(server.seen) == 24
    assert len(server.ports) <= 3  # 24 requests over at most 3 pooled keep-alive connections
    c.close()
