"""The openai backend's client for OpenAI-compatible servers: ``httpx`` (pooled keep-alive connections, separate
connect/read timeouts) with the retry policy a batch job needs, and a server's error said in one line.

- Retried: connection failures (refused, reset, dropped mid-answer), timeouts, and the statuses worth another try
  (408, 409, 425, 429, 500, 502, 503, 504), at most ``retries`` times. The wait doubles from 0.5 s (capped at 30 s)
  with jitter, except that a ``Retry-After`` header (seconds or an HTTP date) is honoured, up to ``MAX_RETRY_AFTER_S``.
- Not retried: other 4xx (the request is wrong; a retry would be too).
- At most ``concurrency`` requests in flight (one thread each; the connection pool is sized to match).
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from ladder.errors import LadderError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 120.0  # a server asking for a longer pause than this is waited on for this long, then retried
FIRST_WAIT_S, MAX_WAIT_S = 0.5, 30.0


class ServerError(LadderError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class Client:
    """JSON over HTTP with timeouts, retries and backoff; shared by a backend and its views."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        timeout_s: float,
        retries: int,
        concurrency: int,
        sleep=time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            trust_env=False,  # a local server is not reached through the environment's proxy
        )
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ladder-openai")
        self.lock = threading.Lock()
        self.sleep = sleep  # the tests count the waits instead of sleeping them
        self.waits: list[float] = []  # every wait before a retry, in order (the fault-injection tests read them)

    def call(self, method: str, path: str, body: dict | None = None, root: bool = False) -> dict:
        url = (self.root if root else self.base_url) + path
        delay = FIRST_WAIT_S
        for attempt in range(self.retries + 1):
            wait = min(delay, MAX_WAIT_S) * (0.5 + random.random() / 2)
            try:
                response = self.http.request(method, url, json=body)
            except httpx.TransportError as exc:  # refused, reset, dropped mid-answer, timed out
                if attempt == self.retries:
                    raise ServerError(
                        f"{method} {url}: no answer after {self.retries + 1} tries ({_transport_reason(exc)})"
                    ) from None
            else:
                if response.is_success:
                    try:
                        return response.json() if response.content else {}
                    except ValueError:  # e.g. vLLM's /v1/load_lora_adapter answers in plain text
                        return {"text": response.text}
                if response.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise ServerError(
                        f"{method} {url}: HTTP {response.status_code}: {_error_detail(response)}", response.status_code
                    )
                asked = retry_after(response)
                if asked is not None:
                    wait = min(asked, MAX_RETRY_AFTER_S)
            self.waits.append(wait)
            self.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    def map(self, function, items: list) -> list:
        return list(self.pool.map(function, items))

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.http.close()


def _transport_reason(exc: httpx.TransportError) -> str:
    kind = type(exc).__name__
    detail = " ".join(str(exc).split())[:200]
    return f"{kind}: {detail}" if detail else kind


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300] or response.reason_phrase or "error"
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    return " ".join(str(message or error or response.reason_phrase).split())[:300]
