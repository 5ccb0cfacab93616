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
field by field, and nothing changes. engine/form_xml.py reads declarations from the model;
engine/form_schema.py serves a form to clients as JSON Schema."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidInput
from .form_rules import Rule
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
FIELD_ATTRIBUTES = {"name", "type", "required", "label", "labelEn", "default", "min", "max", "minLength",
                     "maxLength", "pattern", "requiredWhen", "shownWhen", "ref", "future"}


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
    future: bool = False  # a date-time that must lie ahead of the engine's clock (a deferral's end)
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
                 resolve: Callable[[FormField, Any, Mapping[str, Any]], Any],
                 now: datetime | None = None) -> dict[str, Any]:
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
                continue
            if f.future and now is not None and datetime.fromisoformat(values[f.name]) <= now:
                errors[f.name] = [f"must be later than now ({now.isoformat(timespec='minutes')})"]
        always = {f.name: f.default for f in self.fields  # defaults of fields without a shownWhen rule
                  if f.default is not None and f.shown_when is None and f.name not in values}
        context = {**held, **always, **values}
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
        context = {**held, **always, **values}
        for f in self.fields:
            if f.name not in values:
                shown = f.shown_when is None or f.shown_when.holds(context)
                if f.default is not None and shown:
                    values[f.name] = f.default
                elif f.name not in held:
                    values[f.name] = None
        return values

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
