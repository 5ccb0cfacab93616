"""Models for the call-activity tests: a parent that calls a child that calls a grandchild, and the
pieces (call activity, error end event, error boundary) written in the BPMN the tests deploy."""

from __future__ import annotations

from engine import definitions, instances
from engine.models import ProcessInstance
from engine.runtime import Runtime
from tests.engine.builders import end, process, script, seq, start, user
from tests.engine.support import relay_and_run

GRIDLOOP = "http://gridloop.example/schema/1.0"
ERROR_HEADER = '<bpmn:error id="err_broken" name="broken" errorCode="BROKEN"/>'


def call(id_: str, called: str, binding: str | None = None, version: int | None = None) -> str:
    attrs = f' xmlns:gridloop="{GRIDLOOP}"'
    if binding:
        attrs += f' gridloop:calledElementBinding="{binding}"'
    if version is not None:
        attrs += f' gridloop:calledElementVersion="{version}"'
    return f'<bpmn:callActivity id="{id_}" calledElement="{called}"{attrs}/>'


def error_end(id_: str = "fail") -> str:
    return f'<bpmn:endEvent id="{id_}"><bpmn:errorEventDefinition errorRef="err_broken"/></bpmn:endEvent>'


def error_boundary(id_: str, attached_to: str) -> str:
    return (f'<bpmn:boundaryEvent id="{id_}" attachedToRef="{attached_to}">'
            '<bpmn:errorEventDefinition errorRef="err_broken"/></bpmn:boundaryEvent>')


def grandchild() -> str:
    """Waits at `fill` (tasks outside lanes go to the root's starter), then adds to the data."""
    return process("grandchild", start(), user("fill"), script("mark", "depth = depth + 1"), end(),
                   seq("start", "fill", "mark", "end"))


def child() -> str:
    return process("child", start(), script("enter", "depth = 1"), call("call_grandchild", "grandchild"),
                   script("leave", "child_done = True"), end(),
                   seq("start", "enter", "call_grandchild", "leave", "end"))


def parent(*, called: str = "child", extra: str = "", header: str = "") -> str:
    """Calls `called`, then waits at `after`; `extra` adds elements (boundary events and their paths)."""
    return process("parent", start(), call("call_child", called), user("after"), end(), extra,
                   seq("start", "call_child", "after", "end"), header=header)


def deploy_chain(rt: Runtime) -> None:
    for xml in (grandchild(), child(), parent()):
        definitions.deploy(rt, xml, "admin")


def children_of(rt: Runtime, instance_id: str) -> list[ProcessInstance]:
    with rt.db.session() as s:
        return list(s.query(ProcessInstance).filter(ProcessInstance.parent_instance_id == instance_id)
                    .order_by(ProcessInstance.started_at))


def only_child(rt: Runtime, instance_id: str) -> ProcessInstance:
    (found,) = children_of(rt, instance_id)
    return found


def settle(rt: Runtime, rounds: int = 5) -> None:
    """Relay and run jobs until none is left (a return may make another)."""
    for _ in range(rounds):
        if relay_and_run(rt) == 0:
            return


def status(rt: Runtime, instance_id: str) -> str:
    return instances.get(rt, instance_id).status
