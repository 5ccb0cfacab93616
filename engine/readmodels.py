"""Read models refreshed at the end of every change: the human-task inbox and the message
subscriptions. Both are derived from the workflow state, never edited by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import delete, select

from .errors import ProcessError
from .models import HumanTask, Message, MessageSubscription

if TYPE_CHECKING:
    from .change import Change

TASK_PROPERTIES = ("formKey", "priority", "dueDate", "followUpDate", "candidateScope")


def refresh(change: Change) -> bool:
    """Sync tasks and subscriptions; deliver one buffered message if a new subscription matches it.
    Returns True when a message was delivered (the caller runs the engine and refreshes again)."""
    _sync_human_tasks(change)
    return _sync_subscriptions(change)


# -- human tasks ---------------------------------------------------------------------------------

def _sync_human_tasks(change: Change) -> None:
    s, row = change.session, change.instance
    ready = {str(t.id): t for t in change.workflow.get_tasks(state=TaskState.READY, manual=True)}
    open_rows = {t.id: t for t in s.scalars(
        select(HumanTask).where(HumanTask.instance_id == row.id, HumanTask.status == "open"))
        if t.status == "open"}  # (a completion in this change has not been flushed yet)
    for task_id, ht in open_rows.items():
        if task_id not in ready:  # left READY without a completion: a boundary event cancelled it
            ht.status, ht.ended_at = "cancelled", change.now
    for task_id, task in ready.items():
        if task_id not in open_rows:
            s.add(_human_task(change, task))


def _human_task(change: Change, task) -> HumanTask:
    spec = task.task_spec
    props = (spec.extensions or {}).get("properties", {}) if hasattr(spec, "extensions") else {}
    values = {name: _evaluate_property(change, task, name, props[name]) for name in TASK_PROPERTIES
              if name in props}
    priority = values.get("priority")
    return HumanTask(
        id=str(task.id), instance_id=change.instance.id, process_key=change.instance.process_key,
        element_id=spec.bpmn_id or spec.name, name=spec.bpmn_name, candidate_role=spec.lane,
        candidate_scope=_opt_str(values.get("candidateScope")), assignee=None, owner=None,
        form_key=props.get("formKey"), priority=int(priority) if priority is not None else 50,
        due_at=_as_datetime(values.get("dueDate")), follow_up_at=_as_datetime(values.get("followUpDate")),
        status="open", created_at=change.now,
    )


def _evaluate_property(change: Change, task, name: str, expression: str) -> Any:
    if name == "formKey":
        return expression  # a plain name, not an expression
    try:
        return change.workflow.script_engine.evaluate(task, expression)
    except Exception as exc:
        raise ProcessError(f"task property {name}={expression!r} failed: {exc}",
                           element=task.task_spec.bpmn_id) from exc


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# -- messages ------------------------------------------------------------------------------------

def message_definition(task) -> MessageEventDefinition | None:
    definition = getattr(task.task_spec, "event_definition", None)
    for inner in getattr(definition, "event_definitions", [definition]):
        if isinstance(inner, MessageEventDefinition):
            return inner
    return None


def correlation_value(task, definition: MessageEventDefinition, instance_id: str) -> str:
    """The value a message must carry to reach this task: its process correlation properties
    evaluated on the task's data, or the instance id when the model declares none."""
    if not definition.process_correlations:
        return f"#{instance_id}"
    engine = task.workflow.script_engine
    values = {}
    for prop in definition.process_correlations:
        values[prop.name] = engine.environment.evaluate(prop.retrieval_expression, dict(task.data))
    if len(values) == 1:
        return str(next(iter(values.values())))
    return json.dumps(values, sort_keys=True, default=str)


def waiting_message_tasks(workflow) -> list:
    return [t for t in workflow.event_manager.tasks.values()
            if t.has_state(TaskState.WAITING) and message_definition(t) is not None]


def _sync_subscriptions(change: Change) -> bool:
    s, row = change.session, change.instance
    wanted: dict[tuple[str, str], Any] = {}
    for task in waiting_message_tasks(change.workflow):
        definition = message_definition(task)
        try:
            value = correlation_value(task, definition, row.id)
        except Exception as exc:
            raise ProcessError(f"correlation of message '{definition.name}' failed: {exc}",
                               element=task.task_spec.bpmn_id) from exc
        wanted[(definition.name, value)] = task
    existing = {(m.message_name, m.correlation_value): m for m in s.scalars(
        select(MessageSubscription).where(MessageSubscription.instance_id == row.id))}
    stale = [m.id for k, m in existing.items() if k not in wanted or m.task_id != str(wanted[k].id)]
    if stale:
        s.execute(delete(MessageSubscription).where(MessageSubscription.id.in_(stale)))
        s.flush()
    for key, task in wanted.items():
        buffered = _take_buffered(change, *key)
        if buffered is not None:
            deliver(change, task, buffered.payload)
            buffered.status, buffered.delivered_at, buffered.instance_id = "delivered", change.now, row.id
            change.record("message.delivered", task_id=str(task.id), element_id=task.task_spec.bpmn_id,
                          message=key[0], message_id=buffered.id, buffered=True)
            return True
        if key in existing and existing[key].id not in stale:
            continue
        s.add(MessageSubscription(message_name=key[0], correlation_value=key[1], instance_id=row.id,
                                  task_id=str(task.id), created_at=change.now))
    s.flush()
    return False


def _take_buffered(change: Change, name: str, value: str) -> Message | None:
    stmt = (select(Message).where(Message.message_name == name, Message.correlation_value == value,
                                  Message.status == "buffered")
            .order_by(Message.received_at).limit(1))
    if change.rt.db.is_postgres:
        stmt = stmt.with_for_update(skip_locked=True)
    msg = change.session.scalar(stmt)
    if msg is not None and msg.expires_at is not None and msg.expires_at <= change.now:
        msg.status = "expired"
        return _take_buffered(change, name, value)
    return msg


def deliver(change: Change, task, payload: dict[str, Any]) -> None:
    """Hand a message to the waiting task with the task's own event definition and correlations
    (we matched it by index already; SpiffWorkflow re-checks them)."""
    definition = message_definition(task)
    engine = change.workflow.script_engine
    correlations = definition.calculate_correlations(engine, definition.process_correlations, task.data)
    payload = dict(payload)
    for prop in definition.correlation_properties:  # the library evaluates these on the payload
        for _key, props in correlations.items():
            if prop.name in props and prop.retrieval_expression.isidentifier():
                payload.setdefault(prop.retrieval_expression, props[prop.name])
    try:
        change.workflow.send_event(BpmnEvent(definition, payload, correlations))
    except Exception as exc:
        raise ProcessError(f"message '{definition.name}' could not be delivered: {exc}",
                           element=task.task_spec.bpmn_id) from exc
