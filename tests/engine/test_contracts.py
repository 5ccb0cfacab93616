"""Contracts between a layer above the engine and the models it starts (engine/contracts.py): each
kind of break refuses the new version, naming the element or field and the declared reason, and
deploys nothing; a model keeping its contract, or a key without one, deploys as before."""

import pytest

from engine import definitions
from engine.contracts import ModelContract, NeedsElement, NeedsField, NeedsMessage, NeedsOperation
from engine.parsing import ModelError
from tests.engine.builders import boundary_timer, end, message_header, process, receive, seq, service, start

FORM = """<bpmn:userTask id="{id}"><bpmn:extensionElements><gridloop:form>
  <gridloop:field name="result" type="{type}" required="true">{options}</gridloop:field>
</gridloop:form></bpmn:extensionElements></bpmn:userTask>"""
GRIDLOOP = 'xmlns:gridloop="http://gridloop.example/schema/1.0" '


def _model(*, task="check", kind="userTask", field_type="enum", options=("ok", "redo"), timer=True,
           operation="ref.classify", message=True) -> str:
    opts = "".join(f'<gridloop:option value="{o}"/>' for o in options)
    if kind == "userTask":
        body = FORM.format(id=task, type=field_type, options=opts if field_type == "enum" else "")
    else:
        body = f'<bpmn:manualTask id="{task}"/>'
    elements = [start(), service("classify", operation, value="1"), body, receive("wait", "reply", "reply"), end(),
                seq("start", "classify", task, "wait", "end")]
    if timer:
        elements += [boundary_timer("late", task, "timeDuration", '"PT1H"', interrupting=False), end("told"),
                     seq("late", "told")]
    xml = process("contracted", *elements, lanes={"clerk": [task]},
                  header=message_header("reply") if message else "")
    if not message:
        xml = xml.replace(' messageRef="msg_reply"', "")
    return xml.replace("<bpmn:definitions ", f"<bpmn:definitions {GRIDLOOP}", 1)


CONTRACT = ModelContract(
    key="contracted",
    elements=(NeedsElement("check", "user task", "the report counts it"),
              NeedsElement("late", "timer event", "the report counts reminders")),
    fields=(NeedsField("check", "result", "enum", "the report reads the outcome", options=("ok",)),),
    operations=(NeedsOperation("ref.classify", "levels come from it"),),
    messages=(NeedsMessage("reply", "the reply endpoint sends it"),))


@pytest.fixture
def contracted(rt):
    rt.contracts.register(CONTRACT)
    definitions.deploy(rt, _model(), "admin")
    return rt


def _refused(rt, xml) -> list[tuple[str | None, str]]:
    with pytest.raises(ModelError) as refused:
        definitions.deploy(rt, xml, "admin")
    assert [(d.key, d.version) for d in definitions.list_definitions(rt)] == [("contracted", 1)]  # nothing deployed
    return [(p.element_id, p.message) for p in refused.value.problems]


@pytest.mark.parametrize(("change", "element", "words"), [
    (dict(task="review"), "check", "the process has no user task 'check' any more: the report counts it"),
    (dict(kind="manualTask"), "check", "'check' is a manual task here, it must stay a user task: the report counts it"),
    (dict(timer=False), "late", "the process has no timer event 'late' any more: the report counts reminders"),
    (dict(options=("redo", "fine")), "check",
     "field 'result' of the form of 'check' no longer offers 'ok': the report reads the outcome"),
    (dict(field_type="string"), "check",
     "field 'result' of the form of 'check' is a string, it must stay an enum: the report reads the outcome"),
    (dict(operation="ref.push"), None, "no service task calls operation 'ref.classify' any more: levels come from it"),
], ids=["element renamed", "element kind changed", "timer removed", "option dropped", "field type changed",
        "operation dropped"])
def test_a_new_version_breaking_the_contract_is_refused_naming_what_and_why(contracted, change, element, words):
    problems = _refused(contracted, _model(**change))
    assert (element, words) in problems


def test_a_dropped_field_and_a_dropped_message_are_refused(contracted):
    no_field = _model().replace('name="result"', 'name="outcome"')
    assert ("check", "the form of 'check' has no field 'result' any more: the report reads the outcome") in \
        _refused(contracted, no_field)
    no_message = _model().replace('name="reply"', 'name="answer"')
    assert (None, "nothing waits for message 'reply' any more: the reply endpoint sends it") in \
        _refused(contracted, no_message)


def test_a_version_keeping_the_contract_deploys_and_an_added_option_is_fine(contracted):
    definition, created = definitions.deploy(contracted, _model(options=("ok", "redo", "later")), "admin")
    assert created and definition.version == 2


def test_a_key_without_a_contract_deploys_as_before(rt):
    _definition, created = definitions.deploy(rt, _model(task="review", timer=False), "admin")
    assert created and rt.contracts.of("contracted") == []
