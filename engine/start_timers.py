"""Timer start events: the scheduler starts an instance of a process key when its start timer falls
due (a timeDate once; a timeCycle once per period).

One `start_schedule` row per key follows the version new cases start on: a deploy or a rollback
(make-latest) re-reads it from that version's model; a version with the same timer takes the
schedule over as it stands, a different timer starts a new schedule from now, a version without
one ends it. Firing locks the row, re-checks that it is due and starts the instance in the same
transaction that moves the row on, so a period starts exactly once however many schedulers run
(and each start's business key, `timer:<the period's time>`, is unique besides).

Missed periods (the scheduler was down) start once on recovery, not once per missed period: the
row moves to the first period still ahead and the audit says how many were missed. A period that
falls due while the latest version is suspended starts nothing and is not made up later."""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import cast

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from . import audit
from .change import after_commit
from .models import Incident, ProcessDefinition, StartSchedule
from .runtime import Runtime
from .spiff_specs import StartTimer, parse_cycle

log = logging.getLogger(__name__)

ACTOR = "scheduler"
SS = cast(Table, StartSchedule.__table__)
PD = cast(Table, ProcessDefinition.__table__)
INCIDENT = cast(Table, Incident.__table__)


def literal(timer: StartTimer) -> str:
    """The value of a start timer's expression (a quoted literal: the deploy refuses anything else)."""
    import ast

    return ast.literal_eval(timer.expression.strip())


def first_due(timer: StartTimer, now: datetime) -> tuple[datetime | None, int]:
    """When a new schedule first starts an instance, and how many starts it has (-1: unbounded).
    A date already past starts once at once; a cycle counts its periods from its own start and
    skips those that ended before `now` (they were before the schedule existed, not missed)."""
    value = literal(timer)
    if timer.kind == "date":
        return TimerEventDefinition.parse_time_or_duration(value), 1
    cycles, start, period = parse_cycle(value, now)
    if start < now:
        skipped = math.ceil((now - start) / period)
        if cycles >= 0:
            cycles = max(cycles - skipped, 0)
        start += skipped * period
    return (start if cycles != 0 else None), cycles


def _period(row, now: datetime) -> timedelta:
    return parse_cycle(literal(StartTimer(row["element_id"], row["kind"], row["expression"])), now)[2]


def sync(s: Session, key: str, definition_id: int, timers: list[StartTimer], now: datetime) -> bool:
    """Make the key's schedule follow the version `definition_id`, the one new cases now start on
    (inside the deploy's or the rollback's transaction, under the deploy lock). True when the key
    has a schedule with a start ahead (the caller wakes the scheduler)."""
    row = s.scalar(select(StartSchedule).where(StartSchedule.key == key).with_for_update())
    if not timers:
        if row is not None:
            s.delete(row)
        return False
    timer = timers[0]
    if row is not None and (row.element_id, row.kind, row.expression) == (timer.element_id, timer.kind,
                                                                          timer.expression):
        row.definition_id, row.updated_at = definition_id, now  # the same timer: its schedule goes on
        return row.next_at is not None
    next_at, remaining = first_due(timer, now)
    if row is None:
        row = StartSchedule(key=key, starts=0)
        s.add(row)
    row.definition_id, row.element_id, row.kind, row.expression = definition_id, timer.element_id, timer.kind, \
        timer.expression
    row.next_at, row.remaining, row.updated_at = next_at, remaining, now
    return next_at is not None


def _pending(rt: Runtime, now: datetime, limit: int) -> tuple[list[str], datetime | None]:
    """The keys due now (at most `limit`) and the earliest start after them, in one query: the
    scheduler asks on every tick."""
    with rt.db.read() as conn:
        rows = conn.execute(select(SS.c.key, SS.c.next_at).where(SS.c.next_at.is_not(None))
                            .order_by(SS.c.next_at).limit(limit + 1)).all()
    due = [key for key, at in rows if at < now][:limit]
    later = next((at for _key, at in rows if at >= now), None)
    return due, later


def earliest(rt: Runtime) -> datetime | None:
    with rt.db.read() as conn:
        return conn.scalar(select(SS.c.next_at).where(SS.c.next_at.is_not(None)).order_by(SS.c.next_at).limit(1))


def fire_due(rt: Runtime, limit: int = 50) -> tuple[int, datetime | None]:
    """Start an instance for every schedule due now; returns how many started and when the next start
    is due (None: no schedule ahead; after a full batch, now: more may be due)."""
    started = 0
    now = rt.clock.now()
    due, later = _pending(rt, now, limit)
    for key in due:
        try:
            if fire(rt, key) is not None:
                started += 1
        except Exception as exc:  # a start that fails must not stop the others, nor be tried forever
            log.exception("timer start failed", extra={"process_key": key})
            park(rt, key, f"{type(exc).__name__}: {exc}")
    if due:
        later = earliest(rt)
    return started, later


def _advance(row, now: datetime) -> tuple[datetime | None, int, int]:
    """(next time, starts left, periods missed) once the period due at `row.next_at` has fired."""
    remaining = row["remaining"] - 1 if row["remaining"] > 0 else row["remaining"]
    if row["kind"] == "date" or remaining == 0:
        return None, 0, 0
    period = _period(row, now)
    following = row["next_at"] + period
    missed = math.ceil((now - following) / period) if following < now else 0
    if remaining > 0:
        missed = min(missed, remaining)
        remaining -= missed
    return (following + missed * period if remaining != 0 else None), remaining, missed


def _locked_due(rt: Runtime, conn, key: str):
    """The schedule row under its lock (PostgreSQL FOR UPDATE; SQLite holds the write lock), if due."""
    row = conn.execute(select(*SS.c).where(SS.c.key == key).with_for_update()).mappings().first()
    now = rt.clock.now()
    if row is None or row["next_at"] is None or row["next_at"] >= now:
        return None, now  # another scheduler got here first, or the schedule changed
    return row, now


def fire(rt: Runtime, key: str) -> str | None:
    """Start the instance of the period due for `key`; returns its id (None: nothing was due, or the
    latest version is suspended). Raises when the start fails; the caller parks the period."""
    change = None
    with rt.db.begin() as conn:
        row, now = _locked_due(rt, conn, key)
        if row is None:
            return None
        occurrence = row["next_at"]
        next_at, remaining, missed = _advance(row, now)
        latest = conn.execute(select(PD.c.id, PD.c.version, PD.c.suspended)
                              .where(PD.c.key == key, PD.c.is_latest)).first()
        details = {"key": key, "element": row["element_id"], "due": occurrence.isoformat(), "missed": missed,
                   "next": next_at.isoformat() if next_at else None}
        if latest is None or latest.suspended:
            audit.append_system(rt, conn, [audit.AuditDraft(
                action="start_timer.skipped", actor=ACTOR, at=now,
                details={**details, "reason": "the latest version is suspended" if latest else "no latest version"})])
        else:
            change = start_period(rt, conn, key, occurrence.isoformat())
            audit.append_system(rt, conn, [audit.AuditDraft(
                action="start_timer.fired", actor=ACTOR, at=now,
                details={**details, "instance_id": change.instance.id, "definition_id": latest.id,
                         "version": latest.version})])
        conn.execute(SS.update().where(SS.c.key == key).values(
            next_at=next_at, remaining=remaining, updated_at=now,
            starts=SS.c.starts + (1 if change is not None else 0),
            last_start_at=now if change is not None else row["last_start_at"]))
    if change is None:
        return None
    after_commit(rt, change)
    return change.instance.id


def start_period(rt: Runtime, conn, key: str, due: str, actor: str = ACTOR):
    """Start the instance of one period inside the caller's transaction (the scheduler's, or an
    operator's retry of a period that failed); returns the change for `after_commit`."""
    from . import instances

    return instances.start_in(rt, conn, actor=actor, key=key, business_key=f"timer:{due}")


def park(rt: Runtime, key: str, error: str) -> None:
    """A period whose start failed (a start form it cannot fill, a broken model) becomes an incident
    and the schedule moves on to the next period (otherwise every tick would fail on it again)."""
    with rt.db.begin() as conn:
        row, now = _locked_due(rt, conn, key)
        if row is None:
            return
        next_at, remaining, missed = _advance(row, now)
        conn.execute(INCIDENT.insert().values(
            kind="start_timer", instance_id=None, task_id=None, element_id=row["element_id"], operation=None,
            message=error, attempts=1, payload={"key": key, "due": row["next_at"].isoformat()}, status="open",
            created_at=now))
        conn.execute(SS.update().where(SS.c.key == key).values(next_at=next_at, remaining=remaining,
                                                                updated_at=now))
        audit.append_system(rt, conn, [audit.AuditDraft(
            action="start_timer.failed", actor=ACTOR, at=now,
            details={"key": key, "element": row["element_id"], "due": row["next_at"].isoformat(), "error": error,
                     "missed": missed})])
