"""The transactional outbox: side effects are rows written with the state change, relayed to the job
queue after commit. Relaying is at-least-once, so every job is idempotent."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .models import OutboxEntry

log = logging.getLogger(__name__)

MAX_RELAYS = 5  # a job that kills its worker this often is left for an operator (see /metrics)


class JobQueue(Protocol):
    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        """Hand one job to the workers; raise if it could not be handed over."""


def add(session: Session, now: datetime, *, queue: str, job: str, payload: dict[str, Any],
        available_at: datetime | None = None) -> OutboxEntry:
    entry = OutboxEntry(queue=queue, job=job, payload=payload, created_at=now,
                        available_at=available_at or now, relayed_at=None)
    session.add(entry)
    return entry


def relay(rt, queue: JobQueue, limit: int = 200) -> int:
    """Move due outbox rows to the job queue. A row is marked relayed in the same transaction that
    enqueued it; if the queue is down the transaction rolls back and the rows wait for next time."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        stmt = (select(OutboxEntry).where(OutboxEntry.relayed_at.is_(None), OutboxEntry.available_at <= now)
                .order_by(OutboxEntry.id).limit(limit))
        if rt.db.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True)
        entries = s.scalars(stmt).all()
        for e in entries:
            queue.enqueue(e.queue, e.job, {**e.payload, "outbox_id": e.id}, entry_id=e.id)
            e.relayed_at, e.relays = now, (e.relays or 0) + 1
    return len(entries)


def mark_done(session: Session, entry_id: int | None, now: datetime) -> None:
    """Called by a job inside the transaction that records its outcome."""
    if entry_id is not None:
        session.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id, OutboxEntry.done_at.is_(None))
                        .values(done_at=now))


def sweep_expired_leases(rt, lease: timedelta) -> int:
    """Relay again every job that was handed out `lease` ago and never reported back."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        done = s.execute(update(OutboxEntry)
                         .where(OutboxEntry.done_at.is_(None), OutboxEntry.relayed_at < now - lease,
                                OutboxEntry.relays < MAX_RELAYS)
                         .values(relayed_at=None, available_at=now))
    if done.rowcount:
        log.warning("re-relaying jobs whose worker never reported back", extra={"count": done.rowcount})
    return done.rowcount or 0


def next_available(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.relayed_at.is_(None))
                        .order_by(OutboxEntry.available_at).limit(1))
