"""Read models refreshed at the end of every change: the human-task inbox and the message and
signal subscriptions. Both are derived from the workflow state by comparing it with the state the change
loaded, so a change touches only the rows that really changed (no reads of its own rows)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition, SignalEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, bindparam, delete, select, update

from .db import Prepared, insert_all
from .errors import ProcessError
from .models import HumanTask, Message, MessageSubscription, SignalSubscription
from .parsing import TASK_PROPERTIES

if TYPE_CHECKING:
    from .change import Change



@dataclass
class Snapshot:
    """What the read models hold for an instance: READY user tasks, waiting message and signal tasks."""

    ready: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    signals: set[str] = field(default_factory=set)


HT = cast(Table, HumanTask.__table__)
SUB = cast(Table, MessageSubscription.__table__)
MSG = cast(Table, Message.__table__)
SIG = cast(Table, SignalSubscription.__table__)

_INSERT_TASKS = Prepared(insert_all(HT))
_INSERT_SUBSCRIPTIONS = Prepared(insert_all(SUB))
_CANCEL_TASK = Prepared(update(HT).where(HT.c.id == bindparam("task_id"), HT.c.status == "open")
                        .values(status="cancelled", ended_at=bindparam("now")))
_DROP_SUBSCRIPTION = Prepared(delete(SUB).where(SUB.c.instance_id == bindparam("instance_id"),
                                                SUB.c.task_id == bindparam("task_id")))
_INSERT_SIGNAL_SUBSCRIPTIONS = Prepared(insert_all(SIG))
_DROP_SIGNAL_SUBSCRIPTION = Prepared(delete(SIG).where(SIG.c.instance_id == bindparam("instance_id"),
                                                       SIG.c.task_id == bindparam("task_id")))
_BUFFERED = (select(MSG.c.id, MSG.c.payload, MSG.c.expires_at)
             .where(MSG.c.message_name == bindparam("name"), MSG.c.correlation_value == bindparam("value"),
                    MSG.c.status == "buffered")
             .order_by(MSG.c.received_at, MSG.c.id))
_BUFFERED_PG = Prepared(_BUFFERED.with_for_update(skip_locked=True))
_BUFFERED_ANY = Prepared(_BUFFERED)
_EXPIRE = (update(MSG).where(MSG.c.id.in_(bindparam("ids", expanding=True)), MSG.c.status == "buffered")
           .values(status="expired"))
_DELIVERED = Prepared(update(MSG).where(MSG.c.id == bindparam("message_id"))
                      .values(status="delivered", delivered_at=bindparam("at"), instance_id=bindparam("instance_id")))


@dataclass
class PendingWrites:
    completed_tasks: set[str] = field(default_factory=set)  # closed by the action itself
    cancel_tasks: set[str] = field(default_factory=set)
    new_tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    drop_subscriptions: set[str] = field(default_factory=set)
    new_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscribing_elements: dict[str, str] = field(default_factory=dict)  # for error messages
    drop_signals: set[str] = field(default_factory=set)
    new_signals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by task: one row per signal name


def snapshot(workflow) -> Snapshot:
    return Snapshot(ready={str(t.id) for t in _ready_user_tasks(workflow)},
                    waiting={str(t.id) for t in waiting_message_tasks(workflow)},
                    signals={str(t.id) for t in waiting_signal_tasks(workflow)})


def _ready_user_tasks(workflow) -> list:
    return ready_tasks(workflow, manual=True)


def ready_tasks(workflow, *, manual: bool) -> list:
    """`workflow.get_tasks(state=TaskState.READY, manual=manual)` (the same tasks; order aside), by one
    pass over the task table instead of a walk of the tree, which costs about forty times more.
    The walk reaches a task only through ancestors in a definite state (FUTURE or later) within
    1000 levels; that is checked for each task found. With subprocesses, the library walks."""
    if workflow.subprocesses:
        return workflow.get_tasks(state=TaskState.READY, manual=manual)
    found = []
    for task in workflow.tasks.values():
        if task._state == TaskState.READY and task.task_spec.manual == manual and _walk_reaches(task):
            found.append(task)
    return found


def _walk_reaches(task) -> bool:
    tasks, root = task.workflow.tasks, task.workflow.task_tree
    current, depth = task, 0
    while current is not root:
        parent = tasks.get(current._parent)
        if parent is None or parent._state < TaskState.FUTURE or depth >= 1000:
            return False
        current, depth = parent, depth + 1
    return True


def any_ready_automatic(workflow) -> bool:
    """Whether `workflow.get_tasks(state=TaskState.READY, manual=False)` would find anything: a pass
    over the task tables first (a superset); only if that finds a candidate, the library's walk."""
    tables = [workflow.tasks, *(sp.tasks for sp in workflow.subprocesses.values())]
    for table in tables:
        for task in table.values():
            if task._state == TaskState.READY and not task.task_spec.manual:
                return bool(workflow.get_tasks(state=TaskState.READY, manual=False))
    return False


def refresh(change: Change) -> bool:
    """Work out the read-model writes since the last snapshot. Returns True when a buffered message
    was delivered to a task that just started waiting (the caller runs the engine and refreshes again)."""
    before, pending = change.snapshot, change.pending
    ready = {str(t.id): t for t in _ready_user_tasks(change.workflow)}
    for guid in before.ready - ready.keys():
        if pending.new_tasks.pop(guid, None) is None and guid not in pending.completed_tasks:
            pending.cancel_tasks.add(guid)  # left READY without completing: a boundary event took it
    for guid in ready.keys() - before.ready:
        pending.new_tasks[guid] = _human_task(change, ready[guid])
    waiting = {str(t.id): t for t in waiting_message_tasks(change.workflow)}
    for guid in before.waiting - waiting.keys():
        if pending.new_subscriptions.pop(guid, None) is None:
            pending.drop_subscriptions.add(guid)
    signals = {str(t.id): t for t in waiting_signal_tasks(change.workflow)}
    for guid in before.signals - signals.keys():
        if pending.new_signals.pop(guid, None) is None:
            pending.drop_signals.add(guid)
    for guid in signals.keys() - before.signals:
        pending.new_signals[guid] = [{"signal_name": name, "instance_id": change.instance.id, "task_id": guid,
                                      "created_at": change.now} for name in signal_names(signals[guid])]
    change.snapshot = Snapshot(ready=set(ready), waiting=set(waiting), signals=set(signals))
    delivered = False
    for guid in sorted(waiting.keys() - before.waiting):  # every new waiter: parallel branches may add several
        task = waiting[guid]
        definition = message_definition(task)
        assert definition is not None  # waiting_message_tasks took only tasks that have one
        value = _correlation_value_of(task, definition, change.instance.id)
        buffered = take_buffered(change, definition.name, value)
        if buffered is not None:
            deliver(change, task, buffered["payload"])
            change.write_later(_DELIVERED, {"message_id": buffered["id"], "at": change.now,
                                            "instance_id": change.instance.id})
            change.record("message.delivered", task_id=guid, element_id=task.task_spec.bpmn_id,
                          message=definition.name, message_id=buffered["id"], buffered=True)
            delivered = True
            continue
        pending.new_subscriptions[guid] = {"message_name": definition.name, "correlation_value": value,
                                           "instance_id": change.instance.id, "task_id": guid,
                                           "created_at": change.now}
        pending.subscribing_elements[guid] = task.task_spec.bpmn_id
    return delivered


def completed_task(change: Change, task_id: str) -> None:
    """The action completed this task and closed its row itself: it is not cancelled when it leaves READY."""
    change.pending.completed_tasks.add(task_id)


def write(change: Change) -> None:
    """Apply the pending writes (after the instance row itself is written)."""
    s, p, iid, db = change.conn, change.pending, change.instance.id, change.rt.db
    if p.cancel_tasks:
        db.run(s, _CANCEL_TASK, [{"task_id": guid, "now": change.now} for guid in sorted(p.cancel_tasks)])
    if p.new_tasks:
        db.run(s, _INSERT_TASKS, list(p.new_tasks.values()))
    if p.drop_subscriptions:
        db.run(s, _DROP_SUBSCRIPTION, [{"instance_id": iid, "task_id": guid} for guid in sorted(p.drop_subscriptions)])
    if p.new_subscriptions:
        db.run(s, _INSERT_SUBSCRIPTIONS, list(p.new_subscriptions.values()))
    if p.drop_signals:
        db.run(s, _DROP_SIGNAL_SUBSCRIPTION, [{"instance_id": iid, "task_id": guid} for guid in sorted(p.drop_signals)])
    if p.new_signals:
        db.run(s, _INSERT_SIGNAL_SUBSCRIPTIONS, [r for rows in p.new_signals.values() for r in rows])


# -- human tasks ---------------------------------------------------------------------------------

def _human_task(change: Change, task) -> dict[str, Any]:
    spec = task.task_spec
    props = (getattr(spec, "extensions", None) or {}).get("properties", {})
    values = {name: _evaluate_property(change, task, name, props[name]) for name in TASK_PROPERTIES
              if name in props and name != "formKey"}
    try:
        priority = int(values["priority"]) if values.get("priority") is not None else 50
        due_at, follow_up_at = _as_datetime(values.get("dueDate")), _as_datetime(values.get("followUpDate"))
    except (TypeError, ValueError) as exc:
        raise ProcessError(f"task property has an unusable value: {exc}", element=spec.bpmn_id) from exc
    role, assignee = spec.lane, _opt_str(values.get("assignee"))
    if not role:  # outside every lane: the process's default role, else the starter's own task
        role = change.model.default_role if change.model is not None else None
        if not role and assignee is None:
            assignee = change.instance.started_by
    return {
        "id": str(task.id), "instance_id": change.instance.id, "process_key": change.instance.process_key,
        "element_id": spec.bpmn_id or spec.name, "name": spec.bpmn_name, "candidate_role": role or None,
        "candidate_scope": _opt_str(values.get("candidateScope")), "assignee": assignee,
        "owner": None,
        "form_key": props.get("formKey"), "priority": priority, "due_at": due_at, "follow_up_at": follow_up_at,
        "status": "open", "created_at": change.now, "claimed_at": change.now if assignee else None,
        "ended_at": None, "completed_by": None,
    }


def _evaluate_property(change: Change, task, name: str, expression: str) -> Any:
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


def waiting_message_tasks(workflow) -> list:
    return [t for t in workflow.event_manager.tasks.values()
            if t.has_state(TaskState.WAITING) and message_definition(t) is not None]


def correlation_value(task, definition: MessageEventDefinition, instance_id: str) -> str:
    """The value a message must carry to reach this task: its process correlation properties
    evaluated on the task's data, or the instance id when the model declares none."""
    if not definition.process_correlations:
        return f"#{instance_id}"
    env = task.workflow.script_engine.environment
    return correlation_key({p.name: env.evaluate(p.retrieval_expression, dict(task.data))
                            for p in definition.process_correlations})


def correlation_key(values: dict[str, Any]) -> str:
    """The index value of correlation properties by name: the value itself when there is one property,
    else all of them as sorted JSON. A thrown message's properties give the same key (outgoing.py)."""
    if len(values) == 1:
        return str(next(iter(values.values())))
    return json.dumps(values, sort_keys=True, default=str)


def _correlation_value_of(task, definition, instance_id: str) -> str:
    try:
        return correlation_value(task, definition, instance_id)
    except Exception as exc:
        raise ProcessError(f"correlation of message '{definition.name}' failed: {exc}",
                           element=task.task_spec.bpmn_id) from exc


def signal_names(task) -> list[str]:
    """The signals a task waits for (a multiple catch event may wait for several)."""
    definition = getattr(task.task_spec, "event_definition", None)
    return sorted({d.name for d in getattr(definition, "event_definitions", [definition])
                   if isinstance(d, SignalEventDefinition)})


def waiting_signal_tasks(workflow) -> list:
    return [t for t in workflow.event_manager.tasks.values() if t.has_state(TaskState.WAITING) and signal_names(t)]


def correlation_lock_key(name: str, value: str) -> int:
    """Advisory-lock key for one (message, correlation value): buffering a message and subscribing
    to it take the same lock, so neither can miss the other."""
    digest = hashlib.blake2b(f"{name}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def take_buffered(change: Change, name: str, value: str):
    """The oldest live buffered message for (name, value), or None; the ones found past their TTL are
    marked expired on the way. Runs under the key's advisory lock (see `correlation_lock_key`), taken
    by a statement of its own so that the reads after it see what a concurrent buffering committed."""
    conn = change.conn
    change.rt.db.advisory_xact_lock(conn, correlation_lock_key(name, value))
    db = change.rt.db
    found = db.rows(conn, _BUFFERED_PG if db.is_postgres else _BUFFERED_ANY, {"name": name, "value": value})
    now = change.now
    expired = [m["id"] for m in found if m["expires_at"] is not None and m["expires_at"] <= now]
    if expired:
        conn.execute(_EXPIRE, {"ids": expired})
    return next((m for m in found if m["expires_at"] is not None and m["expires_at"] > now), None)


def deliver(change: Change, task, payload: dict[str, Any]) -> None:
    """Hand a message to the waiting task with the task's own event definition and correlations
    (we matched it by index already; SpiffWorkflow re-checks them)."""
    definition = message_definition(task)
    assert definition is not None  # the task waits for a message (its subscription or waiting_message_tasks)
    engine = change.workflow.script_engine
    correlations = definition.calculate_correlations(engine, definition.process_correlations, task.data)
    payload = dict(payload)
    for prop in definition.correlation_properties:  # the library evaluates these on the payload
        for props in correlations.values():
            if prop.name in props and prop.retrieval_expression.isidentifier():
                payload.setdefault(prop.retrieval_expression, props[prop.name])
    try:
        change.workflow.send_event(BpmnEvent(definition, payload, correlations))
    except Exception as exc:
        raise ProcessError(f"message '{definition.name}' could not be delivered: {exc}",
                           element=task.task_spec.bpmn_id) from exc
