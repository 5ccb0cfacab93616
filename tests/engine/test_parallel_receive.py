"""Two receive tasks start waiting in the same step; one message was buffered before: the other
still gets its subscription (review finding C1)."""

from engine import definitions, instances, messages

XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:message id="ma" name="a"/><bpmn:message id="mb" name="b"/>
  <bpmn:process id="two_waits" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="split"/>
    <bpmn:parallelGateway id="split"/>
    <bpmn:sequenceFlow id="fa" sourceRef="split" targetRef="wait_a"/>
    <bpmn:sequenceFlow id="fb" sourceRef="split" targetRef="wait_b"/>
    <bpmn:receiveTask id="wait_a" messageRef="ma"><bpmn:extensionElements>
      <spiffworkflow:processVariableCorrelation><spiffworkflow:propertyId>k</spiffworkflow:propertyId>
      <spiffworkflow:expression>key</spiffworkflow:expression></spiffworkflow:processVariableCorrelation>
    </bpmn:extensionElements></bpmn:receiveTask>
    <bpmn:receiveTask id="wait_b" messageRef="mb"><bpmn:extensionElements>
      <spiffworkflow:processVariableCorrelation><spiffworkflow:propertyId>k</spiffworkflow:propertyId>
      <spiffworkflow:expression>key</spiffworkflow:expression></spiffworkflow:processVariableCorrelation>
    </bpmn:extensionElements></bpmn:receiveTask>
    <bpmn:sequenceFlow id="fa2" sourceRef="wait_a" targetRef="join"/>
    <bpmn:sequenceFlow id="fb2" sourceRef="wait_b" targetRef="join"/>
    <bpmn:parallelGateway id="join"/><bpmn:sequenceFlow id="f9" sourceRef="join" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_buffered_message_does_not_cost_the_parallel_branch_its_subscription(rt):
    definitions.deploy(rt, XML, "admin")
    assert messages.correlate(rt, name="a", message_id="m-a", actor="x", correlation_value="K1").status == "buffered"
    iid = instances.start(rt, actor="u", key="two_waits", variables={"key": "K1"}).instance.id
    assert [s.message_name for s in instances.subscriptions(rt, iid)] == ["b"]
    assert messages.correlate(rt, name="b", message_id="m-b", actor="x", correlation_value="K1").status == "delivered"
    assert instances.get(rt, iid).status == "completed"
