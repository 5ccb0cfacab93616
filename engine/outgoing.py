"""What leaves an instance: a message nothing in it caught, and every signal it throws. Each becomes
an outbox row of the change that threw it, so it leaves only if that change commits; a job delivers
it afterwards (messages.deliver_sent, signals.broadcast), at least once.

The id of what is sent is derived from the sending instance and task (and the throw's rank within
the task, for a multiple event): a job that runs again finds it already delivered."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .errors import ProcessError
from .readmodels import correlation_key

if TYPE_CHECKING:
    from SpiffWorkflow.bpmn.util.event import BpmnEvent

    from .change import Change

QUEUE = "engine"
MESSAGE_JOB = "message_delivery"
SIGNAL_JOB = "signal_broadcast"


def sent_id(instance_id: str, task_id: str, rank: int) -> str:
    return f"instance:{instance_id}:{task_id}:{rank}"


def message(change: Change, task, event: BpmnEvent, rank: int) -> None:
    """Queue a message for the instance that waits for it by (name, correlation value)."""
    name, element = event.event_definition.name, task.task_spec.bpmn_id
    values = {prop: value for props in event.correlations.values() for prop, value in props.items()}
    if not values:
        raise ProcessError(f"message '{name}' leaves the instance without a correlation value: nothing tells "
                           "which instance it is for", element=element)
    if not isinstance(event.payload, dict):
        raise ProcessError(f"the payload of message '{name}' must be a mapping of names to values, not "
                           f"{type(event.payload).__name__}", element=element)
    message_id = sent_id(change.instance.id, str(task.id), rank)
    correlation = correlation_key(values)
    change.add_job(QUEUE, MESSAGE_JOB, {
        "message_id": message_id, "message": name, "correlation": correlation,
        "payload": _json(event.payload, f"message '{name}'", element),
        "sender": change.instance.id, "task_id": str(task.id), "element_id": element})
    change.record("message.sent", task_id=str(task.id), element_id=element, message=name, message_id=message_id,
                  correlation=correlation)


def signal(change: Change, task, name: str, payload: Any, rank: int) -> None:
    """Queue a broadcast of the signal to the instances of this tenant that wait for it now."""
    element = task.task_spec.bpmn_id
    signal_id = sent_id(change.instance.id, str(task.id), rank)
    tenant = change.rt.tenant_of(change.instance.scope)
    change.add_job(QUEUE, SIGNAL_JOB, {
        "signal_id": signal_id, "signal": name, "payload": _json(payload, f"signal '{name}'", element),
        "tenant": tenant, "thrown_at": change.now.isoformat(), "sender": change.instance.id,
        "task_id": str(task.id), "element_id": element})
    change.record("signal.thrown", task_id=str(task.id), element_id=element, signal=name, signal_id=signal_id,
                  tenant=tenant)


def _json(value: Any, what: str, element: str | None) -> Any:
    """The value as the outbox will store it; a value JSON cannot hold fails the throw, not the commit."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise ProcessError(f"the payload of {what} cannot be sent: {exc}", element=element) from exc
