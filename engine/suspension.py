"""Suspending and activating a running instance (an administrator's action, audited with a reason).

While suspended, an instance completes no task (409), fires no timer (the scheduler passes it by and
its deadline stays as it is), takes no signal (signals are not kept), and messages for it wait in
the buffer. Activation delivers what was buffered for the instance's waits and fires the timers that
fell due meanwhile, in the activating change."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, update

from . import audit
from .change import PI, Change, change_instance, locked_instance
from .db import Prepared
from .errors import Conflict
from .models import Message, ProcessInstance
from .readmodels import correlation_value, deliver, message_definition, take_buffered, waiting_message_tasks
from .runtime import Runtime
from .spiff_specs import deadline_of, timer_element, waiting_timers

MSG = cast(Table, Message.__table__)
_ACTIVATE = Prepared(update(PI).where(PI.c.id == bindparam("row_id")).values(suspended=False))
_DELIVERED = Prepared(update(MSG).where(MSG.c.id == bindparam("message_id"))
                      .values(status="delivered", delivered_at=bindparam("at"), instance_id=bindparam("instance_id")))


def suspend(rt: Runtime, instance_id: str, actor: str, reason: str) -> ProcessInstance:
    """Suspend a running instance; its timers keep their deadlines."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        row = locked_instance(s, instance_id)
        if row.status != "running":
            raise Conflict(f"instance is {row.status}, not running", status=row.status)
        if row.suspended:
            raise Conflict("instance is suspended already")
        row.suspended = True
        audit.append_to_instance(rt, s, row, [audit.AuditDraft(
            action="instance.suspended", actor=actor, at=now, instance_id=instance_id,
            details={"reason": reason, "nextWakeupAt": _iso(row.next_wakeup_at)})])
    return row


def activate(rt: Runtime, instance_id: str, actor: str, reason: str) -> ProcessInstance:
    """Let a suspended instance go on: buffered messages reach the tasks waiting for them and the
    timers that fell due while it was suspended fire, in this change."""
    with change_instance(rt, instance_id, actor) as ch:
        row = ch.instance
        if row.status != "running":
            raise Conflict(f"instance is {row.status}, not running", status=row.status)
        if not row.suspended:
            raise Conflict("instance is not suspended")
        row.suspended = False
        ch.write_later(_ACTIVATE, {"row_id": row.id})
        ch.record("instance.activated", reason=reason)
        _deliver_buffered(ch)
        due = [timer_element(t, timer) for t in ch.workflow.event_manager.tasks.values()
               for timer, state in waiting_timers(t) if _due(state, ch)]
        ch.run_engine()
        fired = [e for e in due if e in ch.ran]
        if fired:
            ch.record("timer.fired", elements=fired, deadline=_iso(row.next_wakeup_at))
    return ch.instance


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _due(state, ch: Change) -> bool:
    deadline = deadline_of(state)
    return deadline is not None and deadline < ch.now


def _deliver_buffered(ch: Change) -> None:
    """Messages buffered while the instance was suspended, to the tasks that still wait for them."""
    for task in sorted(waiting_message_tasks(ch.workflow), key=lambda t: str(t.id)):
        definition = message_definition(task)
        assert definition is not None  # waiting_message_tasks took only tasks that have one
        value = correlation_value(task, definition, ch.instance.id)
        buffered = take_buffered(ch, definition.name, value)
        if buffered is None:
            continue
        deliver(ch, task, buffered["payload"])
        ch.write_later(_DELIVERED, {"message_id": buffered["id"], "at": ch.now, "instance_id": ch.instance.id})
        ch.record("message.delivered", task_id=str(task.id), element_id=task.task_spec.bpmn_id,
                  message=definition.name, message_id=buffered["id"], buffered=True)
