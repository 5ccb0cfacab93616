"""Small BPMN documents for engine tests, written with the SpiffWorkflow extension syntax of
tests/fixtures/reference_loop.bpmn (lanes, serviceTaskOperator, properties)."""

from __future__ import annotations

from html import escape
from itertools import pairwise

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="defs_{key}" targetNamespace="http://gridloop.test/bpmn">
"""


def process(key: str, *elements: str, lanes: dict[str, list[str]] | None = None, name: str | None = None,
            executable: bool = True, header: str = "") -> str:
    """One process with `elements`; `lanes` maps a lane (role) name to the element ids in it."""
    lane_xml = ""
    if lanes:
        inner = "".join(
            f'<bpmn:lane id="lane_{role}" name="{role}">'
            + "".join(f"<bpmn:flowNodeRef>{e}</bpmn:flowNodeRef>" for e in ids)
            + "</bpmn:lane>"
            for role, ids in lanes.items())
        lane_xml = f'<bpmn:laneSet id="lanes_{key}">{inner}</bpmn:laneSet>'
    return (HEAD.format(key=key) + header
            + f'<bpmn:process id="{key}" name="{name or key}" isExecutable="{str(executable).lower()}">'
            + lane_xml + "\n".join(elements) + "</bpmn:process></bpmn:definitions>")


def seq(*ids: str) -> str:
    """Sequence flows id0 → id1 → ... ."""
    return "\n".join(f'<bpmn:sequenceFlow id="f_{a}_{b}" sourceRef="{a}" targetRef="{b}"/>'
                     for a, b in pairwise(ids))


def flow(source: str, target: str, condition: str | None = None) -> str:
    cond = (f"<bpmn:conditionExpression>{escape(condition, quote=False)}</bpmn:conditionExpression>"
            if condition is not None else "")
    return (f'<bpmn:sequenceFlow id="f_{source}_{target}" sourceRef="{source}" targetRef="{target}">'
            f"{cond}</bpmn:sequenceFlow>")


def start(id_: str = "start") -> str:
    return f'<bpmn:startEvent id="{id_}"/>'


def end(id_: str = "end") -> str:
    return f'<bpmn:endEvent id="{id_}"/>'


def user(id_: str, name: str | None = None, **props: str) -> str:
    ext = ""
    if props:
        ext = ("<bpmn:extensionElements><spiffworkflow:properties>"
               + "".join(f'<spiffworkflow:property name="{k}" value="{escape(v)}"/>' for k, v in props.items())
               + "</spiffworkflow:properties></bpmn:extensionElements>")
    return f'<bpmn:userTask id="{id_}" name="{name or id_}">{ext}</bpmn:userTask>'


def service(id_: str, operation: str, result: str = "result", **params: str) -> str:
    """A service task calling a registered operation; params map name → expression."""
    plist = "".join(f'<spiffworkflow:parameter id="{k}" type="any" value="{escape(v)}"/>' for k, v in params.items())
    return (f'<bpmn:serviceTask id="{id_}"><bpmn:extensionElements>'
            f'<spiffworkflow:serviceTaskOperator id="{operation}" resultVariable="{result}">'
            f"<spiffworkflow:parameters>{plist}</spiffworkflow:parameters>"
            f"</spiffworkflow:serviceTaskOperator></bpmn:extensionElements></bpmn:serviceTask>")


def script(id_: str, code: str) -> str:
    return f'<bpmn:scriptTask id="{id_}"><bpmn:script>{escape(code, quote=False)}</bpmn:script></bpmn:scriptTask>'


def gateway(id_: str, default: str | None = None) -> str:
    dflt = f' default="{default}"' if default else ""
    return f'<bpmn:exclusiveGateway id="{id_}"{dflt}/>'


def boundary_timer(id_: str, attached_to: str, kind: str, expression: str, *, interrupting: bool = True) -> str:
    """kind: timeDuration | timeDate | timeCycle."""
    return (f'<bpmn:boundaryEvent id="{id_}" attachedToRef="{attached_to}" '
            f'cancelActivity="{str(interrupting).lower()}"><bpmn:timerEventDefinition>'
            f"<bpmn:{kind}>{escape(expression, quote=False)}</bpmn:{kind}>"
            f"</bpmn:timerEventDefinition></bpmn:boundaryEvent>")


def message_header(name: str) -> str:
    return f'<bpmn:message id="msg_{name}" name="{name}"/>'


def receive(id_: str, message: str, variable: str) -> str:
    """A receive task correlated by process instance id (no correlation properties)."""
    return (f'<bpmn:receiveTask id="{id_}" messageRef="msg_{message}"><bpmn:extensionElements>'
            f"<spiffworkflow:messageVariable>{variable}</spiffworkflow:messageVariable>"
            f"</bpmn:extensionElements></bpmn:receiveTask>")


def two_step(key: str = "two_step", second: str = "second") -> str:
    """start → first (user, lane clerk) → `second` (user, lane clerk) → end."""
    return process(key, start(), user("first"), user(second), end(), seq("start", "first", second, "end"),
                   lanes={"clerk": ["first", second]})


def correlated_wait(key: str = "replies") -> str:
    """start → wait_reply (receive `reply`, correlated on the variable case_id) → check (user) → end."""
    header = """<bpmn:message id="msg_reply" name="reply"/>
  <bpmn:correlationProperty id="case_prop" name="case_prop">
    <bpmn:correlationPropertyRetrievalExpression messageRef="msg_reply">
      <bpmn:formalExpression>case_id</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
"""
    wait = """<bpmn:receiveTask id="wait_reply" messageRef="msg_reply"><bpmn:extensionElements>
        <spiffworkflow:messageVariable>reply</spiffworkflow:messageVariable>
        <spiffworkflow:processVariableCorrelation>
          <spiffworkflow:propertyId>case_prop</spiffworkflow:propertyId>
          <spiffworkflow:expression>case_id</spiffworkflow:expression>
        </spiffworkflow:processVariableCorrelation>
      </bpmn:extensionElements></bpmn:receiveTask>"""
    return process(key, start(), wait, user("check"), end(), seq("start", "wait_reply", "check", "end"),
                   lanes={"clerk": ["check"]}, header=header)


def waits_until(key: str, variable: str = "due") -> str:
    """A process that waits on a timer until the date in `variable`, then ends."""
    return f"""<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDate>{variable}</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def split_join_pairs(n: int, key: str = "pairs") -> str:
    """n parallel split/join pairs in a row, two script tasks each: SpiffWorkflow's plan of a new
    instance doubles per pair (the deploy bound's attack)."""
    elements, flows, prev = [start()], [], "start"
    for i in range(n):
        elements += [f'<bpmn:parallelGateway id="fork{i}"/>', f'<bpmn:parallelGateway id="join{i}"/>',
                     script(f"a{i}", "x = 1"), script(f"b{i}", "y = 1")]
        flows += [seq(prev, f"fork{i}"), seq(f"fork{i}", f"a{i}", f"join{i}"), seq(f"fork{i}", f"b{i}", f"join{i}")]
        prev = f"join{i}"
    return process(key, *elements, end(), *flows, seq(prev, "end"))
