"""Timers: SpiffWorkflow has no clock of its own, so after every change the earliest waiting
deadline is stored as `next_wakeup_at`, and the scheduler fires instances that are due, each in its
own locked transaction that re-checks the deadline (exactly once, however many schedulers run)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import cast

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, bindparam, false, select

from .db import Prepared
from .models import ProcessInstance
from .spiff_specs import deadline_of, timer_element, waiting_timers

log = logging.getLogger(__name__)


def timer_deadlines(workflow) -> list[datetime]:
    """The deadline of every timer the workflow waits on: intermediate and boundary timers (on tasks
    and sub-processes), and the timers of multiple events and event-based gateways."""
    deadlines = []
    for task in workflow.event_manager.tasks.values():
        for _timer, state in waiting_timers(task):
            deadline = deadline_of(state)
            if deadline is not None:
                deadlines.append(deadline)
    return deadlines


def next_wakeup(workflow) -> datetime | None:
    return min(timer_deadlines(workflow), default=None)


def _waiting_timers(workflow) -> dict[tuple[str, str], tuple[str, str]]:
    """(waiting task guid, timer's element) -> (the element, its deadline state as text)."""
    out = {}
    for task in workflow.event_manager.tasks.values():
        for timer, state in waiting_timers(task):
            element = timer_element(task, timer)
            out[(str(task.id), element)] = (element, json.dumps(state, default=str, sort_keys=True))
    return out


PI = cast(Table, ProcessInstance.__table__)
# The running, unsuspended instances past their deadline, earliest first: the partial index
# ix_instance_due holds exactly these (its predicate spells `suspended = false`, as this does).
_MAY_FIRE = (PI.c.status == "running", PI.c.suspended == false())


def _due(*columns):
    """Instances whose wake-up time is before `now` (bound), soonest first, at most `limit` (bound)."""
    return (select(*columns).where(PI.c.next_wakeup_at < bindparam("now"), *_MAY_FIRE)
            .order_by(PI.c.next_wakeup_at).limit(bindparam("limit")))


_DUE_IDS = _due(PI.c.id)
# A batch's rows, every column, locked in one statement; rows another transaction holds are skipped.
_LOCK_DUE = Prepared(_due(*PI.c).with_for_update(skip_locked=True))


def due_instances(rt, now: datetime, limit: int = 200) -> list[str]:
    with rt.db.read() as conn:
        return list(conn.scalars(_DUE_IDS, {"now": now, "limit": limit}))


def fire_instance(rt, instance_id: str) -> list[str]:
    """Fire the due timers of one instance in its own transaction; returns the elements fired (empty
    if not due any more). SpiffWorkflow fires only once the deadline is strictly in the past; so do we."""
    from .change import Abandon, change_instance

    try:
        with change_instance(rt, instance_id, actor="scheduler") as ch:
            fired = _fire(ch)
    except Abandon:
        return []
    return fired


def _fire(ch) -> list[str]:
    """The firing, inside a change: re-checks the deadline under the instance lock (raises Abandon
    when another scheduler got here first, the instance moved on or was suspended)."""
    from .change import Abandon

    row = ch.instance
    if row.status != "running" or row.suspended or row.next_wakeup_at is None or row.next_wakeup_at >= ch.now:
        raise Abandon
    waiting = _waiting_timers(ch.workflow)
    ch.run_engine()
    ch.settled = True  # nothing touches the workflow after this run
    fired = _fired(ch.workflow, waiting, set(ch.ran))
    if fired:
        ch.record("timer.fired", elements=fired, deadline=row.next_wakeup_at.isoformat())
    return fired


def fire_batch(rt, limit: int = 200, *, late_by: timedelta = timedelta(0)) -> tuple[int, int]:
    """Fire up to `limit` due instances in one transaction; returns (instances whose timers fired,
    instances taken). `late_by`: only instances whose deadline passed at least that long ago.

    The batch locks its rows (every column) in one statement, skipping rows another scheduler or a
    user's change holds (PostgreSQL; SQLite holds the write lock), then runs for each exactly the
    change `fire_instance` runs: the same re-check under the lock, the same writes. Only the commit
    is shared, so either every change of the batch is kept or none is. A batch that fails for any
    reason rolls back whole and its instances are fired one transaction each, which isolates
    the broken one (it is parked as an incident) and fires the others."""
    from .change import Abandon, after_commit, change_in

    changes, fired = [], 0
    try:
        with rt.db.begin() as conn:
            rows = rt.db.rows(conn, _LOCK_DUE, {"now": rt.clock.now() - late_by, "limit": limit})
            ids = [row["id"] for row in rows]
            for row in rows:
                try:
                    with change_in(rt, conn, row["id"], actor="scheduler", locked_row=row) as ch:
                        fired += bool(_fire(ch))
                except Abandon:
                    continue
                changes.append(ch)
    except Exception:
        log.warning("a batch of due timers failed; firing its instances one by one", exc_info=True)
        ids = due_instances(rt, rt.clock.now() - late_by, limit)
        return _fire_each(rt, ids), len(ids)
    for ch in changes:
        after_commit(rt, ch)
    return fired, len(ids)


def _fired(workflow, waiting: dict[tuple[str, str], tuple[str, str]], ran: set[str]) -> list[str]:
    """A one-shot timer fired if its element ran (for a gateway: its branch's catch event); a cycle
    timer stays waiting with its next deadline moved on. A timer cancelled by an interrupting event,
    or a gateway branch that lost to another event, did neither."""
    from .spiff_specs import find_task

    fired = []
    for (guid, _key), (element, value) in waiting.items():
        task = find_task(workflow, guid)
        if element in ran:
            fired.append(element)
        elif task is not None and task.has_state(TaskState.WAITING):
            states = [json.dumps(state, default=str, sort_keys=True) for timer, state in waiting_timers(task)
                      if timer_element(task, timer) == element]
            if states and states[0] != value:
                fired.append(element)
    return fired


def fire_due(rt, limit: int = 200) -> int:
    """Fire the instances due now (up to `limit`, in one batch); returns how many had timers fire."""
    return fire_batch(rt, limit)[0]


def _fire_each(rt, instance_ids: list[str]) -> int:
    fired = 0
    for instance_id in instance_ids:
        try:
            if fire_instance(rt, instance_id):
                fired += 1
        except Exception as exc:  # one broken instance must not stop the others, nor spin the scheduler
            log.exception("timer firing failed", extra={"instance_id": instance_id})
            park(rt, instance_id, f"{type(exc).__name__}: {exc}")
    return fired


def park(rt, instance_id: str, error: str) -> None:
    """A timer that cannot fire becomes an incident and the instance stops being due until an
    operator retries it (otherwise the scheduler would try it again at once, forever)."""
    from . import audit
    from .change import instance_lock
    from .models import Incident

    now = rt.clock.now()
    with rt.db.transaction() as s:
        row = s.scalar(instance_lock(instance_id))
        if row is None or row.next_wakeup_at is None:
            return
        s.add(Incident(kind="timer", instance_id=instance_id, task_id=None, element_id=None, operation=None,
                       message=error, attempts=1, payload={"deadline": row.next_wakeup_at.isoformat()},
                       status="open", created_at=now))
        row.next_wakeup_at = None
        audit.append_to_instance(rt, s, row, [audit.AuditDraft(action="incident.raised", actor="scheduler", at=now,
                                                           instance_id=instance_id, details={"error": error})])


def earliest_wakeup(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(PI.c.next_wakeup_at).where(PI.c.next_wakeup_at.is_not(None), *_MAY_FIRE)
                        .order_by(PI.c.next_wakeup_at).limit(1))


WAKE_SLACK = timedelta(milliseconds=5)  # SpiffWorkflow fires only when deadline < now (strict)
