"""Models for messages between instances and signals: a collaboration of two pools (an order that
ships and a warehouse that waits for the shipment) and signal throwers and catchers."""

from __future__ import annotations

from tests.engine.builders import HEAD, end, flow, gateway, script, seq, start, user

SHIPPED = """<bpmn:message id="msg_shipped" name="shipped"/>
  <bpmn:correlationProperty id="order_prop" name="order_prop">
    <bpmn:correlationPropertyRetrievalExpression messageRef="msg_shipped">
      <bpmn:formalExpression>order_id</bpmn:formalExpression>
    </bpmn:correlationPropertyRetrievalExpression>
  </bpmn:correlationProperty>
"""

PAYLOAD = ('<bpmn:extensionElements><spiffworkflow:messagePayload>{"order_id": order_id, "qty": qty}'
           "</spiffworkflow:messagePayload></bpmn:extensionElements>")
THROW_DEFINITION = f'<bpmn:messageEventDefinition messageRef="msg_shipped">{PAYLOAD}</bpmn:messageEventDefinition>'
THROWS = {
    "event": f'<bpmn:intermediateThrowEvent id="ship">{THROW_DEFINITION}</bpmn:intermediateThrowEvent>',
    "send_task": f'<bpmn:sendTask id="ship" messageRef="msg_shipped">{PAYLOAD}</bpmn:sendTask>',
    "end": f'<bpmn:endEvent id="ship">{THROW_DEFINITION}</bpmn:endEvent>',
}


def _pool(key: str, elements: list[str], *, executable: bool, lanes: dict[str, list[str]] | None = None) -> str:
    lane_xml = ""
    if lanes:
        lane_xml = f'<bpmn:laneSet id="lanes_{key}">' + "".join(
            f'<bpmn:lane id="lane_{key}_{role}" name="{role}">'
            + "".join(f"<bpmn:flowNodeRef>{e}</bpmn:flowNodeRef>" for e in ids) + "</bpmn:lane>"
            for role, ids in lanes.items()) + "</bpmn:laneSet>"
    return (f'<bpmn:process id="{key}" name="{key}" isExecutable="{str(executable).lower()}">'
            + lane_xml + "\n".join(elements) + "</bpmn:process>")


def _order_pool(executable: bool, throw: str) -> str:
    if throw == "end":
        return _pool("order", [start(), THROWS["end"], seq("start", "ship")], executable=executable)
    return _pool("order", [start(), THROWS[throw], end(), seq("start", "ship", "end")], executable=executable)


def _warehouse_pool(executable: bool, prepare: bool, then: str | None, role: str) -> str:
    wait = """<bpmn:receiveTask id="wait_shipment" messageRef="msg_shipped"><bpmn:extensionElements>
        <spiffworkflow:messageVariable>shipment</spiffworkflow:messageVariable>
        <spiffworkflow:processVariableCorrelation>
          <spiffworkflow:propertyId>order_prop</spiffworkflow:propertyId>
          <spiffworkflow:expression>order_id</spiffworkflow:expression>
        </spiffworkflow:processVariableCorrelation>
      </bpmn:extensionElements></bpmn:receiveTask>"""
    ids = ["start", *(["prepare"] if prepare else []), "wait_shipment", *(["then"] if then else []), "check", "end"]
    scoped = {"candidateScope": "grid"} if role != "clerk" else {}  # people other than clerks see their grid's
    elements = [start(), *([user("prepare", **scoped)] if prepare else []), wait,
                *([script("then", then)] if then else []), user("check", **scoped), end(), seq(*ids)]
    return _pool("warehouse", elements, executable=executable,
                 lanes={role: ["prepare", "check"] if prepare else ["check"]})


def collaboration(executable: str, *, throw: str = "event", prepare: bool = False, then: str | None = None,
                  role: str = "clerk") -> str:
    """Both pools and the message flow between them, as a modeler draws them; `executable` names the
    pool this file deploys (a deployment is one executable process per file). The warehouse may
    `prepare` (a user task) before it waits, and run the script `then` after the shipment arrives;
    its tasks are offered to `role` (any role but clerk: in the grid named by the variable `grid`)."""
    collab = """<bpmn:collaboration id="shipping">
    <bpmn:participant id="p_order" processRef="order"/>
    <bpmn:participant id="p_warehouse" processRef="warehouse"/>
    <bpmn:messageFlow id="mf_shipped" sourceRef="ship" targetRef="wait_shipment" messageRef="msg_shipped"/>
    <bpmn:correlationKey name="order_key"><bpmn:correlationPropertyRef>order_prop</bpmn:correlationPropertyRef>
    </bpmn:correlationKey>
  </bpmn:collaboration>"""
    return (HEAD.format(key=f"shipping_{executable}") + SHIPPED + collab
            + _order_pool(executable == "order", throw)
            + _warehouse_pool(executable == "warehouse", prepare, then, role) + "</bpmn:definitions>")


ALERT = ('<bpmn:signal id="sig_alert" name="alert"><bpmn:extensionElements><spiffworkflow:payloadExpression>'
         '{"level": level}</spiffworkflow:payloadExpression><spiffworkflow:variableName>alert'
         '</spiffworkflow:variableName></bpmn:extensionElements></bpmn:signal>')


def signal_process(key: str, elements: list[str], lanes: dict[str, list[str]] | None = None) -> str:
    return HEAD.format(key=key) + ALERT + _pool(key, elements, executable=True, lanes=lanes) + "</bpmn:definitions>"


def alarm() -> str:
    """start → raise (throws the signal `alert` with {"level": level}) → end."""
    throw = ('<bpmn:intermediateThrowEvent id="raise"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
             "</bpmn:intermediateThrowEvent>")
    return signal_process("alarm", [start(), throw, end(), seq("start", "raise", "end")])


def listener(key: str = "listener", then: str | None = None) -> str:
    """start → prepare (user) → heard (catches `alert` into `alert`) → [then (script)] → after (user) → end."""
    catch = ('<bpmn:intermediateCatchEvent id="heard"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
             "</bpmn:intermediateCatchEvent>")
    steps = ["start", "prepare", "heard", *(["then"] if then else []), "after", "end"]
    return signal_process(key, [start(), user("prepare"), catch, *([script("then", then)] if then else []),
                                 user("after"), end(), seq(*steps)], lanes={"clerk": ["prepare", "after"]})


def looping_listener() -> str:
    """start → heard (catches `alert`) → again? (level < 5: back to heard) → after (user) → end: it waits
    for the signal again at once, under a new task."""
    catch = ('<bpmn:intermediateCatchEvent id="heard"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
             "</bpmn:intermediateCatchEvent>")
    return signal_process("looping", [start(), catch, gateway("again", default="f_again_after"), user("after"), end(),
                                       seq("start", "heard", "again"), flow("again", "heard", "alert['level'] < 5"),
                                       flow("again", "after"), seq("after", "end")], lanes={"clerk": ["after"]})


def guarded(interrupting: bool = True) -> str:
    """start → work (user) → end; a boundary signal `alert` on work → stopped (user) → end_stopped."""
    boundary = (f'<bpmn:boundaryEvent id="alerted" attachedToRef="work" cancelActivity="{str(interrupting).lower()}">'
                '<bpmn:signalEventDefinition signalRef="sig_alert"/></bpmn:boundaryEvent>')
    return signal_process("guarded", [start(), user("work"), boundary, user("stopped"), end(),
                                       '<bpmn:endEvent id="end_stopped"/>',
                                       seq("start", "work", "end"), seq("alerted", "stopped", "end_stopped")],
                           lanes={"clerk": ["work", "stopped"]})
