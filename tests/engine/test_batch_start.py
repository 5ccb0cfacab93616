"""Batch start: many instances of one definition in one transaction; an item the engine refuses
refuses the whole batch and nothing is started (no instance, no audit event, no read model)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, instances
from engine.batch_start import MAX_BATCH, StartItem, start_many
from engine.errors import Conflict, InvalidInput, NotFound, ProcessError
from engine.models import AuditEvent, HumanTask, ProcessInstance
from tests.engine.builders import waits_until
from tests.engine.support import count

TIMER_XML = waits_until("due_at")

FORM_XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:gridloop="http://gridloop.example/schema/1.0" id="d" targetNamespace="t">
  <bpmn:process id="with_form" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="supervisor"><bpmn:flowNodeRef>review</bpmn:flowNodeRef></bpmn:lane>
    </bpmn:laneSet>
    <bpmn:startEvent id="s"><bpmn:extensionElements><gridloop:form>
      <gridloop:field name="level" type="integer" required="true" min="1" max="4"/>
    </gridloop:form></bpmn:extensionElements></bpmn:startEvent>
    <bpmn:sequenceFlow id="a" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review"><bpmn:extensionElements><gridloop:form/></bpmn:extensionElements>
    </bpmn:userTask><bpmn:sequenceFlow id="b" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def _nothing_started(rt) -> bool:
    return (count(rt, ProcessInstance) == 0 and count(rt, HumanTask) == 0
            and count(rt, AuditEvent, AuditEvent.instance_id.is_not(None)) == 0)


def _due(rt, seconds: float) -> str:
    return (rt.clock.now() + timedelta(seconds=seconds)).isoformat()


def test_a_batch_starts_every_item_each_waiting_on_its_own_timer(rt):
    definitions.deploy(rt, TIMER_XML, "admin")
    items = [StartItem({"due": _due(rt, 60 + i)}, business_key=f"b-{i}") for i in range(5)]
    started = start_many(rt, actor="ops", key="due_at", items=items)
    assert [row.business_key for row in started] == [f"b-{i}" for i in range(5)]
    for i, row in enumerate(started):
        got = instances.get(rt, row.id)
        assert got.status == "running" and got.started_by == "ops"
        assert got.next_wakeup_at == rt.clock.now() + timedelta(seconds=60 + i)
        assert [e.action for e in instances.history(rt, row.id)] == ["instance.started"]


def test_a_bad_timer_value_in_one_item_refuses_the_whole_batch(rt):
    definitions.deploy(rt, TIMER_XML, "admin")
    items = [StartItem({"due": _due(rt, 60)}) for _ in range(3)] + [StartItem({"due": "next tuesday"})]
    with pytest.raises(ProcessError) as refused:
        start_many(rt, actor="ops", key="due_at", items=items)
    assert refused.value.message.startswith("item 3: ")
    assert "3" in refused.value.fields
    assert _nothing_started(rt)


def test_a_bad_variable_name_refuses_the_batch_naming_the_item_and_the_variable(rt):
    definitions.deploy(rt, TIMER_XML, "admin")
    items = [StartItem({"due": _due(rt, 60)}), StartItem({"due": _due(rt, 60), "_secret": 1})]
    with pytest.raises(InvalidInput) as refused:
        start_many(rt, actor="ops", key="due_at", items=items)
    assert refused.value.fields == {"1": {"variables": {"_secret": [
        "variable names must be identifiers not starting with '_'"]}}}
    assert _nothing_started(rt)


def test_start_form_values_are_checked_for_every_item(rt):
    definitions.deploy(rt, FORM_XML, "admin")
    items = [StartItem({"level": 2}), StartItem({"level": 9}), StartItem({}), StartItem({"level": 1})]
    with pytest.raises(InvalidInput) as refused:
        start_many(rt, actor="ops", key="with_form", items=items)
    assert set(refused.value.fields) == {"1", "2"}
    assert set(refused.value.fields["1"]["variables"]) == {"level"}
    assert _nothing_started(rt)
    started = start_many(rt, actor="ops", key="with_form", items=[StartItem({"level": 2}), StartItem({"level": 3})])
    assert [instances.variables(rt, row.id)["level"] for row in started] == [2, 3]
    assert count(rt, HumanTask) == 2


def test_a_taken_or_repeated_business_key_refuses_the_batch(rt):
    definitions.deploy(rt, TIMER_XML, "admin")
    start_many(rt, actor="ops", key="due_at", items=[StartItem({"due": _due(rt, 60)}, business_key="taken")])
    with pytest.raises(Conflict):
        start_many(rt, actor="ops", key="due_at", items=[StartItem({"due": _due(rt, 60)}, business_key="new"),
                                                         StartItem({"due": _due(rt, 60)}, business_key="taken")])
    with pytest.raises(InvalidInput) as repeated:
        start_many(rt, actor="ops", key="due_at", items=[StartItem({"due": _due(rt, 60)}, business_key="x"),
                                                         StartItem({"due": _due(rt, 60)}, business_key="x")])
    assert set(repeated.value.fields) == {"1"}
    assert count(rt, ProcessInstance) == 1


def test_the_batch_itself_is_checked(rt):
    definitions.deploy(rt, TIMER_XML, "admin")
    with pytest.raises(InvalidInput):
        start_many(rt, actor="ops", key="due_at", items=[])
    with pytest.raises(InvalidInput):
        start_many(rt, actor="ops", key="due_at", items=[StartItem({"due": _due(rt, 60)})] * (MAX_BATCH + 1))
    with pytest.raises(NotFound):
        start_many(rt, actor="ops", key="no_such_process", items=[StartItem({"due": _due(rt, 60)})])
    assert _nothing_started(rt)
