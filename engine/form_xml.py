"""Reading `gridloop:form` declarations from a model's XML (see engine/forms.py for their meaning).
A wrong declaration is a FormError naming the element: a deploy problem, never a 500."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from lxml import etree

from .form_rules import RuleError, parse_rule
from .forms import (
    BPMN_NS,
    FIELD_ATTRIBUTES,
    MAX_FIELDS,
    NS,
    FieldType,
    Form,
    FormError,
    FormField,
    Option,
    convert,
)


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
        unknown = sorted(set(a) - FIELD_ATTRIBUTES - {"ref"})
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
        max_length=_int(a.get("maxLength")), pattern=a.get("pattern"), future=a.get("future") == "true",
        required_when=parse_rule(a["requiredWhen"]) if a.get("requiredWhen") else None,
        shown_when=parse_rule(a["shownWhen"]) if a.get("shownWhen") else None,
        ref=a.get("ref"), ref_args={k: v for k, v in a.items() if k not in FIELD_ATTRIBUTES})
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
        return float(text)
    except ValueError:
        raise FormError(f"{text!r} is not a number") from None


def _int(text: str | None) -> int | None:
    if text in (None, ""):
        return None
    try:
        value = int(text)
    except ValueError:
        raise FormError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise FormError("a length is at least 1")
    return value
