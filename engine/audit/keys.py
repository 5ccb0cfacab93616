"""The keys of the audit trail: events and checkpoints are HMAC-SHA256 under a key kept outside the
database, so that whoever can write to the database and read the source still cannot recompute a
valid chain after editing a row.

A key is named by its id, a fingerprint of the key (stored per event and checkpoint): new events use
the current key; verification accepts every key of the ring, so retired keys keep their events
verifiable after a rotation. Events written before keys existed have no key id and a plain SHA-256
(legacy): they verify, as long as a signed checkpoint sealed them (see verify.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

MIN_KEY_CHARS = 32


def key_id(key: bytes) -> str:
    """A short public name of a key: it reveals nothing usable about the key itself."""
    return hashlib.sha256(b"gridloop-audit-key-id:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class AuditKeys:
    """The key ring: `current` signs what is written now; `by_id` holds it and every retired key."""

    current: bytes
    retired: tuple[bytes, ...] = ()
    by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for k in (self.current, *self.retired):
            if len(k) < MIN_KEY_CHARS:
                raise ValueError(f"an audit key must have at least {MIN_KEY_CHARS} characters")
        object.__setattr__(self, "by_id", {key_id(k): k for k in (*self.retired, self.current)})

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @classmethod
    def generate(cls) -> AuditKeys:
        """A random key, for a runtime nobody configured (tests, benches): its trail verifies in this
        process only."""
        return cls(secrets.token_hex(32).encode())

    @classmethod
    def of(cls, current: str, retired: Iterable[str] = ()) -> AuditKeys:
        return cls(current.encode(), tuple(k.encode() for k in retired))

    @classmethod
    def from_text(cls, text: str) -> AuditKeys:
        """A key file: one key per line, the first signs new events, the others are retired (accepted
        when verifying); blank lines and lines starting with # are ignored."""
        keys = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        if not keys:
            raise ValueError("the audit key file holds no key")
        return cls.of(keys[0], keys[1:])

    @classmethod
    def from_file(cls, path: Path) -> AuditKeys:
        return cls.from_text(path.read_text())


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def digest(key: bytes | None, body: bytes) -> str:
    """HMAC-SHA256 of `body` under `key`; plain SHA-256 without one (legacy events)."""
    if key is None:
        return hashlib.sha256(body).hexdigest()
    return hmac.digest(key, body, "sha256").hex()


def event_hash(key: bytes | None, prev_hash: str, chain: str, at: datetime, actor: str, action: str,
               instance_id: str | None, task_id: str | None, element_id: str | None,
               details: dict[str, Any]) -> str:
    body = canonical([prev_hash, chain, at.isoformat(), actor, action, instance_id, task_id, element_id, details])
    return digest(key, body)


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a, b)


def checkpoint_signature(key: bytes, seq: int, at: datetime, taken_by: str, max_event_id: int, legacy_until: int,
                         heads: dict[str, Any], prev_signature: str) -> str:
    return digest(key, canonical(["checkpoint", seq, at.isoformat(), taken_by, max_event_id, legacy_until, heads,
                                  prev_signature]))
