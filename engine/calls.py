"""Call activities between durable instances (spiff_calls.py has the task spec and its binding).

A call starts its child **in the caller's change**, in the same transaction: the child's row, first
steps, read models and audit chain are written with the caller's, so a caller never waits for a child
that does not exist, and a child never runs for a caller that rolled back. Locks are only ever taken
from caller to child (starting and cancelling), never the other way round, so two changes cannot
deadlock over a call.

A child **reports back through the outbox**: the change that ends it (or that throws an error or
escalation nothing in it catches) writes a `call_return` row; after commit a job locks the caller,
throws the events at the call activity (where a boundary event may catch them) and then, if the
child completed and nothing interrupted the call, completes the call activity with the child's data.
The job is at least once and idempotent: the task remembers the returns it took, and a call activity
that is no longer waiting takes none. Taking the caller's lock inside the child's change instead
would lock child before caller, against the order above.

Data: without a data input in the called process's ioSpecification, the child starts with all of the
task's data; with inputs, with exactly those (a missing one fails the call). On return, a child that
got all of the task's data (no inputs) and declares no outputs hands back its final data as the task's
data, as SpiffWorkflow does: a variable it deleted is gone. Otherwise its final data (or only its
declared data outputs) is merged over the task's data.

Cancelling a call activity (its caller cancelled, an interrupting boundary event) cancels the running
child in the same change, and the child its own children. A child cannot be cancelled on its own while
its caller waits for it: the caller would wait forever."""

from __future__ import annotations

import json
from copy import deepcopy
from typing import TYPE_CHECKING, Any, cast

from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, select

from . import outbox
from .change import Abandon, change_in, change_instance, new_instance
from .endings import workflow_data
from .errors import Conflict, EngineError, NotFound, ProcessError
from .jobs import job_incident
from .models import Deployment, Incident, ProcessDefinition, ProcessInstance
from .spiff_calls import CHILD, RETURNS, CallActivity
from .spiff_events import EscapingError, EscapingEscalation
from .spiff_specs import find_task

if TYPE_CHECKING:
    from .change import Change
    from .runtime import Runtime

QUEUE = "engine"
RETURN_JOB = "call_return"
MAX_CALL_DEPTH = 20  # a process that calls itself without end stops here, loudly

PD = cast(Table, ProcessDefinition.__table__)
PI = cast(Table, ProcessInstance.__table__)
_DEFINITION = select(PD.c.id, PD.c.key, PD.c.version, PD.c.suspended)


class CallActivities:
    """What the engine's environment and change call for call activities (the Runtime holds one)."""

    def start(self, change: Change, task, spec: CallActivity) -> None:
        start_child(change, task, spec)

    def cancelled(self, change: Change, task, child_id: str) -> None:
        cancel_child(change, task, child_id)

    def escapes(self, change: Change, task, event: BpmnEvent) -> bool:
        return escaped(change, task, event)

    def report(self, change: Change) -> None:
        report(change)


def start_child(change: Change, task, spec: CallActivity) -> None:
    """Start the called process as a child instance, in the caller's transaction."""
    rt, parent, element = change.rt, change.instance, spec.bpmn_id or spec.name
    depth = (parent.call_depth or 0) + 1
    if depth > MAX_CALL_DEPTH:
        raise ProcessError(f"calls nest deeper than {MAX_CALL_DEPTH} instances (a process calling itself without "
                           "end?)", element=element)
    definition = _bound(change, spec, element)
    model = rt.specs.get(rt.db, definition["id"], session=change.conn)
    variables = _data_in(task, model.spec, element)
    try:
        with new_instance(rt, _Called(definition["id"], definition["key"]), change.conn, change.actor, None,
                          variables, scope=parent.scope) as child:
            row = child.instance
            row.parent_instance_id, row.parent_task_id, row.parent_element_id = parent.id, str(task.id), element
            row.call_depth, row.started_by = depth, parent.started_by
            child.record("instance.started", definition_id=definition["id"], version=definition["version"],
                         business_key=None, variables=variables,
                         called_by={"instance": parent.id, "task": str(task.id), "element": element})
    except ProcessError as exc:
        raise ProcessError(f"the called process '{spec.called_element}' failed as it started: {exc.message}",
                           element=element) from exc
    task.internal_data[CHILD] = row.id
    change.nested_wake = change.nested_wake or bool(child.outbox_rows or child.woke_earlier or child.nested_wake)
    change.record("call.started", task_id=str(task.id), element_id=element, child=row.id, key=definition["key"],
                  version=definition["version"], binding=spec.binding)


class _Called:
    """What `new_instance` needs of a definition."""

    def __init__(self, definition_id: int, key: str) -> None:
        self.id, self.key = definition_id, key


def _bound(change: Change, spec: CallActivity, element: str) -> dict[str, Any]:
    """The version the call starts, by its binding; a missing or suspended one fails the step."""
    key, conn = spec.called_element, change.conn
    if spec.binding == "deployment":
        definition_id = _deployed_with(conn, change.instance.definition_id, key)
        stmt = _DEFINITION.where(PD.c.id == definition_id) if definition_id is not None else None
        what = f"'{key}' deployed with this process"
    elif spec.binding == "version":
        version = cast(str, spec.version)  # the deploy's lint_calls refuses binding "version" without a number
        stmt = _DEFINITION.where(PD.c.key == key, PD.c.version == int(version))
        what = f"version {spec.version} of '{key}'"
    else:
        stmt = _DEFINITION.where(PD.c.key == key, PD.c.is_latest)
        what = f"'{key}'"
    found = conn.execute(stmt).mappings().first() if stmt is not None else None
    if found is None:
        raise ProcessError(f"the called process {what} is not deployed", element=element)
    if found["suspended"]:
        raise ProcessError(f"the called process '{key}' version {found['version']} is suspended: it takes no new "
                           "instances", element=element)
    return dict(found)


def _deployed_with(conn, caller_definition_id: int, key: str) -> int | None:
    """The version of `key` that the deployment which created the caller's version carried."""
    files = conn.execute(select(Deployment.files).join(ProcessDefinition, ProcessDefinition.deployment_id
                                                       == Deployment.id)
                         .where(ProcessDefinition.id == caller_definition_id)).scalar()
    for file in files or ():
        for process in file.get("processes", ()):
            if process["key"] == key:
                return process["definition_id"]
    return None


def _data_in(task, child_spec, element: str) -> dict[str, Any]:
    inputs = getattr(child_spec.io_specification, "data_inputs", None)
    if not inputs:
        return deepcopy(dict(task.data))
    missing = [v.bpmn_id for v in inputs if v.bpmn_id not in task.data]
    if missing:
        raise ProcessError(f"the called process needs the data input(s) {', '.join(missing)}, which this case "
                           "does not have", element=element)
    return {v.bpmn_id: deepcopy(task.data[v.bpmn_id]) for v in inputs}


def cancel_child(change: Change, task, child_id: str) -> None:
    """The call activity was cancelled: cancel its child (and so its descendants) in this change."""
    element = task.task_spec.bpmn_id
    try:
        with change_in(change.rt, change.conn, child_id, change.actor) as child:
            if child.instance.status != "running":
                raise Abandon
            child.workflow.cancel()
            child.instance.status, child.instance.ended_at = "cancelled", child.now
            child.record("instance.cancelled", reason=f"the calling instance's {element} was cancelled",
                         parent=change.instance.id)
    except (Abandon, NotFound):
        return
    change.nested_wake = change.nested_wake or bool(child.outbox_rows or child.woke_earlier or child.nested_wake)
    change.record("call.cancelled", task_id=str(task.id), element_id=element, child=child_id)


def refuse_direct_cancel(change: Change) -> None:
    """A child waited for by a running caller is cancelled through its caller, never on its own."""
    parent_id = change.instance.parent_instance_id
    if parent_id and change.conn.execute(select(PI.c.status).where(PI.c.id == parent_id)).scalar() == "running":
        raise Conflict(f"this instance was called by instance {parent_id}, which waits for it; cancel that one "
                       "(its call activities cancel what they called)", parentInstanceId=parent_id)


def escaped(change: Change, task, event: BpmnEvent) -> bool:
    """An error or escalation nothing in a called instance caught: kept for its caller (see `report`)."""
    if not change.instance.parent_instance_id:
        return False
    d = event.event_definition
    kind = "error" if isinstance(d, ErrorEventDefinition) else "escalation"
    element = task.task_spec.bpmn_id
    try:
        payload = json.loads(json.dumps(event.payload))
    except (TypeError, ValueError) as exc:
        raise ProcessError(f"the payload of the {kind} '{d.name}' cannot be sent to the caller: {exc}",
                           element=element) from exc
    change.escaped.append({"kind": kind, "name": d.name, "code": d.code, "payload": payload, "element": element})
    change.record(f"call.{kind}_thrown", task_id=str(task.id), element_id=element, name=d.name, code=d.code)
    return True


def report(change: Change) -> None:
    """In the change of a called instance that ended it or threw something at its caller: the return job."""
    row = change.instance
    completed = change.loaded_status == "running" and row.status == "completed"
    if not (completed or change.escaped):
        return
    payload: dict[str, Any] = {
        "parent_id": row.parent_instance_id, "parent_task_id": row.parent_task_id, "child_id": row.id,
        "element_id": row.parent_element_id, "return_id": f"{row.id}:{row.revision}", "events": change.escaped,
        "completed": completed}
    if completed:
        io = change.workflow.spec.io_specification
        outputs = getattr(io, "data_outputs", None)
        payload["outputs"] = [v.bpmn_id for v in outputs] if outputs else None
        payload["replaces"] = not outputs and not getattr(io, "data_inputs", None)  # it had all the caller's
        payload["variables"] = json.loads(json.dumps(workflow_data(change.workflow), default=str))
    change.add_job(QUEUE, RETURN_JOB, payload)
    change.record("call.returned", parent=row.parent_instance_id, completed=completed,
                  events=[e["name"] for e in change.escaped])


def child_returned(rt: Runtime, payload: dict[str, Any]) -> None:
    """The job: the caller takes a child's return (see the module's docstring). A return the caller
    cannot take (its model fails on the data) becomes an incident an operator can retry."""
    try:
        with change_instance(rt, payload["parent_id"], f"instance:{payload['child_id']}") as ch:
            task = find_task(ch.workflow, payload["parent_task_id"])
            if (ch.instance.status != "running" or task is None or task.state != TaskState.STARTED
                    or not isinstance(task.task_spec, CallActivity)
                    or task.internal_data.get(CHILD) != payload["child_id"]
                    or payload["return_id"] in task.internal_data.get(RETURNS, ())):
                raise Abandon  # ended, interrupted, or this return was taken already
            task.internal_data[RETURNS] = [*task.internal_data.get(RETURNS, ()), payload["return_id"]]
            for event in payload["events"]:
                _throw(ch, task, event)
            if payload["completed"]:
                ch.run_engine()  # an interrupting boundary event that caught an event goes first
                if task.state == TaskState.STARTED:
                    if payload.get("replaces"):  # a return queued before this key existed merges, as it did
                        task.data = _data_out(payload)
                    else:
                        task.data.update(_data_out(payload))
                    task.complete()
                    ch.record("call.completed", task_id=str(task.id), element_id=payload["element_id"],
                              child=payload["child_id"])
    except Abandon:
        return
    except EngineError as exc:
        now = rt.clock.now()
        with rt.db.transaction() as s:
            if outbox.mark_done(s, payload.get("outbox_id"), now):
                kept = {k: v for k, v in payload.items() if k != "outbox_id"}
                job_incident(s, now, job=RETURN_JOB, queue=QUEUE, payload=kept, attempts=1,
                             instance_id=payload["parent_id"],
                             error=f"the return of called instance {payload['child_id']} could not be taken: "
                                   f"{exc.message}")


def _data_out(payload: dict[str, Any]) -> dict[str, Any]:
    variables, outputs = payload["variables"], payload.get("outputs")
    if outputs is None:
        return variables
    missing = [name for name in outputs if name not in variables]
    if missing:
        raise ProcessError(f"the called process ended without its data output(s) {', '.join(missing)}",
                           element=payload["element_id"])
    return {name: variables[name] for name in outputs}


def _throw(ch: Change, task, event: dict[str, Any]) -> None:
    """Throw a child's error or escalation at the call activity; uncaught, it goes on to the caller's
    own caller, if any (as SpiffWorkflow passes it up through nested subprocesses)."""
    cls = EscapingError if event["kind"] == "error" else EscapingEscalation
    top = ch.workflow
    before = len(top.bpmn_events)
    top.event_manager.catch(BpmnEvent(cls(event["name"], code=event["code"]), payload=event["payload"],
                                      target=task.workflow))
    caught = len(top.bpmn_events) == before
    if not caught:
        top.bpmn_events.pop()
        if ch.instance.parent_instance_id:
            ch.escaped.append({**event, "element": task.task_spec.bpmn_id})
    ch.record("call.event_caught" if caught else "call.event_not_caught", task_id=str(task.id),
              element_id=task.task_spec.bpmn_id, kind=event["kind"], name=event["name"], code=event["code"])


def children(rt: Runtime, instance_id: str) -> list[tuple[ProcessInstance, list[Incident]]]:
    """The instances this one called, oldest first, each with its open incidents."""
    with rt.db.session() as s:
        rows = list(s.scalars(select(ProcessInstance).where(ProcessInstance.parent_instance_id == instance_id)
                              .order_by(ProcessInstance.started_at, ProcessInstance.id)))
        ids = [r.id for r in rows]
        found = list(s.scalars(select(Incident).where(Incident.instance_id.in_(ids), Incident.status == "open")
                               .order_by(Incident.created_at, Incident.id))) if ids else []
    return [(r, [i for i in found if i.instance_id == r.id]) for r in rows]


JOBS = {RETURN_JOB: child_returned}
