"""Timers: SpiffWorkflow has no clock of its own, so after every change the earliest waiting
deadline is stored as `next_wakeup_at`, and the scheduler fires instances that are due, each in its
own locked transaction that re-checks the deadline (exactly once, however many schedulers run)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from .models import ProcessInstance

log = logging.getLogger(__name__)

TIMER_EVENTS = {"ClockedTimeDate", "ClockedDuration", "ClockedCycle",
                "TimeDateEventDefinition", "DurationTimerEventDefinition", "CycleTimerEventDefinition"}


def timer_deadlines(workflow) -> list[datetime]:
    deadlines = []
    for event in workflow.waiting_events():
        if event.event_type in TIMER_EVENTS and isinstance(event.value, str):
            deadlines.append(TimerEventDefinition.get_datetime(event.value))
    return deadlines


def next_wakeup(workflow) -> datetime | None:
    return min(timer_deadlines(workflow), default=None)


def _waiting_timers(workflow) -> dict[str, tuple[str, str]]:
    """Waiting timer task guid -> (BPMN element id, its deadline state as text)."""
    out = {}
    for task in workflow.event_manager.tasks.values():
        if isinstance(task.task_spec.event_definition, TimerEventDefinition):
            value = json.dumps(task.internal_data.get("event_value"), default=str, sort_keys=True)
            out[str(task.id)] = (task.task_spec.bpmn_id or task.task_spec.name, value)
    return out


def due_instances(rt, now: datetime, limit: int = 200) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(
            select(ProcessInstance.id)
            .where(ProcessInstance.next_wakeup_at < now, ProcessInstance.status == "running")
            .order_by(ProcessInstance.next_wakeup_at).limit(limit)
        ))


def fire_instance(rt, instance_id: str) -> list[str]:
    """Fire the due timers of one instance; returns the elements fired (empty if not due any more).
    SpiffWorkflow fires only once the deadline is strictly in the past; so do we."""
    from .change import Abandon, change_instance

    try:
        with change_instance(rt, instance_id, actor="scheduler") as ch:
            row = ch.instance
            if row.status != "running" or row.next_wakeup_at is None or row.next_wakeup_at >= ch.now:
                raise Abandon  # another scheduler got here first, or the instance moved on
            waiting = _waiting_timers(ch.workflow)
            ch.run_engine()
            fired = _fired(ch.workflow, waiting, set(ch.ran))
            if fired:
                ch.record("timer.fired", elements=fired, deadline=row.next_wakeup_at.isoformat())
    except Abandon:
        return []
    return fired


def _fired(workflow, waiting: dict[str, tuple[str, str]], ran: set[str]) -> list[str]:
    """A one-shot timer fired if its element ran; a cycle timer stays waiting with its next deadline
    moved on. A timer cancelled by an interrupting event did neither."""
    from .spiff_specs import find_task

    fired = []
    for guid, (element, value) in waiting.items():
        task = find_task(workflow, guid)
        if element in ran:
            fired.append(element)
        elif task is not None and task.has_state(TaskState.WAITING):
            now_value = json.dumps(task.internal_data.get("event_value"), default=str, sort_keys=True)
            if now_value != value:
                fired.append(element)
    return fired


def fire_due(rt, limit: int = 200) -> int:
    """Fire every instance due now; returns how many instances had timers fire."""
    fired = 0
    for instance_id in due_instances(rt, rt.clock.now(), limit):
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
        audit.append_to_instance(s, row, [audit.AuditDraft(action="incident.raised", actor="scheduler", at=now,
                                                           instance_id=instance_id, details={"error": error})])


def earliest_wakeup(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(ProcessInstance.next_wakeup_at)
                        .where(ProcessInstance.status == "running", ProcessInstance.next_wakeup_at.is_not(None))
                        .order_by(ProcessInstance.next_wakeup_at).limit(1))


WAKE_SLACK = timedelta(milliseconds=5)  # SpiffWorkflow fires only when deadline < now (strict)
