"""The enforcement system (执法系统) connector: push a case over HTTPS, signed with HMAC-SHA256,
with the case id as Idempotency-Key so that a retried push is not a second case there. It
translates only; whether and when to push is the process model's decision."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from engine.operations import PermanentFailure


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """hex HMAC-SHA256 over "<timestamp>.<body>" — the same scheme the callbacks use inbound."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class EnforcementClient:
    url: str
    secret: str
    timeout_s: float = 10.0

    def push(self, case: dict[str, Any]) -> dict[str, Any]:
        """POST the case; the answer (a ticket) becomes the service task's result. Timeouts, 429 and
        5xx raise for a retry; other 4xx are permanent (a retry would be refused the same way)."""
        if not self.url:
            raise PermanentFailure("no enforcement system configured (GRIDLOOP_ENFORCEMENT_URL)")
        body = json.dumps(case, ensure_ascii=False, sort_keys=True).encode()
        ts = str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": str(case["case_id"]),
            "X-GridLoop-Timestamp": ts, "X-GridLoop-Signature": signature(self.secret, ts, body)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            if exc.code == 429 or exc.code >= 500:
                raise ConnectionError(f"enforcement system answered {exc.code}: {detail}") from None
            raise PermanentFailure(f"enforcement system refused the case ({exc.code}): {detail}") from None
