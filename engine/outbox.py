"""The transactional outbox: side effects are rows written with the state change, relayed to the job
queue after commit. Relaying is at-least-once, so every job is idempotent."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Connection, Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session

from .db import Prepared, insert_all
from .models import Incident, OutboxEntry

if TYPE_CHECKING:
    from sqlalchemy import CursorResult

log = logging.getLogger(__name__)

HOLD_MAX = timedelta(seconds=1)  # the longest a batch with room left waits for more rows (see relay)
MAX_RELAYS = 5  # a job that kills its worker this often is left for an operator (see /metrics)
WAKEUP_CHANNEL = "gridloop_wakeup"  # the scheduler LISTENs: new jobs and earlier timers wake it at once


BATCH = "batch"  # the payload of a job that carries several outbox rows: {"batch": [payload, ...]}


class JobQueue(Protocol):
    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, key: str) -> None:
        """Hand one job to the workers; raise if it could not be handed over. `key` names the job by
        the outbox rows it carries: handing out the same rows again replaces their earlier job."""

    def waiting(self, queue: str) -> int:
        """How many jobs wait in `queue` for a worker."""


OB = cast(Table, OutboxEntry.__table__)
INSERT = Prepared(insert_all(OB))
_DUE = (select(OB.c.id, OB.c.queue, OB.c.job, OB.c.payload, OB.c.available_at, OB.c.relays)
        .where(OB.c.relayed_at.is_(None), OB.c.available_at <= bindparam("now"))
        .order_by(OB.c.id).limit(bindparam("limit")))
_DUE_PG = Prepared(_DUE.with_for_update(skip_locked=True))
_DUE_ANY = Prepared(_DUE)
_RELAYED = Prepared(update(OB).where(OB.c.id == bindparam("entry_id"))
                    .values(relayed_at=bindparam("now"), relays=func.coalesce(OB.c.relays, 0) + 1))
_WAKE = text(f"NOTIFY {WAKEUP_CHANNEL}")  # transactional: delivered on commit, folded with repeats
_EXPIRED = (select(OB.c.id, OB.c.queue, OB.c.job, OB.c.payload, OB.c.relays)
            .where(OB.c.done_at.is_(None), OB.c.relayed_at < bindparam("before"))
            .order_by(OB.c.id).with_for_update(skip_locked=True))
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
    enqueued it; if the queue is down the transaction rolls back and the rows wait for next time.

    A batch with room left waits while its queue has jobs waiting (the workers are busy, so it would
    wait there too), at most `HOLD_MAX`: rows that come one at a time then still leave in batches when
    workers fall behind, and go at once when they keep up."""
    now = rt.clock.now()
    relayed: list[int] = []
    with rt.db.begin() as conn:
        entries = rt.db.rows(conn, _DUE_PG if rt.db.is_postgres else _DUE_ANY, {"now": now, "limit": limit})
        if not entries:
            return 0
        for job in handouts(entries, lambda name: batch_size(rt.job_handlers.get(name))):
            if job.room_left and now - job.due_since < HOLD_MAX and queue.waiting(job.queue):
                continue
            queue.enqueue(job.queue, job.job, job.payload, key=job.key)
            relayed.extend(job.entry_ids)
        if relayed:
            rt.db.run(conn, _RELAYED, [{"entry_id": entry_id, "now": now} for entry_id in relayed])
    return len(relayed)


def batch_size(handler: object) -> int:
    """How many rows one job of `handler` may carry: its `batch_size` (a handler that has one runs
    `run_batch(rt, payloads)` and marks each row done itself), else 1."""
    return max(1, int(getattr(handler, "batch_size", 1)))


@dataclass(frozen=True)
class Handout:
    """One job for the job queue, carrying one outbox row or a batch of them."""

    queue: str
    job: str
    payload: dict[str, Any]
    key: str  # the job's id: its rows, so that the same rows handed out again replace it
    entry_ids: tuple[int, ...]
    due_since: datetime  # when its oldest row became due
    room_left: bool = False  # a batch short of its size: it may wait for more rows while workers are busy


def handouts(entries: Sequence[Mapping[str, Any]], size_of: Callable[[str], int]) -> Iterator[Handout]:
    """The jobs that carry `entries` (in id order). Rows of a job whose handler takes batches are
    gathered, up to its batch size, into one job per queue and name.

    A row handed out before (its worker never reported back) goes alone: were it one that kills its
    worker, it would otherwise take the same batch down on every relay, sending the rows before it
    again each time and never the rows after it."""
    filling: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for e in entries:
        size = 1 if e.get("relays") else size_of(e["job"])
        if size == 1:
            yield _handout([e])
            continue
        batch = filling.setdefault((e["queue"], e["job"]), [])
        batch.append(e)
        if len(batch) == size:
            yield _handout(filling.pop((e["queue"], e["job"])))
    for batch in filling.values():
        yield _handout(batch, room_left=True)


def _handout(rows: Sequence[Mapping[str, Any]], *, room_left: bool = False) -> Handout:
    payloads = [{**e["payload"], "outbox_id": e["id"]} for e in rows]
    ids = tuple(e["id"] for e in rows)
    if len(ids) == 1:
        key = f"outbox-{ids[0]}"
    else:
        key = f"outbox-{ids[0]}-{len(ids)}-{hashlib.blake2b(repr(ids).encode(), digest_size=6).hexdigest()}"
    return Handout(rows[0]["queue"], rows[0]["job"], {BATCH: payloads} if len(payloads) > 1 else payloads[0], key,
                   ids, min(e["available_at"] for e in rows), room_left)


def mark_done(session: Session | Connection, entry_id: int | None, now: datetime) -> bool:
    """Called by a job inside the transaction that records its outcome. False when the row was done
    already: another delivery of the same job got there first, and this one must not record twice."""
    if entry_id is None:
        return True
    done = cast("CursorResult[Any]", session.execute(DONE.stmt, done_params(entry_id, now)))  # an UPDATE's result
    return done.rowcount == 1


def done_params(entry_id: int, now: datetime) -> dict[str, Any]:
    """The parameters of `DONE` (mark the row done unless it is already)."""
    return {"entry_id": entry_id, "now": now}


def sweep_expired_leases(rt, lease: timedelta) -> int:
    """Relay again every job that was handed out `lease` ago and never reported back.

    The rows are locked first, in id order and skipping those a job holds while it records its
    outcome (a batch marks many rows done in one transaction): the sweeper never waits on a job,
    so the two cannot deadlock; a skipped row is finished by its job or swept next time."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        expired = s.execute(_EXPIRED, {"before": now - lease}).all()
        again = [e.id for e in expired if (e.relays or 0) < MAX_RELAYS]
        given_up = [e for e in expired if (e.relays or 0) >= MAX_RELAYS]
        if again:
            s.execute(update(OB).where(OB.c.id.in_(again)).values(relayed_at=None, available_at=now))
        if given_up:
            s.execute(update(OB).where(OB.c.id.in_([e.id for e in given_up])).values(done_at=now))
        for entry_id, queue, job, payload, _relays in given_up:  # each killed its worker MAX_RELAYS times
            # a service call keeps its own payload (retried as a service call); any other job is kept
            # whole, as `job` incidents are, so that a retry puts the same job on the same queue again
            kept = payload if job == "service_call" else {"queue": queue, "job": job, "payload": payload}
            s.add(Incident(kind="job_lost", instance_id=payload.get("instance_id"), task_id=payload.get("task_id"),
                           element_id=payload.get("element_id"), operation=payload.get("operation") or job,
                           message=f"job {job} (outbox {entry_id}) never finished in {MAX_RELAYS} deliveries",
                           attempts=MAX_RELAYS, payload=kept, status="open", created_at=now))
    if again:
        log.warning("re-relaying jobs whose worker never reported back", extra={"count": len(again)})
    if given_up:
        log.error("gave up on jobs that never finished; incidents raised", extra={"count": len(given_up)})
    return len(again)


def next_available(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.relayed_at.is_(None))
                        .order_by(OutboxEntry.available_at).limit(1))
