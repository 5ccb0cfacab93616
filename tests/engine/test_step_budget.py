import pytest

from engine import definitions, instances
from engine.errors import ProcessError
from engine.models import ProcessInstance
from engine.parsing import ModelError

LOOP = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="forever" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="again"/>
    <bpmn:scriptTask id="again"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="b" sourceRef="again" targetRef="more"/>
    <bpmn:exclusiveGateway id="more" default="back"/>
    <bpmn:sequenceFlow id="back" sourceRef="more" targetRef="again"/>
    <bpmn:sequenceFlow id="out" sourceRef="more" targetRef="e">
      <bpmn:conditionExpression>n &lt; 0</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""

SELF_LOOP = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="self_loop" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="again"/>
    <bpmn:scriptTask id="again"><bpmn:script>n = 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="b" sourceRef="again" targetRef="again"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_model_that_loops_forever_is_stopped_and_leaves_nothing(rt):
    definitions.deploy(rt, LOOP, "admin")
    # a loop of two elements reaches the depth guard (engine.change.MAX_TREE_DEPTH) before the step budget
    with pytest.raises(ProcessError, match=r"more than|looped so often"):
        instances.start(rt, actor="u", key="forever", variables={"n": 0})
    with rt.db.session() as s:
        assert s.query(ProcessInstance).count() == 0


def test_a_loop_without_a_gateway_is_refused_at_deploy(rt):
    with pytest.raises(ModelError, match="gateway"):
        definitions.deploy(rt, SELF_LOOP, "admin")
