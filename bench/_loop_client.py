"""The HTTP client of `python -m bench.loop`: one caller's session that retries as a mobile client does,
and the recorder of latencies, answers and retries (every figure by cause).

A call is retried when it is safe to repeat (a GET, a POST carrying an Idempotency-Key — every POST
gets one, a uuid per logical call, the same on every attempt — or one the caller marks idempotent,
such as a callback with its own id) and the connection failed: reset, refused or timed out. At most
`TRIES` attempts, with a short back-off. A repeat answered 409 `in_progress` (the first attempt is
still running on the server) is asked again until `IN_PROGRESS_PATIENCE_S`; its stored answer is
then replayed."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TRIES = 3
BACKOFF_S = (0.1, 0.4)  # before the 2nd and the 3rd attempt
IN_PROGRESS_PATIENCE_S = 20.0
TIMEOUT_S = (5.0, 30.0)  # connect, read
IDEMPOTENCY_HEADER = "Idempotency-Key"


class LoopFailure(RuntimeError):
    """A loop that could not go on; `cause` is a short name to count failures by."""

    def __init__(self, message: str, cause: str = "error") -> None:
        super().__init__(message)
        self.cause = cause


class HttpError(LoopFailure):
    """An answer with a status the caller did not expect (`cause` http_409, http_422, ..., http_5xx)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        cause = "http_error" if status is None else "http_5xx" if status >= 500 else f"http_{status}"
        super().__init__(message, cause)
        self.status = status


def failure_cause(exc: BaseException) -> str:
    """The cause a failed loop is counted under."""
    return exc.cause if isinstance(exc, LoopFailure) else type(exc).__name__


def connection_cause(exc: BaseException) -> str | None:
    """connection_reset | connection_refused | timeout for a failed connection; None for anything else."""
    import requests

    if isinstance(exc, requests.Timeout):
        return "timeout"
    if not isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return None
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo and len(seen) < 20:  # requests wraps urllib3, which wraps the socket's error
        e = todo.pop()
        if not isinstance(e, BaseException) or e in seen:
            continue
        seen.append(e)
        todo.extend([*e.args, getattr(e, "reason", None), e.__cause__, e.__context__])
    if any(isinstance(e, ConnectionRefusedError) for e in seen):
        return "connection_refused"
    if any(isinstance(e, TimeoutError) for e in seen):
        return "timeout"
    return "connection_reset"  # reset, aborted, closed without an answer, a body cut short


@dataclass
class Recorder:
    """Latency (ms) of every call by endpoint (all its attempts), every unexpected answer, and every
    repeated attempt by cause."""

    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    retries: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    enabled: bool = True

    def add(self, endpoint: str, ms: float) -> None:
        if self.enabled:
            with self.lock:
                self.latency[endpoint].append(ms)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def retry(self, cause: str) -> None:
        with self.lock:
            self.retries[cause] += 1


class Client:
    """One caller (a person with a bearer token, or a system with an API key) on its own session."""

    def __init__(self, base: str, rec: Recorder, headers: dict[str, str], name: str, *,
                 tries: int = TRIES, backoff_s: tuple[float, ...] = BACKOFF_S,
                 timeout_s: float | tuple[float, float] = TIMEOUT_S) -> None:
        import requests

        self.base = base
        self.rec = rec
        self.name = name
        self.tries = tries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.session = requests.Session()
        self.session.headers.update(headers)

    def call(self, method: str, endpoint: str, path: str, *, expect: Iterable[int] = (200, 201, 202),
             idempotent: bool | None = None, **kw) -> Any:
        """The JSON answer of one logical call (retried when safe, see the module); HttpError for a
        status not in `expect`, LoopFailure (cause connection_reset/_refused, timeout) when every
        attempt failed."""
        headers = dict(kw.pop("headers", None) or {})
        if method == "POST":
            headers.setdefault(IDEMPOTENCY_HEADER, uuid.uuid4().hex)
        if idempotent is None:
            idempotent = method in ("GET", "HEAD") or IDEMPOTENCY_HEADER in headers
        t0 = time.perf_counter()
        r = self._send(method, path, headers, idempotent, kw)
        patience = time.monotonic() + IN_PROGRESS_PATIENCE_S
        while r.status_code == 409 and "in_progress" in r.text and time.monotonic() < patience:
            self.rec.retry("http_409_in_progress")  # our own first attempt is still running
            time.sleep(0.2)
            r = self._send(method, path, headers, idempotent, kw)
        self.rec.add(endpoint, (time.perf_counter() - t0) * 1000.0)
        if r.status_code not in expect:
            msg = f"{method} {path} as {self.name}: {r.status_code} {r.text[:300]}"
            self.rec.error(msg)
            raise HttpError(msg, r.status_code)
        return r.json() if r.content else None

    def _send(self, method: str, path: str, headers: dict[str, str], idempotent: bool, kw: dict[str, Any]):
        attempt = 0
        while True:
            attempt += 1
            try:
                return self.session.request(method, self.base + path, headers=headers, timeout=self.timeout_s,
                                            **kw)
            except Exception as exc:
                cause = connection_cause(exc)
                if cause is None:
                    raise
                if not idempotent or attempt >= self.tries:
                    raise LoopFailure(f"{method} {path} as {self.name}: {cause} after {attempt} attempt(s): "
                                      f"{type(exc).__name__}", cause) from exc
                self.rec.retry(cause)
                time.sleep(self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)])

    def close(self) -> None:
        self.session.close()


def login(base: str, rec: Recorder, username: str, password: str) -> Client:
    """A session for `username` (the token request is repeated on a failed connection: it changes nothing)."""
    anon = Client(base, rec, {}, "anonymous")
    try:
        token = anon.call("POST", "login", "/api/v1/auth/token", idempotent=True,
                          json={"username": username, "password": password}, expect=(200,))
    finally:
        anon.close()
    return Client(base, rec, {"Authorization": f"Bearer {token['access_token']}"}, username)


__all__ = ["Client", "HttpError", "LoopFailure", "Recorder", "connection_cause", "failure_cause", "login"]
