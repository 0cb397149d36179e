"""A small client for OpenAI-compatible servers: JSON over HTTP with retries on the statuses that are worth a
retry, and a server's error said in one line."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from ladder.errors import LadderError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(LadderError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class Client:
    """JSON over HTTP with a timeout, retries and backoff; shared by a backend and its views."""

    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, retries: int, concurrency: int):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ladder-openai")
        self.lock = threading.Lock()
        self.root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url

    def call(self, method: str, path: str, body: dict | None = None, root: bool = False) -> dict:
        url = (self.root if root else self.base_url) + path
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = 0.5
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                try:
                    return json.loads(raw or b"{}")
                except ValueError:  # e.g. vLLM's /v1/load_lora_adapter answers in plain text
                    return {"text": raw.decode("utf-8", "replace")}
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code not in RETRY_STATUS or attempt == self.retries:
                    raise ServerError(f"{method} {url}: HTTP {exc.code}: {detail}", exc.code) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise ServerError(f"{method} {url}: no answer after {self.retries + 1} tries ({reason})") from None
            time.sleep(min(delay, 30.0))
            delay *= 2
        raise AssertionError("unreachable")

    def map(self, function, items: list) -> list:
        return list(self.pool.map(function, items))


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        return exc.reason or "error"
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    return " ".join(str(message or error or exc.reason).split())[:300]
