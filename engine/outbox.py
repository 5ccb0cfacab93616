"""The transactional outbox: side effects are rows written with the state change, relayed to the job
queue after commit. Relaying is at-least-once, so every job is idempotent."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import OutboxEntry

log = logging.getLogger(__name__)


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
            queue.enqueue(e.queue, e.job, e.payload, entry_id=e.id)
            e.relayed_at = now
    return len(entries)


def next_available(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.relayed_at.is_(None))
                        .order_by(OutboxEntry.available_at).limit(1))
