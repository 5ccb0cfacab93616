"""Appending to the chains.

There is one chain per process instance, whose head hash is kept on the instance row: appending
needs no lock beyond the instance lock the change already holds. Events that belong to no instance
(deployments, buffered messages) go to the `system` chain; every instance creation appends one
event to the `anchor` chain, so that deleting an instance together with its whole chain breaks the
anchor. Those two chains keep their heads in `audit_chain_head`, whose row lock serialises
their appends, so that cutting events off their end is detected too."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from ..db import Database, Prepared, insert_all
from ..models import AuditChainHead, AuditEvent, ProcessInstance
from .keys import AuditKeys, event_hash

if TYPE_CHECKING:
    from ..runtime import Runtime

GENESIS = "0" * 64
SYSTEM_CHAIN = "system"
ANCHOR_CHAIN = "anchor"
HEADED_CHAINS = (SYSTEM_CHAIN, ANCHOR_CHAIN)  # chains whose head is kept in audit_chain_head
# Only when a head row is missing; 0002 is the deploy lock, 0003 the scheduler's, 0004 the checkpoints'.
LOCK_KEYS = {SYSTEM_CHAIN: 0x6772_6964_0001, ANCHOR_CHAIN: 0x6772_6964_0005}
ANCHORED = "instance.anchored"


@dataclass
class AuditDraft:
    action: str
    actor: str
    at: datetime
    instance_id: str | None = None
    task_id: str | None = None
    element_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def chain_rows(keys: AuditKeys, chain: str, head: str, drafts: list[AuditDraft]) -> tuple[list[dict[str, Any]], str]:
    """Rows to insert for `drafts` appended after `head` (signed with the current key), and the new head."""
    rows, prev = [], head
    key, kid = keys.current, keys.current_id
    for d in drafts:
        details = json.loads(json.dumps(d.details, default=str))  # exactly what the column will hold
        h = event_hash(key, prev, chain, d.at, d.actor, d.action, d.instance_id, d.task_id, d.element_id, details)
        rows.append({"chain": chain, "at": d.at, "actor": d.actor, "action": d.action,
                     "instance_id": d.instance_id, "task_id": d.task_id, "element_id": d.element_id,
                     "details": details, "prev_hash": prev, "hash": h, "key_id": kid})
        prev = h
    return rows, prev


INSERT = Prepared(insert_all(AuditEvent.__table__))
_LOCK_HEAD = Prepared(select(AuditChainHead.hash).where(AuditChainHead.chain == bindparam("c")).with_for_update())
_LAST_HASH = Prepared(select(AuditEvent.hash).where(AuditEvent.chain == bindparam("c"))
                      .order_by(AuditEvent.id.desc()).limit(1))
_MOVE_HEAD = Prepared(update(AuditChainHead).where(AuditChainHead.chain == bindparam("c"))
                      .values(hash=bindparam("hash")))
_NEW_HEAD = Prepared(insert_all(AuditChainHead.__table__))


def insert_rows(session: Session | Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        session.execute(INSERT.stmt, rows)


def append_to_instance(rt: Runtime, session: Session, instance: ProcessInstance, drafts: list[AuditDraft]) -> None:
    """Append to the chain of a locked instance and move its head (written with the instance)."""
    rows, instance.audit_head = chain_rows(rt.audit_keys, instance.id, instance.audit_head or GENESIS, drafts)
    insert_rows(session, rows)


def append_system(rt: Runtime, session: Session | Connection, drafts: list[AuditDraft]) -> None:
    if drafts:
        _append_headed(rt.db, rt.audit_keys, session, SYSTEM_CHAIN, drafts)


def anchor_instances(rt: Runtime, conn: Connection, instance_ids: list[str], actor: str, at: datetime) -> None:
    """Record new instances in the anchor chain (in the transaction that creates them). The id is in the
    details, not `instance_id`: the instance's own history is what its chain holds."""
    if instance_ids:
        _append_headed(rt.db, rt.audit_keys, conn, ANCHOR_CHAIN, [
            AuditDraft(action=ANCHORED, actor=actor, at=at, details={"instance": i}) for i in instance_ids])


def _append_headed(db: Database, keys: AuditKeys, session: Session | Connection, chain: str,
                   drafts: list[AuditDraft]) -> None:
    """Append under the lock of the chain's head row (one round trip) and move the head. Without a
    head row (removed, or a test emptied the table) an advisory lock serialises its re-creation."""
    conn = session if isinstance(session, Connection) else session.connection()
    found = db.rows(conn, _LOCK_HEAD, {"c": chain})
    if not found:
        db.advisory_xact_lock(conn, LOCK_KEYS[chain])
        found = db.rows(conn, _LOCK_HEAD, {"c": chain})
    prev = found[0]["hash"] if found else next(iter(db.rows(conn, _LAST_HASH, {"c": chain})), {"hash": GENESIS})["hash"]
    rows, head = chain_rows(keys, chain, prev, drafts)
    with db.pipeline(conn):
        db.run(conn, INSERT, rows)
        if found:
            db.run(conn, _MOVE_HEAD, {"c": chain, "hash": head})
        else:
            db.run(conn, _NEW_HEAD, {"chain": chain, "hash": head})
