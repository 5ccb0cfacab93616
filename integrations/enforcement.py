"""The enforcement system (执法系统) connector: push a case over HTTP(S), signed with HMAC-SHA256,
with the case id as Idempotency-Key so that a retried push is not a second case there. It
translates only; whether and when to push is the process model's decision.

The wire protocol (README, configuration table):

    POST <GRIDLOOP_ENFORCEMENT_URL>
    Content-Type: application/json; charset=utf-8
    Idempotency-Key: <case id>
    X-Timestamp: <unix seconds>
    X-Signature: hex HMAC-SHA256(secret, "<Idempotency-Key>.<X-Timestamp>.<body>")
    {their_field: value, ...}          (GRIDLOOP_ENFORCEMENT_FIELD_MAP; default: our parameters as they are)

It is the scheme of the callbacks coming back (api/views/enforcement.py), with the Idempotency-Key
in the place of X-Callback-Id: one shared secret, one construction, both directions. Signing the key
too means a captured push cannot be replayed under another key to open a second case.

Answers: 2xx → `{"ticket": <their id>}` (the service task's result); 409 that names a ticket → the
case is there already: `{"ticket": <the original>, "duplicate": true}`; 409 without one (the first
push is still being processed), 408, 425, 429, 5xx, timeouts and connection errors raise
`EnforcementUnavailable` (the engine retries with backoff, then raises an incident); any other
4xx or a redirect raises `PermanentFailure` (an incident at once: a retry would be refused alike).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.operations import PermanentFailure

IDEMPOTENCY_HEADER = "Idempotency-Key"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"
WINDOW_S = 300  # what a receiver should allow between X-Timestamp and its own clock
RETRIABLE_STATUS = frozenset({408, 425, 429})
MAX_ANSWER_BYTES = 64 * 1024


class EnforcementUnavailable(ConnectionError):
    """The enforcement system could not take the case now; the same push later may succeed."""


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 over "<message id>.<timestamp>.<body>" — the push (message id = Idempotency-Key)
    and the callback (message id = X-Callback-Id) use the same construction."""
    return hmac.new(secret.encode(), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def verify(secret: str, message_id: str, timestamp: str, signature: str, body: bytes, *,
           now: float | None = None, window_s: int = WINDOW_S) -> bool:
    """Whether `signature` signs this message and its timestamp is within `window_s` of `now`."""
    if not secret or not message_id or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > window_s:
        return False
    return hmac.compare_digest(sign(secret, message_id, timestamp, body), signature or "")


def parse_field_map(text: str) -> dict[str, str] | None:
    """GRIDLOOP_ENFORCEMENT_FIELD_MAP: a JSON object {their_field: our_param}; empty means identity.
    `their_field` may be a dotted path ("case.id") for a nested body. Raises ValueError when malformed,
    so that a deployment with a broken mapping does not start."""
    if not text.strip():
        return None
    try:
        mapping = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"GRIDLOOP_ENFORCEMENT_FIELD_MAP is not valid JSON: {exc}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("GRIDLOOP_ENFORCEMENT_FIELD_MAP must be a non-empty JSON object {their_field: our_param}")
    for theirs, ours in mapping.items():
        if not isinstance(ours, str) or not ours or not theirs or any(not p for p in theirs.split(".")):
            raise ValueError(f"GRIDLOOP_ENFORCEMENT_FIELD_MAP: {theirs!r}: {ours!r} is not "
                             "a field name → a parameter name")
    return mapping


def map_fields(params: Mapping[str, Any], field_map: Mapping[str, str] | None) -> dict[str, Any]:
    """Our parameters as the enforcement system names them. Without a map, as they are; with one,
    only the mapped parameters, each under its field (a parameter the task did not pass is left out)."""
    if field_map is None:
        return dict(params)
    body: dict[str, Any] = {}
    for theirs, ours in field_map.items():
        if ours not in params:
            continue
        *parents, leaf = theirs.split(".")
        node = body
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise PermanentFailure(f"field map: {theirs!r} nests under a field that holds a value")
            node = child
        node[leaf] = params[ours]
    return body


def _dig(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would follow a 301/302/303 after a POST as a GET without the body, and call the page
    it lands on a success. A moved endpoint is a configuration error, so the 3xx is the answer."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class EnforcementClient:
    url: str
    secret: str
    timeout_s: float = 10.0  # per connect and per read
    field_map: Mapping[str, str] | None = None  # {their_field: our_param}; None: identity
    ticket_field: str = "ticket"  # where their answer names the ticket (dotted path)
    case_param: str = "case_id"  # the parameter whose value is the Idempotency-Key

    @classmethod
    def configured(cls, url: str, secret: str, *, timeout_s: float = 10.0, field_map: str = "",
                   ticket_field: str = "ticket") -> EnforcementClient:
        """The client of a deployment, from its settings (GRIDLOOP_ENFORCEMENT_*); a malformed
        `field_map` (JSON text) raises ValueError, so the deployment does not start."""
        return cls(url, secret, timeout_s=timeout_s, field_map=parse_field_map(field_map), ticket_field=ticket_field)

    def push(self, case: Mapping[str, Any]) -> dict[str, Any]:
        """POST the case; the ticket in the answer becomes the service task's result."""
        if not self.url:
            raise PermanentFailure("no enforcement system configured (GRIDLOOP_ENFORCEMENT_URL)")
        if not self.url.lower().startswith(("http://", "https://")):
            raise PermanentFailure(f"GRIDLOOP_ENFORCEMENT_URL is not usable: {self.url!r} is not an http(s) URL")
        key = str(case.get("push_id") or case.get(self.case_param) or "")  # push_id: one per enforcement round
        if not key:
            raise PermanentFailure(f"the push has no {self.case_param!r} parameter for its Idempotency-Key")
        body = json.dumps(map_fields(case, self.field_map), ensure_ascii=False, sort_keys=True).encode()
        ts = str(int(time.time()))  # the receiver compares it with its own clock, not the engine's
        headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json",
                   "User-Agent": "GridLoop-enforcement/1", IDEMPOTENCY_HEADER: key, TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: sign(self.secret, key, ts, body)}
        try:
            request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
            with _OPENER.open(request, timeout=self.timeout_s) as resp:
                status, answer = resp.status, resp.read(MAX_ANSWER_BYTES)
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, _read(exc)
        except TimeoutError as exc:
            raise EnforcementUnavailable(f"enforcement system did not answer within {self.timeout_s:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                raise EnforcementUnavailable(
                    f"enforcement system did not answer within {self.timeout_s:g} s") from exc
            raise EnforcementUnavailable(f"enforcement system unreachable: {exc.reason}") from exc
        except (ValueError, http.client.InvalidURL) as exc:  # "unknown url type" and friends: configuration
            raise PermanentFailure(f"GRIDLOOP_ENFORCEMENT_URL is not usable: {exc}") from None
        except (ConnectionError, http.client.HTTPException) as exc:  # reset mid-answer, a garbled status line
            raise EnforcementUnavailable(f"enforcement system connection failed: {type(exc).__name__}: {exc}") from exc
        return self._classify(key, status, answer)

    def _classify(self, key: str, status: int, answer: bytes) -> dict[str, Any]:
        data = _json(answer)
        detail = answer[:300].decode("utf-8", "replace")
        if 200 <= status < 300:
            ticket = _dig(data, self.ticket_field)
            return {"ticket": None if ticket is None else str(ticket)}
        if status == 409:
            ticket = _dig(data, self.ticket_field)
            if ticket is not None:  # the case is there from an earlier push with this Idempotency-Key
                return {"ticket": str(ticket), "duplicate": True}
            raise EnforcementUnavailable(f"enforcement system answered 409 for {key} without a ticket "
                                         f"(the first push still in progress?): {detail}")
        if status in RETRIABLE_STATUS or status >= 500:
            raise EnforcementUnavailable(f"enforcement system answered {status}: {detail}")
        if 300 <= status < 400:
            raise PermanentFailure(f"enforcement system redirected ({status}) — configure the final URL "
                                   f"in GRIDLOOP_ENFORCEMENT_URL: {detail}")
        raise PermanentFailure(f"enforcement system refused the case ({status}): {detail}")


def _read(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(MAX_ANSWER_BYTES) or b""
    except OSError:
        return b""
    finally:
        exc.close()


def _json(answer: bytes) -> Any:
    try:
        return json.loads(answer) if answer else None
    except ValueError:
        return None
