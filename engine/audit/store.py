"""Checkpoints and verification against the database.

A checkpoint signs the heads of the chains that moved since the previous one (and that one's
signature): the scheduler takes one periodically, an operator on demand. After it, events cut off
the end of a chain are detected even when the attacker moved the chain's recorded head back. The
first checkpoint also seals the legacy (unkeyed) events: none may be newer than the newest it saw. Each checkpoint is
logged too, so that a copy of its signature lives outside the database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..db import Database
from ..models import AuditChainHead, AuditCheckpoint, AuditEvent, ProcessInstance
from .chain import GENESIS
from .keys import AuditKeys, checkpoint_signature
from .verify import ChainReport, Verifier

log = logging.getLogger(__name__)
CHECKPOINT_LOCK_KEY = 0x6772_6964_0004  # not 0003: the scheduler holds that one while its chore takes checkpoints


def take_checkpoint(db: Database, keys: AuditKeys, taken_by: str, at: datetime) -> AuditCheckpoint | None:
    """Sign the heads that moved since the last checkpoint; None when no event was appended since."""
    with db.transaction() as s:
        db.advisory_xact_lock(s, CHECKPOINT_LOCK_KEY)
        last = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        after = last.max_event_id if last is not None else 0
        newest = s.scalar(select(func.max(AuditEvent.id))) or 0
        if last is not None and newest <= after:
            return None
        moved = (select(AuditEvent.chain, func.max(AuditEvent.id).label("last_id"))
                 .where(AuditEvent.id > after, AuditEvent.id <= newest).group_by(AuditEvent.chain).subquery())
        heads = {chain: [event_id, hash_] for chain, event_id, hash_ in s.execute(
            select(AuditEvent.chain, AuditEvent.id, AuditEvent.hash).join(moved, AuditEvent.id == moved.c.last_id))}
        legacy_until = last.legacy_until if last is not None else (
            s.scalar(select(func.max(AuditEvent.id)).where(AuditEvent.key_id.is_(None))) or 0)
        seq = (last.seq if last is not None else 0) + 1
        prev = last.signature if last is not None else GENESIS
        checkpoint = AuditCheckpoint(
            seq=seq, at=at, taken_by=taken_by, max_event_id=newest, legacy_until=legacy_until, heads=heads,
            prev_signature=prev, key_id=keys.current_id,
            signature=checkpoint_signature(keys.current, seq, at, taken_by, newest, legacy_until, heads, prev))
        s.add(checkpoint)
        s.flush()
        s.expunge(checkpoint)
    log.info("audit checkpoint", extra={"seq": seq, "max_event_id": newest, "chains": len(heads),
                                        "signature": checkpoint.signature})
    return checkpoint


def last_checkpoint(db: Database) -> AuditCheckpoint | None:
    with db.session() as s:
        found = s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
        if found is not None:
            s.expunge(found)
        return found


def checkpoints(session: Session) -> list[AuditCheckpoint]:
    return list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))


def events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event in id order, `batch` at a time."""
    last_id = 0
    while True:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > last_id)
                               .order_by(AuditEvent.id).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def chain_heads(session: Session) -> dict[str, str]:
    return {r.chain: r.hash for r in session.scalars(select(AuditChainHead))}


def verify(session: Session, keys: AuditKeys, batch: int = 5000) -> ChainReport:
    """Walk every chain in order, and check the recorded heads, the anchor and the checkpoints."""
    v = Verifier(keys)
    v.checkpoints(checkpoints(session))
    for e in events(session, batch):
        v.event(e)
    for instance_id, recorded in session.execute(select(ProcessInstance.id, ProcessInstance.audit_head)):
        v.instance(instance_id, recorded)
    v.chain_heads(chain_heads(session))
    return v.report()


@contextmanager
def snapshot(db: Database) -> Iterator[Session]:
    """A read-only session on one consistent snapshot: events, heads and checkpoints as of the same
    moment, so changes committed meanwhile cannot look like tampering."""
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        else:
            conn = conn.execution_options(gridloop_read_only=True)  # a deferred transaction: a WAL snapshot
        with conn.begin(), Session(bind=conn) as s:
            yield s


def verify_snapshot(db: Database, keys: AuditKeys, batch: int = 5000) -> ChainReport:
    with snapshot(db) as s:
        return verify(s, keys, batch)
