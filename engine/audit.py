"""The audit trail: every change appends events to one hash chain, so editing or deleting a row
breaks the chain at that row (全过程留痕)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import Database
from .models import AuditEvent

GENESIS = "0" * 64
AUDIT_LOCK_KEY = 0x6772_6964_0001  # "grid" + 1; one advisory lock serialises appends to the chain


@dataclass
class AuditDraft:
    action: str
    actor: str
    at: datetime
    instance_id: str | None = None
    task_id: str | None = None
    element_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def event_hash(prev_hash: str, at: datetime, actor: str, action: str, instance_id: str | None,
               task_id: str | None, element_id: str | None, details: dict[str, Any]) -> str:
    body = json.dumps(
        [prev_hash, at.isoformat(), actor, action, instance_id, task_id, element_id, details],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(db: Database, session: Session, drafts: list[AuditDraft]) -> None:
    """Append events at the end of the transaction (the chain lock is held until commit)."""
    if not drafts:
        return
    db.advisory_xact_lock(session, AUDIT_LOCK_KEY)
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    for d in drafts:
        details = json.loads(json.dumps(d.details, default=str))  # exactly what the column will hold
        h = event_hash(prev, d.at, d.actor, d.action, d.instance_id, d.task_id, d.element_id, details)
        session.add(AuditEvent(at=d.at, actor=d.actor, action=d.action, instance_id=d.instance_id,
                               task_id=d.task_id, element_id=d.element_id, details=details,
                               prev_hash=prev, hash=h))
        prev = h


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


def verify(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain in order; report the first event whose link or content does not match."""
    prev, checked, last_id = GENESIS, 0, 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return ChainReport(ok=True, checked=checked)
        for e in rows:
            if e.prev_hash != prev:
                return ChainReport(False, checked, e.id, "previous-hash link does not match (a row was "
                                                         "removed or re-ordered before this one)")
            expected = event_hash(e.prev_hash, e.at, e.actor, e.action, e.instance_id, e.task_id,
                                  e.element_id, e.details)
            if expected != e.hash:
                return ChainReport(False, checked, e.id, "content does not match its hash (the row was edited)")
            prev, checked, last_id = e.hash, checked + 1, e.id
