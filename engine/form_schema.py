"""A form as JSON Schema 2020-12 for clients, with UI hints under `x-` keys (labels in zh-CN and en,
widgets, references, the rules as written), so a console or an app renders it without reading BPMN."""

from __future__ import annotations

from typing import Any

from .forms import DEFAULT_MAX_LENGTH, FieldType, Form, FormField


def json_schema(form: Form) -> dict[str, Any]:
    """JSON Schema 2020-12 of the values, with UI hints (labels, widget, rules) under `x-` keys."""
    properties = {f.name: _property_schema(f) for f in form.fields}
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
        "properties": properties, "additionalProperties": False,
        "required": [f.name for f in form.fields if f.required and f.shown_when is None],
    }
    conditions: list[dict[str, Any]] = []
    for f in form.fields:
        for kind, rule in f.rules():
            condition = rule.json_schema() if rule.names <= form.names else None
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
    schema["x-order"] = [f.name for f in form.fields]
    return schema


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
        if f.future:
            s["x-future"] = True
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
