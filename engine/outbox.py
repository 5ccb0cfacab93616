"""The transactional outbox: side effects are rows written with the state change, relayed to the job
queue after commit. Relaying is at-least-once, so every job is idempotent."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from .db import Prepared, insert_all
from .models import Incident, OutboxEntry

log = logging.getLogger(__name__)

MAX_RELAYS = 5  # a job that kills its worker this often is left for an operator (see /metrics)
WAKEUP_CHANNEL = "gridloop_wakeup"  # the scheduler LISTENs: new jobs and earlier timers wake it at once


class JobQueue(Protocol):
    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        """Hand one job to the workers; raise if it could not be handed over."""


OB = OutboxEntry.__table__
INSERT = Prepared(insert_all(OB))
_DUE = (select(OB.c.id, OB.c.queue, OB.c.job, OB.c.payload)
        .where(OB.c.relayed_at.is_(None), OB.c.available_at <= bindparam("now"))
        .order_by(OB.c.id).limit(bindparam("limit")))
_DUE_PG = Prepared(_DUE.with_for_update(skip_locked=True))
_DUE_ANY = Prepared(_DUE)
_RELAYED = Prepared(update(OB).where(OB.c.id == bindparam("entry_id"))
                    .values(relayed_at=bindparam("now"), relays=func.coalesce(OB.c.relays, 0) + 1))
_WAKE = text(f"NOTIFY {WAKEUP_CHANNEL}")  # transactional: delivered on commit, folded with repeats
DONE = Prepared(update(OB).where(OB.c.id == bindparam("entry_id"), OB.c.done_at.is_(None))
                .values(done_at=bindparam("now")))


def row(now: datetime, *, queue: str, job: str, payload: dict[str, Any],
        available_at: datetime | None = None) -> dict[str, Any]:
    """The parameters of `INSERT` for one outbox row."""
    return {"queue": queue, "job": job, "payload": payload, "created_at": now, "available_at": available_at or now,
            "relayed_at": None, "done_at": None, "relays": 0}


def add(session: Session | Connection, now: datetime, *, queue: str, job: str, payload: dict[str, Any],
        available_at: datetime | None = None) -> None:
    """Write one outbox row in the caller's transaction, and wake the scheduler when it commits (on
    PostgreSQL; a scheduler in another process would otherwise find the job only on its next tick)."""
    session.execute(INSERT.stmt, row(now, queue=queue, job=job, payload=payload, available_at=available_at))
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(_WAKE)


def relay(rt, queue: JobQueue, limit: int = 200) -> int:
    """Move due outbox rows to the job queue. A row is marked relayed in the same transaction that
    enqueued it; if the queue is down the transaction rolls back and the rows wait for next time."""
    now = rt.clock.now()
    with rt.db.begin() as conn:
        entries = rt.db.rows(conn, _DUE_PG if rt.db.is_postgres else _DUE_ANY, {"now": now, "limit": limit})
        if not entries:
            return 0
        for e in entries:
            queue.enqueue(e["queue"], e["job"], {**e["payload"], "outbox_id": e["id"]}, entry_id=e["id"])
        rt.db.run(conn, _RELAYED, [{"entry_id": e["id"], "now": now} for e in entries])
    return len(entries)


def mark_done(session: Session | Connection, entry_id: int | None, now: datetime) -> bool:
    """Called by a job inside the transaction that records its outcome. False when the row was done
    already: another delivery of the same job got there first, and this one must not record twice."""
    if entry_id is None:
        return True
    return session.execute(DONE.stmt, done_params(entry_id, now)).rowcount == 1


def done_params(entry_id: int, now: datetime) -> dict[str, Any]:
    """The parameters of `DONE` (mark the row done unless it is already)."""
    return {"entry_id": entry_id, "now": now}


def sweep_expired_leases(rt, lease: timedelta) -> int:
    """Relay again every job that was handed out `lease` ago and never reported back."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        done = s.execute(update(OutboxEntry)
                         .where(OutboxEntry.done_at.is_(None), OutboxEntry.relayed_at < now - lease,
                                OutboxEntry.relays < MAX_RELAYS)
                         .values(relayed_at=None, available_at=now))
        given_up = s.execute(update(OutboxEntry)
                             .where(OutboxEntry.done_at.is_(None), OutboxEntry.relayed_at < now - lease,
                                    OutboxEntry.relays >= MAX_RELAYS)
                             .values(done_at=now).returning(OutboxEntry.id, OutboxEntry.queue, OutboxEntry.job,
                                                            OutboxEntry.payload)).all()
        for entry_id, queue, job, payload in given_up:  # each killed its worker MAX_RELAYS times: an operator looks
            # a service call keeps its own payload (retried as a service call); any other job is kept
            # whole, as `job` incidents are, so that a retry puts the same job on the same queue again
            kept = payload if job == "service_call" else {"queue": queue, "job": job, "payload": payload}
            s.add(Incident(kind="job_lost", instance_id=payload.get("instance_id"), task_id=payload.get("task_id"),
                           element_id=payload.get("element_id"), operation=payload.get("operation") or job,
                           message=f"job {job} (outbox {entry_id}) never finished in {MAX_RELAYS} deliveries",
                           attempts=MAX_RELAYS, payload=kept, status="open", created_at=now))
    if done.rowcount:
        log.warning("re-relaying jobs whose worker never reported back", extra={"count": done.rowcount})
    if given_up:
        log.error("gave up on jobs that never finished; incidents raised", extra={"count": len(given_up)})
    return done.rowcount or 0


def next_available(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.relayed_at.is_(None))
                        .order_by(OutboxEntry.available_at).limit(1))
