"""Message and signal start events: a message that nothing waits for, or a signal, starts a new
instance of every process whose version new cases start on (latest, not suspended) begins with a
start event for it.

- A message starts one instance of the one process that has a message start event of that name (two
  processes with the same one: the message is refused naming both, since a message has one receiver).
  It is de-duplicated by its id like any message: the message row is written in the start's own
  transaction. When the start event's message declares correlation properties, the message's
  correlation value becomes the business key of the new instance; a second start message with the
  same value finds the key taken and is correlated as usual instead (buffered for a waiting task).
  A message addressed to an instance id never starts anything.
- A signal starts one instance of every such process, in the thrower's tenant (the tenant's scope
  prefix is the new instance's scope). A broadcast job run again starts nothing twice: the start is
  recorded in signal_delivery under `start:<definition id>` in the start's transaction.

Inside the instance, the start event waited and then caught the event as SpiffWorkflow has it: the
message's payload reaches the process as the library delivers it to a catching event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition, SignalEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError

from .change import after_commit, new_instance
from .db import Prepared, insert_all
from .errors import EngineError, InvalidInput, ProcessError
from .models import Message, ProcessDefinition, SignalDelivery
from .runtime import Runtime

PD = cast(Table, ProcessDefinition.__table__)
_STARTABLE = Prepared(select(PD.c.id, PD.c.key, PD.c.version).where(PD.c.is_latest, PD.c.suspended.is_(False))
                      .order_by(PD.c.key))
_INSERT_MESSAGE = Prepared(insert_all(Message.__table__))
_INSERT_DELIVERY = Prepared(insert_all(SignalDelivery.__table__))


@dataclass(frozen=True)
class Starter:
    definition_id: int
    key: str
    version: int
    element_id: str
    definition: Any  # the start event's message or signal definition

    @property
    def id(self) -> int:  # what new_instance reads of a definition
        return self.definition_id


def process_start_events(spec, kind: type) -> list:
    """The start events of the process itself (not of its event sub-processes) that catch `kind`."""
    return [ts for ts in spec.task_specs.values() if isinstance(ts, StartEvent)
            and not getattr(ts, "in_event_subprocess", False) and isinstance(ts.event_definition, kind)]


def starters(rt: Runtime, conn, kind: type, name: str) -> list[Starter]:
    """The versions new cases start on whose process has a start event for this message or signal.
    Reads the latest versions' parsed models from the spec cache (each parsed once per process)."""
    found = []
    for row in rt.db.rows(conn, _STARTABLE, {}):
        model = rt.specs.get(rt.db, row["id"], session=conn)
        for ts in process_start_events(model.spec, kind):
            if ts.event_definition.name == name:
                found.append(Starter(row["id"], row["key"], row["version"], ts.bpmn_id or ts.name, ts.event_definition))
    return found


def _start_and_catch(rt: Runtime, conn, starter: Starter, actor: str, business_key: str | None, scope: str | None,
                     event: BpmnEvent, **recorded: Any):
    """A new instance of the starter's version whose start event catches `event`, in `conn`'s transaction."""
    with new_instance(rt, starter, conn, actor, business_key, {}, scope=scope) as ch:
        ch.record("instance.started", definition_id=starter.definition_id, version=starter.version,
                  business_key=business_key, variables={}, start_event=starter.element_id, **recorded)
        ch.run_engine()
        waiting = [t for t in ch.workflow.event_manager.tasks.values()
                   if t.task_spec.bpmn_id == starter.element_id and t.has_state(TaskState.WAITING)]
        if not waiting:
            raise ProcessError("the start event did not wait for its event", element=starter.element_id)
        try:
            ch.workflow.send_event(event)
        except Exception as exc:
            raise ProcessError(f"the start event could not take {event.event_definition.name!r}: {exc}",
                               element=starter.element_id) from exc
    return ch


def start_by_message(rt: Runtime, *, name: str, value: str, message_id: str, payload: dict[str, Any],
                     actor: str):
    """Start the process whose start event waits for this message, or None (no such process, or its
    business key is taken). Returns (instance id) on a start; raises InvalidInput when two processes
    would take it. A repeated message id raises IntegrityError (the caller answers it as seen)."""
    if value.startswith("#"):  # addressed to one instance: never a start
        return None
    with rt.db.read() as conn:
        found = starters(rt, conn, MessageEventDefinition, name)
    if not found:
        return None
    if len(found) > 1:
        raise InvalidInput(f"message '{name}' would start {' and '.join(s.key for s in found)}: a message starts "
                           "one process; give the start events distinct messages")
    starter = found[0]
    business_key = value if starter.definition.correlation_properties else None
    event = BpmnEvent(starter.definition, dict(payload))
    try:
        with rt.db.begin() as conn:
            ch = _start_and_catch(rt, conn, starter, actor, business_key, None, event, message=name,
                                  message_id=message_id, correlation=value)
            rt.db.run(conn, _INSERT_MESSAGE, [{
                "id": message_id, "message_name": name, "correlation_value": value, "payload": payload,
                "status": "delivered", "instance_id": ch.instance.id, "received_at": ch.now, "expires_at": None,
                "delivered_at": ch.now, "sender": actor}])
    except IntegrityError:
        if business_key is None:
            raise
        with rt.db.session() as s:  # the id seen (the caller answers that), or the business key taken
            if s.get(Message, message_id) is not None:
                raise
        return None
    after_commit(rt, ch)
    return ch.instance.id


def start_by_signal(rt: Runtime, payload: dict[str, Any]) -> list[str]:
    """Start every process whose start event waits for this signal, in the thrower's tenant; each in
    its own transaction, skipped when a run of the same broadcast started it already."""
    name = payload["signal"]
    with rt.db.read() as conn:
        found = starters(rt, conn, SignalEventDefinition, name)
    started, failed = [], []
    for starter in found:
        event = BpmnEvent(starter.definition, payload.get("payload"))
        try:
            with rt.db.begin() as conn:
                rt.db.run(conn, _INSERT_DELIVERY, [{"signal_id": payload["signal_id"],
                                                    "instance_id": f"start:{starter.definition_id}",
                                                    "delivered_at": rt.clock.now()}])
                ch = _start_and_catch(rt, conn, starter, f"instance:{payload['sender']}", None, payload.get("tenant"),
                                      event, signal=name, signal_id=payload["signal_id"])
        except IntegrityError:
            continue  # this broadcast started it already
        except EngineError as exc:  # the others still start; the caller raises an incident for this one
            failed.append(exc)
            continue
        after_commit(rt, ch)
        started.append(ch.instance.id)
    if failed:
        raise failed[0]
    return started
