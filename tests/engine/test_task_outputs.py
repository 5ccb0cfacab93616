"""What a form may set: declared outputs only; without a declaration, nothing the process holds."""

import pytest

from engine import definitions, instances, tasks
from engine.errors import InvalidInput

XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="forms" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l" name="clerk"><bpmn:flowNodeRef>free</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>declared</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="free"/>
    <bpmn:userTask id="free"/><bpmn:sequenceFlow id="b" sourceRef="free" targetRef="declared"/>
    <bpmn:userTask id="declared"><bpmn:extensionElements><spiffworkflow:properties>
      <spiffworkflow:property name="outputs" value="answer, note"/></spiffworkflow:properties>
    </bpmn:extensionElements></bpmn:userTask>
    <bpmn:sequenceFlow id="c" sourceRef="declared" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_undeclared_forms_add_but_never_overwrite_and_declared_forms_set_only_their_outputs(rt):
    definitions.deploy(rt, XML, "admin")
    iid = instances.start(rt, actor="u", key="forms", variables={"owner": "grid-7"}).instance.id
    (free,) = instances.open_tasks(rt, iid)
    with pytest.raises(InvalidInput) as info:
        tasks.complete(rt, free.id, "u", {"owner": "grid-9"})
    assert list(info.value.fields) == ["owner"]
    tasks.complete(rt, free.id, "u", {"comment": "new is fine"})
    (declared,) = instances.open_tasks(rt, iid)
    with pytest.raises(InvalidInput):
        tasks.complete(rt, declared.id, "u", {"answer": 1, "comment": "not declared here"})
    tasks.complete(rt, declared.id, "u", {"answer": 42})
    assert instances.variables(rt, iid)["answer"] == 42 and instances.variables(rt, iid)["owner"] == "grid-7"


def test_outputs_must_be_names(rt):
    from engine.parsing import ModelError

    with pytest.raises(ModelError, match="outputs must be variable names"):
        definitions.deploy(rt, XML.replace("answer, note", "answer, __class__"), "admin")
