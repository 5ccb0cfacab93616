"""Timers: SpiffWorkflow has no clock of its own, so after every change the earliest waiting
deadline is stored as `next_wakeup_at`, and the scheduler fires instances that are due, each in its
own locked transaction that re-checks the deadline (exactly once, however many schedulers run)."""

from __future__ import annotations

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


def waiting_timer_tasks(workflow) -> dict[str, str]:
    """Waiting timer task guid -> BPMN element id."""
    out = {}
    for task in workflow.event_manager.tasks.values():
        if isinstance(task.task_spec.event_definition, TimerEventDefinition):
            out[str(task.id)] = task.task_spec.bpmn_id or task.task_spec.name
    return out


def due_instances(rt, now: datetime, limit: int = 200) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(
            select(ProcessInstance.id)
            .where(ProcessInstance.next_wakeup_at <= now, ProcessInstance.status == "running")
            .order_by(ProcessInstance.next_wakeup_at).limit(limit)
        ))


def fire_instance(rt, instance_id: str) -> list[str]:
    """Fire the due timers of one instance; returns the elements fired (empty if not due any more)."""
    from .change import change_instance

    with change_instance(rt, instance_id, actor="scheduler") as ch:
        row = ch.instance
        if row.status != "running" or row.next_wakeup_at is None or row.next_wakeup_at > ch.now:
            return []  # another scheduler got here first, or the instance moved on
        waiting = waiting_timer_tasks(ch.workflow)
        ch.run_engine()
        fired = [element for guid, element in waiting.items() if _left_waiting(ch.workflow, guid)]
        ch.record("timer.fired", elements=fired, deadline=row.next_wakeup_at.isoformat())
    return fired


def _left_waiting(workflow, guid: str) -> bool:
    from .spiff_specs import find_task

    task = find_task(workflow, guid)
    return task is None or not task.has_state(TaskState.WAITING) or task.has_state(TaskState.FINISHED_MASK)


def fire_due(rt, limit: int = 200) -> int:
    """Fire every instance due now; returns how many instances had timers fire."""
    fired = 0
    for instance_id in due_instances(rt, rt.clock.now(), limit):
        try:
            if fire_instance(rt, instance_id):
                fired += 1
        except Exception:  # one broken instance must not stop the others
            log.exception("timer firing failed", extra={"instance_id": instance_id})
    return fired


def earliest_wakeup(rt) -> datetime | None:
    with rt.db.session() as s:
        return s.scalar(select(ProcessInstance.next_wakeup_at)
                        .where(ProcessInstance.status == "running", ProcessInstance.next_wakeup_at.is_not(None))
                        .order_by(ProcessInstance.next_wakeup_at).limit(1))


WAKE_SLACK = timedelta(milliseconds=5)  # SpiffWorkflow fires only when deadline < now (strict)
