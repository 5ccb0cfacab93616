"""Typed forms: declaration, checking and conversion of values, rules, and the JSON Schema clients get."""

import pytest
from lxml import etree

from engine.errors import InvalidInput
from engine.form_rules import RuleError, parse_rule
from engine.form_schema import json_schema
from engine.form_xml import forms_of
from engine.forms import NS, FormError
from engine.references import ReferenceRefused

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"


def process(*tasks: str) -> etree._Element:
    xml = (f'<bpmn:process xmlns:bpmn="{BPMN}" xmlns:gridloop="{NS}" id="p" isExecutable="true">'
           + "".join(tasks) + "</bpmn:process>")
    return etree.fromstring(xml)


def task(element_id: str, *fields: str) -> str:
    return (f'<bpmn:userTask id="{element_id}"><bpmn:extensionElements><gridloop:form>{"".join(fields)}'
            '</gridloop:form></bpmn:extensionElements></bpmn:userTask>')


REVIEW = task(
    "review",
    '<gridloop:field name="result" type="enum" required="true" label="结论" labelEn="Result">'
    '<gridloop:option value="valid" label="有效"/><gridloop:option value="invalid" label="无效"/></gridloop:field>',
    '<gridloop:field name="reason" type="text" maxLength="20" requiredWhen="result == \'invalid\'" '
    'shownWhen="result == \'invalid\'"/>',
    '<gridloop:field name="hours" type="number" min="1" max="72"/>',
    '<gridloop:field name="count" type="integer" default="0"/>',
    '<gridloop:field name="ok" type="boolean"/>',
    '<gridloop:field name="at" type="date-time"/>',
    '<gridloop:field name="code" type="string" pattern="[0-9]{6}"/>',
    '<gridloop:field name="who" type="reference" ref="user" role="inspector" scope="grid"/>',
)


def review_form():
    forms, start = forms_of(process(REVIEW))
    assert start is None
    return forms["review"]


def nobody(_field, value, _variables):
    if value == "ghost":
        raise ReferenceRefused("'ghost' is not an active user")
    return value.lower()


def errors(form, submitted, held=None):
    with pytest.raises(InvalidInput) as info:
        form.validate(submitted, held or {}, resolve=nobody)
    return info.value.fields


def test_values_are_converted_defaults_filled_and_unheld_fields_set_to_none():
    values = review_form().validate({"result": "valid", "hours": 2, "who": "Insp-1"}, {"ok": True}, resolve=nobody)
    assert values == {"result": "valid", "hours": 2, "who": "insp-1", "count": 0, "reason": None, "at": None,
                      "code": None}  # `ok` is held by the process: left as it is


@pytest.mark.parametrize("submitted, field, message", [
    ({"result": "Valid"}, "result", "must be one of: valid, invalid (got 'Valid')"),
    ({"result": 123}, "result", "must be text, not a number"),
    ({"result": "valid", "ok": "yes"}, "ok", "must be true or false, not text"),
    ({"result": "valid", "ok": 1}, "ok", "must be true or false, not a number"),
    ({"result": "valid", "hours": True}, "hours", "must be a number, not true/false"),
    ({"result": "valid", "hours": 0.5}, "hours", "must be at least 1"),
    ({"result": "valid", "hours": 100}, "hours", "must be at most 72"),
    ({"result": "valid", "hours": float("nan")}, "hours", "must be a finite number"),
    ({"result": "valid", "count": 1.5}, "count", "must be a whole number"),
    ({"result": "valid", "at": "2026-12-04 09:00"}, "at", "needs a UTC offset, e.g. +08:00"),
    ({"result": "valid", "at": "0001-01-01T00:00:00+14:00"}, "at", "must be between the years 2000 and 2200"),
    ({"result": "valid", "at": "tomorrow"}, "at",
     "must be a date and time in ISO 8601, e.g. 2026-12-04T09:30:00+08:00"),
    ({"result": "valid", "code": "12345"}, "code", "does not have the expected form ([0-9]{6})"),
    ({"result": "invalid"}, "reason", "required when result == 'invalid'"),
    ({"result": "invalid", "reason": "x" * 21}, "reason", "must be at most 20 characters (got 21)"),
    ({"result": "valid", "reason": "why not"}, "reason", "only allowed when result == 'invalid'"),
    ({"result": "valid", "who": "ghost"}, "who", "'ghost' is not an active user"),
    ({"result": "valid", "grid": "320706"}, "grid", "this form has no field 'grid' (it takes: at, code, count, hours, "
                                                    "ok, reason, result, who)"),
    ({}, "result", "required"),
])
def test_each_wrong_value_is_refused_naming_its_field(submitted, field, message):
    assert errors(review_form(), submitted) == {field: [message]}


def test_a_hidden_field_gets_no_default():
    forms, _start = forms_of(process(task(
        "t", '<gridloop:field name="approved" type="boolean" required="true"/>',
        '<gridloop:field name="hours" type="number" default="8" shownWhen="approved == True"/>')))
    form = forms["t"]
    assert form.validate({"approved": False}, {}, resolve=nobody) == {"approved": False, "hours": None}
    assert form.validate({"approved": True}, {}, resolve=nobody) == {"approved": True, "hours": 8.0}


def test_every_bad_field_is_named_at_once_and_blank_means_absent():
    assert set(errors(review_form(), {"result": "invalid", "reason": "  ", "hours": "2", "ok": None})) == {
        "reason", "hours"}


def test_references_are_resolved_only_when_everything_else_is_right():
    seen = []

    def resolve(_field, value, _variables):
        seen.append(value)
        return value

    with pytest.raises(InvalidInput):
        review_form().validate({"result": "Valid", "who": "insp-1"}, {}, resolve=resolve)
    assert seen == []


def test_rules_keep_true_apart_from_one_and_read_process_variables():
    rule = parse_rule("approved == True and kind in ('a', 'b') or not urgent")
    assert rule.holds({"approved": True, "kind": "a", "urgent": True})
    assert not rule.holds({"approved": 1, "kind": "a", "urgent": True})
    assert rule.holds({"urgent": False})
    assert rule.names == {"approved", "kind", "urgent"}
    assert rule.comparisons() == [("approved", [True]), ("kind", ["a", "b"])]


@pytest.mark.parametrize("source", ["__import__('os')", "a.b == 1", "len(x) == 1", "a < 3", "a == b", "a == [1]",
                                    "a ==", "lambda: 1"])
def test_rules_are_a_small_language(source):
    with pytest.raises(RuleError):
        parse_rule(source)


def test_the_json_schema_carries_types_enums_labels_and_the_rules():
    schema = json_schema(review_form())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False and schema["required"] == ["result"]
    result = schema["properties"]["result"]
    assert result["enum"] == ["valid", "invalid"] and result["x-labels"]["valid"] == {"zh-CN": "有效", "en": "有效"}
    assert result["x-label"] == {"zh-CN": "结论", "en": "Result"}
    assert schema["properties"]["hours"] == {"type": "number", "minimum": 1.0, "maximum": 72.0}
    assert schema["properties"]["who"]["x-reference"] == {"kind": "user", "role": "inspector", "scope": "grid"}
    assert schema["properties"]["reason"]["x-rules"] == {"requiredWhen": "result == 'invalid'",
                                                         "shownWhen": "result == 'invalid'"}
    required_when = {"if": {"properties": {"result": {"enum": ["invalid"]}}, "required": ["result"]},
                     "then": {"required": ["reason"]}}
    assert required_when in schema["allOf"]
    assert schema["x-order"][0] == "result"


@pytest.mark.parametrize("field, problem", [
    ('<gridloop:field name="x" type="colour"/>', "unknown type 'colour'"),
    ('<gridloop:field name="x" type="enum"/>', "an enum needs <gridloop:option> values"),
    ('<gridloop:field name="_x"/>', "a field name must be a variable name"),
    ('<gridloop:field name="x" type="reference"/>', "a reference names its kind"),
    ('<gridloop:field name="x" type="string" scope="grid"/>', "unknown attributes: scope"),
    ('<gridloop:field name="x" type="boolean" default="yes"/>', "a boolean default is true or false"),
    ('<gridloop:field name="x" requiredWhen="x.y == 1"/>', "a comparison needs a variable name"),
    ('<gridloop:field name="x"/><gridloop:field name="x"/>', "fields named twice: x"),
    ('<gridloop:field name="x" type="reference" ref="user" default="mallory"/>', "a reference has no default"),
    ('<gridloop:field name="x" pattern="(unclosed"/>', "is not a regular expression"),
    ('<gridloop:field name="x" type="number" min="x"/>', "'x' is not a number"),
    ('<gridloop:field name="x" maxLength="0"/>', "a length is at least 1"),
])
def test_a_wrong_declaration_is_a_deploy_problem_naming_the_element(field, problem):
    with pytest.raises(FormError) as info:
        forms_of(process(task("t", field)))
    assert str(info.value).startswith("t: ") and problem in str(info.value)


def test_the_start_form_sits_on_the_plain_start_event_of_the_process():
    start = ('<bpmn:startEvent id="s"><bpmn:extensionElements><gridloop:form>'
             '<gridloop:field name="grid" type="string" required="true"/></gridloop:form></bpmn:extensionElements>'
             '</bpmn:startEvent>')
    forms, start_form = forms_of(process(start, REVIEW))
    assert start_form is not None and start_form.names == {"grid"} and set(forms) == {"review"}
