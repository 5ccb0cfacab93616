"""The reference enforcement system: an HTTP server (standard library only) that takes GridLoop's signed
pushes and, after a delay, calls GridLoop back with a signed result.

It stands for another organisation's system, so it imports nothing of GridLoop — not even the
signing helpers of integrations/enforcement.py: it implements the published scheme itself (the
five lines of `_sign`), which makes every test against it a check that both sides read the
protocol the same way.

    POST /cases            a push: Idempotency-Key, X-Timestamp, X-Signature = hex HMAC-SHA256 over
                           "<Idempotency-Key>.<X-Timestamp>.<body>"; 201 {"ticket"} for a new case,
                           200 {"ticket", "duplicate": true} for a key seen before (even with another
                           body: the key is the case), 401 bad or stale signature, 400 no key or not a
                           JSON object, 413 too large, 503 during an outage
    GET  /cases[/<key>]    what it holds, with the state of each callback
    GET  /health           {"ok": true, "outage": false, "cases": n}
    POST /admin/outage     {"on": true|false}: answer pushes with 503 (callbacks still go out)

The callback: POST <callback URL> with X-Callback-Id ("cb-<ticket>", the same on every attempt, so
that GridLoop drops a repeat), X-Timestamp (fresh on every attempt) and X-Signature = hex
HMAC-SHA256 over "<X-Callback-Id>.<X-Timestamp>.<body>", body {caseId, result, ticket, decision,
decidedAt, amount (penalized only)}. A connection error, 408, 429 or 5xx is retried with backoff;
another answer ends the attempts (`failed`). The result is a function of the case id (a hash
mapped onto the configured distribution), so a run can be repeated. State is in memory: a restart
forgets the cases (it is a simulator).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import unquote, urlsplit

log = logging.getLogger("gridloop.enforcement_sim")

RESULTS = ("penalized", "rectified", "no_violation")
DEFAULT_CALLBACK_URL = "http://127.0.0.1:8000/api/v1/enforcement/callback"
MAX_BODY = 1024 * 1024


def _sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def parse_results(text: str) -> tuple[tuple[str, float], ...]:
    """"penalized=5,rectified=3,no_violation=2" → weights (normalised when drawn). Raises ValueError."""
    weights: list[tuple[str, float]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in RESULTS:
            raise ValueError(f"result weights: {part!r} is not one of {', '.join(RESULTS)} = <weight>")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"result weights: {part!r} has no number") from None
        if weight < 0 or weight != weight:
            raise ValueError(f"result weights: {part!r} is negative")
        weights.append((name, weight))
    if not weights or sum(w for _n, w in weights) <= 0:
        raise ValueError("result weights: at least one result needs a positive weight")
    return tuple(weights)


def _fraction(case_id: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}:{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def result_for(case_id: str, results: tuple[tuple[str, float], ...]) -> tuple[str, float | None]:
    """The result (and, when penalized, the fine in yuan) of a case: the same every time."""
    total = sum(w for _n, w in results)
    point, running = _fraction(case_id, "result") * total, 0.0
    chosen = next((n for n, w in results if w > 0), RESULTS[0])
    for name, weight in results:
        running += weight
        if weight > 0 and point < running:
            chosen = name
            break
    amount = None
    if chosen == "penalized":  # 5,000 – 200,000 yuan in thousands
        amount = float(5000 + int(_fraction(case_id, "amount") * 196) * 1000)
    return chosen, amount


DECISIONS = {"penalized": "责令改正，处罚款 {amount:,.0f} 元 (ordered to rectify, fined)",
             "rectified": "责令限期整改，已整改到位 (ordered to rectify; rectified)",
             "no_violation": "经查不构成违法 (no violation found)"}


@dataclass(frozen=True)
class SimConfig:
    secret: str
    callback_url: str = DEFAULT_CALLBACK_URL
    host: str = "127.0.0.1"
    port: int = 8100  # 0: any free port (see EnforcementSimulator.url)
    delay_s: float = 5.0  # from a new push to its callback
    results: tuple[tuple[str, float], ...] = (("penalized", 5.0), ("rectified", 3.0), ("no_violation", 2.0))
    outage: bool = False
    window_s: int = 300  # accepted distance between X-Timestamp and this clock
    callback_timeout_s: float = 10.0
    callback_backoff_s: float = 1.0  # first retry of a callback; doubles up to the cap
    callback_backoff_cap_s: float = 60.0
    callback_attempts: int = 20


@dataclass
class SimCase:
    key: str  # the push's Idempotency-Key (GridLoop: "<case id>-<round>")
    case_id: str  # what the callback names: the body's case_id (or caseNo), else the key
    ticket: str
    body: dict[str, Any]
    received_at: str
    pushes: int = 1
    result: str = ""
    amount: float | None = None
    callback_id: str = ""
    callback: str = "pending"  # pending → delivered | failed
    callback_attempts: int = 0
    callback_status: int | None = None  # GridLoop's last answer
    last_error: str = ""


class EnforcementSimulator:
    """The server and its callback dispatcher; `start()`/`stop()` (or `with`), or `serve()` to block."""

    def __init__(self, config: SimConfig) -> None:
        if not config.secret:
            raise ValueError("the simulator needs the shared secret (GRIDLOOP_ENFORCEMENT_SECRET)")
        self.config = config
        self._lock = threading.Condition()
        self._cases: dict[str, SimCase] = {}
        self._due: list[tuple[float, int, str]] = []  # (monotonic time, sequence, key) of callbacks to make
        self._seq = 0
        self._stopping = False
        self.outage = config.outage
        self.server = ThreadingHTTPServer((config.host, config.port), _handler(self))
        self.server.daemon_threads = True
        self._threads = [threading.Thread(target=self.server.serve_forever, args=(0.1,), name="enforcement-sim",
                                         daemon=True),
                         threading.Thread(target=self._dispatch, name="enforcement-sim-callbacks", daemon=True)]

    @property
    def base_url(self) -> str:
        # After bind, server_address is getsockname() of an AF_INET socket: (str, int); the stub
        # types it as any address bind() would accept, bytes included.
        host, port = cast(tuple[str, int], self.server.server_address[:2])
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """Where GridLoop pushes (GRIDLOOP_ENFORCEMENT_URL)."""
        return f"{self.base_url}/cases"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> EnforcementSimulator:
        for t in self._threads:
            t.start()
        log.info("enforcement simulator on %s, calling back %s after %.3g s%s", self.url, self.config.callback_url,
                 self.config.delay_s, " (OUTAGE: pushes get 503)" if self.outage else "")
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self.server.shutdown()
        self.server.server_close()
        for t in self._threads[1:]:
            t.join(timeout=5)

    def __enter__(self) -> EnforcementSimulator:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def serve(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # -- state -------------------------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        self.outage = bool(on)
        log.warning("outage %s", "ON: pushes get 503" if on else "over")

    def cases(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(c) for c in self._cases.values()]

    def case(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._cases.get(key) or next((c for c in self._cases.values() if c.ticket == key), None)
            return None if found is None else asdict(found)

    def wait_for_callback(self, key: str, timeout_s: float = 10.0) -> dict[str, Any] | None:
        """The case once its callback is settled (delivered or failed), or None after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                found = self._cases.get(key)
                if found is not None and found.callback != "pending":
                    return asdict(found)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(left)

    def accept(self, key: str, body: dict[str, Any]) -> tuple[SimCase, bool]:
        """Store a push; (the case, whether it was there already). Same key → same case and ticket."""
        with self._lock:
            found = self._cases.get(key)
            if found is not None:
                found.pushes += 1
                return replace(found), True
            self._seq += 1
            ticket = f"ZF-{self._seq:06d}"
            case_id = str(body.get("case_id") or body.get("caseNo") or key)
            result, amount = result_for(case_id, self.config.results)
            case = SimCase(key=key, case_id=case_id, ticket=ticket, body=body,
                           received_at=datetime.now(UTC).isoformat(), result=result, amount=amount,
                           callback_id=f"cb-{ticket}")
            self._cases[key] = case
            self._schedule(key, self.config.delay_s)
            return replace(case), False

    def _schedule(self, key: str, delay_s: float) -> None:  # holding the lock
        self._seq += 1
        heapq.heappush(self._due, (time.monotonic() + delay_s, self._seq, key))
        self._lock.notify_all()

    # -- callbacks ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    self._lock.wait(None if not self._due else max(0.0, self._due[0][0] - time.monotonic()))
                if self._stopping:
                    return
                _when, _seq, key = heapq.heappop(self._due)
                case = replace(self._cases[key])
            status, error, retriable = self._call_back(case)
            with self._lock:
                stored = self._cases[key]
                stored.callback_attempts += 1
                stored.callback_status, stored.last_error = status, error
                if status is not None and 200 <= status < 300:
                    stored.callback = "delivered"
                    log.info("callback %s for %s delivered (%s)", case.callback_id, key, status)
                elif retriable and stored.callback_attempts < self.config.callback_attempts:
                    delay = min(self.config.callback_backoff_s * 2 ** (stored.callback_attempts - 1),
                                self.config.callback_backoff_cap_s)
                    log.warning("callback %s for %s failed (%s); again in %.3g s", case.callback_id, key,
                                error, delay)
                    self._schedule(key, delay)
                else:
                    stored.callback = "failed"
                    log.error("callback %s for %s given up after %d attempts: %s", case.callback_id, key,
                              stored.callback_attempts, error)
                self._lock.notify_all()

    def _call_back(self, case: SimCase) -> tuple[int | None, str, bool]:
        """One attempt: (GridLoop's status or None, the error, whether another attempt may succeed)."""
        payload: dict[str, Any] = {"caseId": case.case_id, "result": case.result, "ticket": case.ticket,
                                   "decision": DECISIONS[case.result].format(amount=case.amount or 0),
                                   "decidedAt": datetime.now(UTC).isoformat(timespec="seconds")}
        if case.amount is not None:
            payload["amount"] = case.amount
        body = json.dumps(payload, ensure_ascii=False).encode()
        ts = str(int(time.time()))
        request = urllib.request.Request(self.config.callback_url, data=body, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8", "X-Callback-Id": case.callback_id,
            "X-Timestamp": ts, "X-Signature": _sign(self.config.secret, case.callback_id, ts, body)})
        try:
            with urllib.request.urlopen(request, timeout=self.config.callback_timeout_s) as resp:
                return resp.status, "", False
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace")
            exc.close()
            return exc.code, f"{exc.code}: {detail}", exc.code in (408, 429) or exc.code >= 500
        except OSError as exc:  # refused, reset, timed out: GridLoop is down or busy
            return None, f"{type(exc).__name__}: {exc}", True
        except ValueError as exc:  # a malformed callback URL: no attempt will do better
            return None, f"{type(exc).__name__}: {exc}", False


def _handler(sim: EnforcementSimulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ReferenceEnforcement/1"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            if path == "/health":
                return self._send(200, {"ok": True, "outage": sim.outage, "cases": len(sim.cases())})
            if path == "/cases":
                return self._send(200, {"items": sim.cases()})
            if path.startswith("/cases/"):
                found = sim.case(unquote(path.removeprefix("/cases/")))
                return self._send(200, found) if found else self._send(404, {"error": "no such case"})
            if path == "/admin/outage":
                return self._send(200, {"outage": sim.outage})
            self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = urlsplit(self.path).path.rstrip("/")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self.close_connection = True
                return self._send(400, {"error": "bad Content-Length"})
            if length > MAX_BODY:
                self.close_connection = True
                return self._send(413, {"error": "body too large"})
            body = self.rfile.read(length)
            if path == "/cases":
                return self._push(body)
            if path == "/admin/outage":
                data = _object(body)
                if data is None or not isinstance(data.get("on"), bool):
                    return self._send(400, {"error": 'send {"on": true} or {"on": false}'})
                sim.set_outage(data["on"])
                return self._send(200, {"outage": sim.outage})
            self._send(404, {"error": "not found"})

        def _push(self, body: bytes) -> None:
            if sim.outage:
                return self._send(503, {"error": "outage", "message": "the enforcement system is down"},
                                  {"Retry-After": "30"})
            key = self.headers.get("Idempotency-Key", "").strip()
            if not key:
                return self._send(400, {"error": "missing Idempotency-Key"})
            ts, signature = self.headers.get("X-Timestamp", ""), self.headers.get("X-Signature", "")
            if not hmac.compare_digest(_sign(sim.config.secret, key, ts, body), signature):
                return self._send(401, {"error": "bad_signature"})
            if not ts.isdigit() or abs(time.time() - int(ts)) > sim.config.window_s:
                return self._send(401, {"error": "stale", "message": f"X-Timestamp not within {sim.config.window_s} s"})
            data = _object(body)
            if data is None:
                return self._send(400, {"error": "the body must be a JSON object"})
            case, duplicate = sim.accept(key, data)
            log.info("push %s: %s%s", key, case.ticket, " (duplicate)" if duplicate else "")
            answer: dict[str, str | bool] = {"ticket": case.ticket, "status": "accepted"}
            if duplicate:
                answer["duplicate"] = True
            self._send(200 if duplicate else 201, answer)

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


def _object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


__all__ = ["DEFAULT_CALLBACK_URL", "EnforcementSimulator", "SimCase", "SimConfig", "parse_results", "result_for"]
