"""OpenAPI 3 built from the routes themselves: each view's `@doc` and `@roles` metadata plus the
marshmallow schemas it names, so the document cannot drift from the code."""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing import IntegerConverter

from . import schemas

_PARAM = re.compile(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>")


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(title="GridLoop", version="1.0.0", openapi_version="3.0.3", plugins=[MarshmallowPlugin()],
                   info={"description": "BPMN engine for closed-loop environmental grid supervision"})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        view = app.view_functions.get(rule.endpoint)
        meta = getattr(view, "openapi", None)
        if meta is None:
            continue
        path = _PARAM.sub(r"{\1}", rule.rule)
        operations = {}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operations[method.lower()] = _operation(meta, getattr(view, "allowed_roles", ()), rule)
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def _path_schema(converter) -> dict[str, Any]:
    """An `<int:...>` id is an integer within its converter's bounds (a row id: 1..2^63-1)."""
    if isinstance(converter, IntegerConverter):
        return {"type": "integer", "minimum": converter.min, "maximum": converter.max}
    return {"type": "string"}


def _operation(meta, allowed_roles: tuple[str, ...], rule) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": meta.summary, "x-roles": list(allowed_roles),
                          "parameters": [{"name": n, "in": "path", "required": True,
                                          "schema": _path_schema(rule._converters.get(n))}
                                         for n in _PARAM.findall(rule.rule)]}
    if meta.query is not None:
        op["parameters"].append({"in": "query", "schema": meta.query})
    if meta.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": meta.body}}}
    elif meta.content_type == "application/xml" and "POST" in (rule.methods or ()):
        op["requestBody"] = {"required": True, "content": {"application/xml": {"schema": {"type": "string"}}}}
    ok: dict[str, Any] = {"description": "OK"}
    if meta.response is not None:
        schema = {"type": "array", "items": meta.response} if meta.many else meta.response
        ok["content"] = {"application/json": {"schema": schema}}
    op["responses"] = {str(meta.status): ok}
    for status, when in sorted(meta.also.items()):
        op["responses"][str(status)] = {**ok, "description": when}
    op["responses"]["default"] = {"description": "Error", "content": {"application/json": {"schema": "Error"}}}
    if allowed_roles:
        op["security"] = [{"bearer": []}, {"apiKey": []}]
        op["responses"]["401"] = {"description": "Not authenticated"}
        op["responses"]["403"] = {"description": "Role not allowed"}
    return op
