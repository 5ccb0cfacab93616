"""Typed forms: what a user task (or a process start) accepts, declared in the model.

A form is a `gridloop:form` extension element of a user task or of a process's start event:

    <gridloop:form>
      <gridloop:field name="review_result" type="enum" required="true" label="甄别结论" labelEn="Review">
        <gridloop:option value="valid" label="有效" labelEn="Valid"/>
      </gridloop:field>
      <gridloop:field name="invalid_reason" type="text" maxLength="500" requiredWhen="review_result == 'invalid'"/>
      <gridloop:field name="inspector" type="reference" ref="user" role="inspector" scope="grid"/>
    </gridloop:form>

A completion is checked against it inside the change: unknown fields, wrong types, values outside
an enum or a range, missing required values and unresolvable references are refused together,
field by field, and nothing changes. `json_schema()` serves the same form to clients."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from lxml import etree

from .errors import InvalidInput
from .form_rules import Rule, RuleError, parse_rule
from .references import ReferenceRefused

NS = "http://gridloop.example/schema/1.0"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
MAX_FIELDS = 100


class FieldType(StrEnum):
    STRING = "string"
    TEXT = "text"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    NUMBER = "number"
    DATETIME = "date-time"
    ENUM = "enum"
    REFERENCE = "reference"


DEFAULT_MAX_LENGTH = {FieldType.STRING: 200, FieldType.TEXT: 4000, FieldType.REFERENCE: 200}
_FIELD_ATTRIBUTES = {"name", "type", "required", "label", "labelEn", "default", "min", "max", "minLength",
                     "maxLength", "pattern", "requiredWhen", "shownWhen", "ref"}


class FormError(ValueError):
    """The form declaration itself is wrong (a deploy problem)."""


@dataclass(frozen=True)
class Option:
    value: str
    label: str | None = None
    label_en: str | None = None


@dataclass(frozen=True)
class FormField:
    name: str
    type: FieldType
    required: bool = False
    label: str | None = None
    label_en: str | None = None
    options: tuple[Option, ...] = ()
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    required_when: Rule | None = None
    shown_when: Rule | None = None
    ref: str | None = None  # the reference kind (user, case, grid...), checked by a registered validator
    ref_args: Mapping[str, str] = field(default_factory=dict)  # the kind's own attributes, as written

    @property
    def values(self) -> list[str]:
        return [o.value for o in self.options]

    def rules(self) -> Iterator[tuple[str, Rule]]:
        if self.required_when is not None:
            yield "requiredWhen", self.required_when
        if self.shown_when is not None:
            yield "shownWhen", self.shown_when


@dataclass(frozen=True)
class Form:
    element_id: str
    fields: tuple[FormField, ...]

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    def get(self, name: str) -> FormField | None:
        return next((f for f in self.fields if f.name == name), None)

    def validate(self, submitted: Mapping[str, Any], held: Mapping[str, Any], *,
                 resolve: Callable[[FormField, Any, Mapping[str, Any]], Any]) -> dict[str, Any]:
        """The values to set: submitted ones checked and converted, defaults for absent fields,
        None for absent ones the process does not hold yet. Raises InvalidInput naming every bad field."""
        errors: dict[str, list[str]] = {}
        for name in submitted:
            if self.get(name) is None:
                known = ", ".join(sorted(self.names)) or "nothing"
                errors[name] = [f"this form has no field {name!r} (it takes: {known})"]
        values: dict[str, Any] = {}
        for f in self.fields:
            raw = submitted.get(f.name)
            if _blank(raw):
                continue
            try:
                values[f.name] = convert(f, raw)
            except ValueError as exc:
                errors[f.name] = [str(exc)]
        context = {**held, **values}
        wrong = set(errors)
        for f in self.fields:
            if f.name in errors or any(rule.names & wrong for _kind, rule in f.rules()):
                continue  # a rule over a wrong value says nothing: the wrong value is the error
            shown = f.shown_when is None or f.shown_when.holds(context)
            if not shown and f.name in values:
                errors[f.name] = [f"only allowed when {f.shown_when.source}"]  # type: ignore[union-attr]
                continue
            needed = f.required or (f.required_when is not None and f.required_when.holds(context))
            if shown and needed and f.name not in values:
                errors[f.name] = ["required" if f.required else f"required when {f.required_when.source}"]  # type: ignore[union-attr]
        if not errors:
            for f in self.fields:
                if f.type is FieldType.REFERENCE and f.name in values:
                    try:
                        values[f.name] = resolve(f, values[f.name], context)
                    except ReferenceRefused as exc:
                        errors[f.name] = [str(exc)]
        if errors:
            summary = "; ".join(f"{name}: {' '.join(msgs)}" for name, msgs in errors.items())
            raise InvalidInput(f"the form has invalid fields ({summary})", fields=errors)
        context = {**held, **values}
        for f in self.fields:
            if f.name not in values:
                shown = f.shown_when is None or f.shown_when.holds(context)
                if f.default is not None and shown:
                    values[f.name] = f.default
                elif f.name not in held:
                    values[f.name] = None
        return values

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema 2020-12 of the values, with UI hints (labels, widget, rules) under `x-` keys."""
        properties = {f.name: _property_schema(f) for f in self.fields}
        schema: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": properties, "additionalProperties": False,
            "required": [f.name for f in self.fields if f.required and f.shown_when is None],
        }
        conditions = []
        for f in self.fields:
            for kind, rule in f.rules():
                condition = rule.json_schema() if rule.names <= self.names else None
                if condition is None:
                    continue  # reads process variables: the server decides; the hint is in x-rules
                if kind == "shownWhen":
                    conditions.append({"if": {"not": condition}, "then": {"properties": {f.name: False}}})
                    if f.required:  # required whenever it is shown
                        conditions.append({"if": condition, "then": {"required": [f.name]}})
                else:
                    conditions.append({"if": condition, "then": {"required": [f.name]}})
        if conditions:
            schema["allOf"] = conditions
        schema["x-order"] = [f.name for f in self.fields]
        return schema


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


_TEXTUAL = (FieldType.STRING, FieldType.TEXT, FieldType.REFERENCE, FieldType.ENUM, FieldType.DATETIME)


def convert(f: FormField, raw: Any) -> Any:
    """One value, typed and within the field's constraints; ValueError says what is wrong."""
    t = f.type
    if t in _TEXTUAL and not isinstance(raw, str):
        raise ValueError(f"must be text, not {_kind(raw)}")
    if t is FieldType.ENUM:
        if raw not in f.values:
            raise ValueError(f"must be one of: {', '.join(f.values)} (got {raw!r})")
        return raw
    if t is FieldType.BOOLEAN:
        if not isinstance(raw, bool):
            raise ValueError(f"must be true or false, not {_kind(raw)}")
        return raw
    if t in (FieldType.INTEGER, FieldType.NUMBER):
        number = _number(raw, integer=t is FieldType.INTEGER)
        if f.minimum is not None and number < f.minimum:
            raise ValueError(f"must be at least {_plain(f.minimum)}")
        if f.maximum is not None and number > f.maximum:
            raise ValueError(f"must be at most {_plain(f.maximum)}")
        return number
    if t is FieldType.DATETIME:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError("must be a date and time in ISO 8601, e.g. 2026-12-04T09:30:00+08:00") from None
        if moment.tzinfo is None:
            raise ValueError("needs a UTC offset, e.g. +08:00")
        if not 2000 <= moment.year <= 2200:
            raise ValueError("must be between the years 2000 and 2200")
        return moment.isoformat()
    text = raw
    limit = f.max_length or DEFAULT_MAX_LENGTH[t]
    if len(text) > limit:
        raise ValueError(f"must be at most {limit} characters (got {len(text)})")
    if f.min_length is not None and len(text) < f.min_length:
        raise ValueError(f"must be at least {f.min_length} characters")
    if f.pattern is not None and re.fullmatch(f.pattern, text) is None:
        raise ValueError(f"does not have the expected form ({f.pattern})")
    return text


def _number(raw: Any, *, integer: bool) -> int | float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"must be a number, not {_kind(raw)}")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError("must be a finite number")
    if integer:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError("must be a whole number")
        return int(raw)
    return raw


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _kind(raw: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "an object"}.get(type(raw), type(raw).__name__)


def _property_schema(f: FormField) -> dict[str, Any]:
    s: dict[str, Any] = {}
    if f.type is FieldType.ENUM:
        s = {"type": "string", "enum": f.values,
             "x-labels": {o.value: {"zh-CN": o.label or o.value, "en": o.label_en or o.label or o.value}
                          for o in f.options}}
    elif f.type is FieldType.BOOLEAN:
        s = {"type": "boolean"}
    elif f.type in (FieldType.INTEGER, FieldType.NUMBER):
        s = {"type": "integer" if f.type is FieldType.INTEGER else "number"}
        if f.minimum is not None:
            s["minimum"] = f.minimum
        if f.maximum is not None:
            s["maximum"] = f.maximum
    elif f.type is FieldType.DATETIME:
        s = {"type": "string", "format": "date-time"}
    else:
        s = {"type": "string", "maxLength": f.max_length or DEFAULT_MAX_LENGTH[f.type]}
        if f.min_length is not None:
            s["minLength"] = f.min_length
        if f.pattern is not None:
            s["pattern"] = f.pattern
        if f.type is FieldType.TEXT:
            s["x-widget"] = "textarea"
        if f.type is FieldType.REFERENCE:
            s["x-reference"] = {"kind": f.ref, **f.ref_args}
    if f.label or f.label_en:
        s["title"] = f.label or f.label_en
        s["x-label"] = {"zh-CN": f.label or f.label_en, "en": f.label_en or f.label}
    if f.default is not None:
        s["default"] = f.default
    for kind, rule in f.rules():
        s.setdefault("x-rules", {})[kind] = rule.source
    return s


# ---- reading forms from the model -------------------------------------------------------------

def forms_of(process: etree._Element) -> tuple[dict[str, Form], Form | None]:
    """The forms of a <bpmn:process> element: per user-task id, and the start form (on the plain
    start event of the process itself). FormError names the element and the problem."""
    tasks: dict[str, Form] = {}
    start: Form | None = None
    for el in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask", f"{{{BPMN_NS}}}startEvent"):
        node = el.find(f"{{{BPMN_NS}}}extensionElements/{{{NS}}}form")
        if node is None:
            continue
        element_id = el.get("id", "")
        form = _form(element_id, node)
        if el.tag == f"{{{BPMN_NS}}}startEvent":
            if el.getparent() is not process or any("EventDefinition" in str(c.tag) for c in el):
                raise FormError(f"{element_id}: a form belongs on the plain start event of the process")
            start = form
        else:
            tasks[element_id] = form
    return tasks, start


def _form(element_id: str, node: etree._Element) -> Form:
    fields = []
    for child in node:
        if not isinstance(child.tag, str):
            continue  # comments
        if child.tag != f"{{{NS}}}field":
            raise FormError(f"{element_id}: a form holds only <gridloop:field> elements")
        try:
            fields.append(_field(child))
        except (FormError, RuleError, ValueError) as exc:
            raise FormError(f"{element_id}: field {child.get('name')!r}: {exc}") from None
    names = [f.name for f in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise FormError(f"{element_id}: fields named twice: {', '.join(duplicates)}")
    if len(fields) > MAX_FIELDS:
        raise FormError(f"{element_id}: more than {MAX_FIELDS} fields")
    return Form(element_id=element_id, fields=tuple(fields))


def _field(node: etree._Element) -> FormField:
    a = node.attrib
    name = a.get("name", "")
    if not name.isidentifier() or name.startswith("_"):
        raise FormError("a field name must be a variable name not starting with '_'")
    try:
        ftype = FieldType(a.get("type", "string"))
    except ValueError:
        raise FormError(f"unknown type {a.get('type')!r}; use one of {', '.join(FieldType)}") from None
    options = tuple(Option(o.get("value", ""), o.get("label"), o.get("labelEn"))
                    for o in node if isinstance(o.tag, str) and o.tag == f"{{{NS}}}option")
    if ftype is FieldType.ENUM and not options:
        raise FormError("an enum needs <gridloop:option> values")
    if ftype is not FieldType.ENUM and options:
        raise FormError("options belong to enum fields")
    if ftype is FieldType.REFERENCE and not a.get("ref"):
        raise FormError("a reference names its kind: ref=\"user\", \"case\", \"grid\"...")
    if ftype is not FieldType.REFERENCE:
        unknown = sorted(set(a) - _FIELD_ATTRIBUTES - {"ref"})
        if unknown or a.get("ref"):
            raise FormError(f"unknown attributes: {', '.join(unknown or ['ref'])}")
    if a.get("pattern"):
        try:
            re.compile(a["pattern"])
        except re.error as exc:
            raise FormError(f"pattern {a['pattern']!r} is not a regular expression: {exc}") from None
    if ftype is FieldType.REFERENCE and a.get("default") is not None:
        raise FormError("a reference has no default: every value it takes is checked")
    f = FormField(
        name=name, type=ftype, required=a.get("required", "false") == "true", label=a.get("label"),
        label_en=a.get("labelEn"), options=options,
        minimum=_float(a.get("min")), maximum=_float(a.get("max")), min_length=_int(a.get("minLength")),
        max_length=_int(a.get("maxLength")), pattern=a.get("pattern"),
        required_when=parse_rule(a["requiredWhen"]) if a.get("requiredWhen") else None,
        shown_when=parse_rule(a["shownWhen"]) if a.get("shownWhen") else None,
        ref=a.get("ref"), ref_args={k: v for k, v in a.items() if k not in _FIELD_ATTRIBUTES})
    if a.get("default") is not None:
        f = _with_default(f, a["default"])
    return f


def _with_default(f: FormField, text: str) -> FormField:
    raw: Any = text
    if f.type is FieldType.BOOLEAN:
        if text not in ("true", "false"):
            raise FormError("a boolean default is true or false")
        raw = text == "true"
    elif f.type in (FieldType.INTEGER, FieldType.NUMBER):
        raw = float(text)
    return replace(f, default=convert(f, raw))


def _float(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        return float(text)  # type: ignore[arg-type]
    except ValueError:
        raise FormError(f"{text!r} is not a number") from None


def _int(text: str | None) -> int | None:
    if text in (None, ""):
        return None
    try:
        value = int(text)  # type: ignore[arg-type]
    except ValueError:
        raise FormError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise FormError("a length is at least 1")
    return value
