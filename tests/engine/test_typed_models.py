"""Typed processes through the engine: what the deploy refuses (the lint corpus) and what a start or a
completion with a wrong value leaves behind (nothing)."""

import pytest

from engine import definitions, instances, tasks
from engine.errors import InvalidInput, ProcessError
from engine.models import AuditEvent, HumanTask, ProcessInstance
from engine.parsing import ModelError
from engine.references import ReferenceKind, ReferenceRefused
from tests.engine.support import count

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  xmlns:gridloop="http://gridloop.example/schema/1.0" id="defs" targetNamespace="http://t">
<bpmn:process id="permit" isExecutable="true">
<bpmn:laneSet id="ls"><bpmn:lane id="l" name="officer"><bpmn:flowNodeRef>decide</bpmn:flowNodeRef>
</bpmn:lane></bpmn:laneSet>
"""
START_FORM = """<bpmn:startEvent id="start"><bpmn:extensionElements><gridloop:form>
  <gridloop:field name="applicant" type="string" required="true"/>
  <gridloop:field name="region" type="reference" ref="region" mode="strict"/>
</gridloop:form></bpmn:extensionElements></bpmn:startEvent>"""
DECIDE = """<bpmn:userTask id="decide" name="审批 Decide"><bpmn:extensionElements><gridloop:form>
  <gridloop:field name="verdict" type="enum" required="true">
    <gridloop:option value="approve"/><gridloop:option value="reject"/></gridloop:field>
  <gridloop:field name="note" type="text" requiredWhen="verdict == 'reject'"/>
</gridloop:form></bpmn:extensionElements></bpmn:userTask>"""
BODY = """<bpmn:scriptTask id="count"><bpmn:script>decisions = 1</bpmn:script></bpmn:scriptTask>
<bpmn:exclusiveGateway id="g" name="Verdict"{default}/>
<bpmn:endEvent id="approved"/><bpmn:endEvent id="rejected"/>
<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="decide"/>
<bpmn:sequenceFlow id="f2" sourceRef="decide" targetRef="count"/>
<bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="g"/>
<bpmn:sequenceFlow id="f4" sourceRef="g" targetRef="approved">
  <bpmn:conditionExpression>{approve}</bpmn:conditionExpression></bpmn:sequenceFlow>
<bpmn:sequenceFlow id="f5" sourceRef="g" targetRef="rejected">
  <bpmn:conditionExpression>{reject}</bpmn:conditionExpression></bpmn:sequenceFlow>
{extra}
</bpmn:process></bpmn:definitions>"""


def model(*, start=START_FORM, decide=DECIDE, approve="verdict == 'approve' and decisions == 1",
          reject="verdict == 'reject'", default="", extra="") -> str:
    return HEAD + start + decide + BODY.format(
        approve=approve, reject=reject, default=default, extra=extra)


def check_region(value, ctx):
    if value not in ("north", "south"):
        raise ReferenceRefused(f"there is no region {value!r}")
    return value


@pytest.fixture
def typed_rt(rt):
    rt.references.register(ReferenceKind("region", check_region, literals=frozenset({"mode"}),
                                         required=frozenset({"mode"})))
    return rt


def problems(rt, xml: str) -> list[tuple[str | None, str]]:
    with pytest.raises(ModelError) as info:
        definitions.deploy(rt, xml, "admin")
    return [(p.element_id, p.message) for p in info.value.problems]


def test_the_typed_model_deploys(typed_rt):
    _definition, created = definitions.deploy(typed_rt, model(), "admin")
    assert created


@pytest.mark.parametrize("xml, element, message", [
    (model(approve="verdict == 'Approve'"), "g",
     "the condition to 'approved' compares verdict with 'Approve', which its form never allows ('approve', 'reject')"),
    (model(reject="verdict in ('reject', 'denied')"), "g", "compares verdict with 'denied'"),
    (model(approve="verdict == 'approve' and decisons == 1"), "g",
     "condition to 'approved' uses 'decisons', which no form, script or operation of this process defines "
     "(did you mean 'decisions'?)"),
    (model(default=' default="f5"'), "g", "exclusive gateways of a process with forms have no default flow"),
    (model(decide=DECIDE.replace('requiredWhen="verdict', 'requiredWhen="verdct')), "decide",
     "field 'note' uses 'verdct', which this process does not define (did you mean 'verdict'?)"),
    (model(decide='<bpmn:userTask id="decide"/>'), "decide", "every user task needs a <gridloop:form>"),
    (model(start=START_FORM.replace('ref="region"', 'ref="county"')), "start", "unknown reference kind 'county'"),
    (model(start=START_FORM.replace('mode="strict"', 'mode="strict" within="x"')), "start",
     "a region reference has no attribute 'within'"),
    (model(start=START_FORM.replace(' mode="strict"', "")), "start", "a region reference needs the attribute 'mode'"),
    (model(extra='<bpmn:sequenceFlow id="f9" sourceRef="count" targetRef="nowhere"/>'), "f9",
     "the flow's targetRef 'nowhere' is not an element of its process"),
])
def test_the_deploy_refuses_and_names_element_and_problem(typed_rt, xml, element, message):
    found = problems(typed_rt, xml)
    assert any(e == element and message in m for e, m in found), found


def test_names_an_expression_binds_itself_are_not_undefined(typed_rt):
    xml = model(approve="verdict == 'approve' and any(c == 1 for c in [decisions])",
                reject="verdict == 'reject' and [n for n in (1, 2) if n] != []")
    definitions.deploy(typed_rt, xml, "admin")


def test_an_untyped_model_keeps_its_freedom_but_not_its_enum_mistakes(typed_rt):
    untyped = model(start='<bpmn:startEvent id="start"/>', default=' default="f5"',
                    approve="verdict == 'approve' and anything_goes")
    definitions.deploy(typed_rt, untyped, "admin")  # no start form: free names and defaults are allowed
    assert problems(typed_rt, model(start='<bpmn:startEvent id="start"/>', approve="verdict == 'yes'")) == [
        ("g", "the condition to 'approved' compares verdict with 'yes', which its form never allows "
              "('approve', 'reject')")]


def test_a_start_with_a_wrong_value_creates_nothing(typed_rt):
    rt = typed_rt
    definitions.deploy(rt, model(), "admin")
    events = count(rt, AuditEvent)
    for variables, field in (({"applicant": "甲", "region": "west"}, "region"),
                             ({"applicant": "甲", "grid": "320706"}, "grid"),
                             ({"region": "north"}, "applicant")):
        with pytest.raises(InvalidInput) as info:
            instances.start(rt, actor="admin", key="permit", variables=variables)
        assert list(info.value.fields) == [field]
    assert count(rt, ProcessInstance) == 0 and count(rt, AuditEvent) == events


def test_a_completion_with_a_wrong_value_changes_nothing(typed_rt):
    rt = typed_rt
    definitions.deploy(rt, model(), "admin")
    iid = instances.start(rt, actor="admin", key="permit", variables={"applicant": "甲", "region": "north"}).instance.id
    (task,) = instances.open_tasks(rt, iid)
    events = count(rt, AuditEvent)
    for variables, field in (({"verdict": "Approve"}, "verdict"), ({"verdict": "reject"}, "note"),
                             ({"verdict": "approve", "applicant": "乙"}, "applicant")):
        with pytest.raises(InvalidInput) as info:
            tasks.complete(rt, task.id, "officer-1", variables)
        assert list(info.value.fields) == [field]
    assert [t.status for t in instances.open_tasks(rt, iid)] == ["open"] and count(rt, AuditEvent) == events
    tasks.complete(rt, task.id, "officer-1", {"verdict": "reject", "note": "材料不全"})
    assert instances.get(rt, iid).status == "completed"
    assert instances.variables(rt, iid)["note"] == "材料不全"


def test_a_gateway_no_condition_matches_stops_the_change_instead_of_guessing(typed_rt):
    rt = typed_rt
    # untyped (no start form), no default flow: the start variable `level` decides, and 'medium' matches nothing
    xml = model(start='<bpmn:startEvent id="start"/>', approve="level == 'high'", reject="level == 'low'")
    definitions.deploy(rt, xml, "admin")
    iid = instances.start(rt, actor="admin", key="permit", variables={"level": "medium"}).instance.id
    (task,) = instances.open_tasks(rt, iid)
    events = count(rt, AuditEvent)
    with pytest.raises(ProcessError) as info:
        tasks.complete(rt, task.id, "officer-1", {"verdict": "approve"})
    assert info.value.details.get("element") == "g"
    assert "none of the gateway's conditions holds" in info.value.message and "Exception" not in info.value.message
    assert count(rt, HumanTask, HumanTask.status == "open") == 1 and count(rt, AuditEvent) == events


def test_a_script_that_reads_a_variable_only_it_sets_is_refused(typed_rt):
    xml = model().replace("<bpmn:script>decisions = 1</bpmn:script>",
                          "<bpmn:script>decisions = 1\ntotal = total + 1</bpmn:script>")
    found = problems(typed_rt, xml)
    assert ("count", "script reads 'total' before setting it, and nothing else of this process sets it") in found
    fine = model().replace("<bpmn:script>decisions = 1</bpmn:script>",
                           "<bpmn:script>decisions = 1\ndecisions = decisions + len([a for a in applicant])"
                           "</bpmn:script>")
    definitions.deploy(typed_rt, fine, "admin")
