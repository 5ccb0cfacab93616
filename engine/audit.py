"""The audit trail (全过程留痕): every change appends events to a hash chain, so that editing or
deleting a row breaks the chain at that row.

There is one chain per process instance, whose head hash is kept on the instance row: appending
needs no lock beyond the instance lock the change already holds, and cutting events off the end
of a chain is detected too. Events that belong to no instance (deployments, buffered messages) go
to the `system` chain, serialised by an advisory lock."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from .db import Database, Prepared, insert_all
from .models import AuditEvent, ProcessInstance

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
SYSTEM_LOCK_KEY = 0x6772_6964_0001  # serialises appends to the system chain


@dataclass
class AuditDraft:
    action: str
    actor: str
    at: datetime
    instance_id: str | None = None
    task_id: str | None = None
    element_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def event_hash(prev_hash: str, chain: str, at: datetime, actor: str, action: str, instance_id: str | None,
               task_id: str | None, element_id: str | None, details: dict[str, Any]) -> str:
    body = json.dumps(
        [prev_hash, chain, at.isoformat(), actor, action, instance_id, task_id, element_id, details],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def chain_rows(chain: str, head: str, drafts: list[AuditDraft]) -> tuple[list[dict[str, Any]], str]:
    """Rows to insert for `drafts` appended after `head`, and the new head."""
    rows, prev = [], head
    for d in drafts:
        details = json.loads(json.dumps(d.details, default=str))  # exactly what the column will hold
        h = event_hash(prev, chain, d.at, d.actor, d.action, d.instance_id, d.task_id, d.element_id, details)
        rows.append({"chain": chain, "at": d.at, "actor": d.actor, "action": d.action,
                     "instance_id": d.instance_id, "task_id": d.task_id, "element_id": d.element_id,
                     "details": details, "prev_hash": prev, "hash": h})
        prev = h
    return rows, prev


INSERT = Prepared(insert_all(AuditEvent.__table__))


def insert_rows(session: Session | Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(INSERT.stmt, rows)


def append_to_instance(session: Session, instance: ProcessInstance, drafts: list[AuditDraft]) -> None:
    """Append to the chain of a locked instance and move its head (written with the instance)."""
    rows, instance.audit_head = chain_rows(instance.id, instance.audit_head or GENESIS, drafts)
    insert_rows(session, rows)


def append_system(db: Database, session: Session, drafts: list[AuditDraft]) -> None:
    if not drafts:
        return
    db.advisory_xact_lock(session, SYSTEM_LOCK_KEY)
    head = session.scalar(select(AuditEvent.hash).where(AuditEvent.chain == SYSTEM_CHAIN)
                          .order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    rows, _ = chain_rows(SYSTEM_CHAIN, head, drafts)
    insert_rows(session, rows)


@dataclass
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    reason: str | None = None


def verify_snapshot(db: Database, batch: int = 5000) -> ChainReport:
    """`verify` on one consistent snapshot: events and instance heads as of the same moment, so
    changes committed while it runs cannot look like tampering."""
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        else:
            conn = conn.execution_options(gridloop_read_only=True)  # a deferred transaction: a WAL snapshot
        with conn.begin(), Session(bind=conn) as s:
            return verify(s, batch)


def verify(session: Session, batch: int = 5000) -> ChainReport:
    """Walk every chain in order; report the first event whose link or content does not match, or an
    instance whose recorded head is not the last event of its chain (events cut off the end)."""
    heads: dict[str, str] = {}
    last_id_of: dict[str, int] = {}
    checked, last_id = 0, 0
    while True:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > last_id)
                               .order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            break
        for e in rows:
            if e.prev_hash != heads.get(e.chain, GENESIS):
                return ChainReport(False, checked, e.id, "previous-hash link does not match (an event of this "
                                                         "chain was removed or re-ordered before this one)")
            expected = event_hash(e.prev_hash, e.chain, e.at, e.actor, e.action, e.instance_id, e.task_id,
                                  e.element_id, e.details)
            if expected != e.hash:
                return ChainReport(False, checked, e.id, "content does not match its hash (the row was edited)")
            heads[e.chain], last_id_of[e.chain], checked, last_id = e.hash, e.id, checked + 1, e.id
    for instance_id, recorded in session.execute(select(ProcessInstance.id, ProcessInstance.audit_head)):
        if (recorded or GENESIS) != heads.get(instance_id, GENESIS):
            return ChainReport(False, checked, last_id_of.get(instance_id),
                               f"instance {instance_id}: its chain does not end at the recorded head "
                               "(events were removed from the end)")
    return ChainReport(ok=True, checked=checked)
