"""A timer that cannot fire becomes an incident instead of spinning the scheduler (review D2)."""

from datetime import timedelta

from engine import definitions, incidents, instances, timers

XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="bad_after_timer" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="boom"/>
    <bpmn:scriptTask id="boom"><bpmn:script>x = 1 / divisor</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="c" sourceRef="boom" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_failing_timer_is_parked_as_an_incident_and_fires_again_when_retried(rt, clock):
    definitions.deploy(rt, XML, "admin")
    iid = instances.start(rt, actor="u", key="bad_after_timer", variables={"divisor": 0}).instance.id
    clock.advance(timedelta(hours=1, seconds=1))
    assert timers.fire_due(rt) == 0
    assert instances.get(rt, iid).next_wakeup_at is None  # no longer due: the scheduler does not spin
    assert timers.due_instances(rt, clock.now()) == []
    (incident,) = incidents.query(rt)[0]
    assert incident.kind == "timer" and "divides by zero" in incident.message
    incidents.retry(rt, incident.id, "admin")  # still failing: parked again, a new incident
    clock.advance(timedelta(seconds=1))
    timers.fire_due(rt)
    assert incidents.query(rt)[1] == 1 and instances.get(rt, iid).status == "running"
