"""Small helpers every view uses: parse a JSON body or query string through a schema, answer JSON,
and record what the endpoint takes and returns for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, jsonify, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from engine.runtime import Runtime


def runtime() -> Runtime:
    return current_app.extensions["gridloop"]


def json_body(schema: Schema) -> dict[str, Any]:
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("the body is not valid JSON")
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return schema.load(data)


def optional_json_body(schema: Schema) -> dict[str, Any]:
    if not request.get_data(cache=True):
        return schema.load({})
    return json_body(schema)


def query_args(schema: Schema) -> dict[str, Any]:
    return schema.load(request.args.to_dict())


def answer(schema: Schema, obj: Any, status: int = 200, **headers: str):
    resp = jsonify(schema.dump(obj))
    resp.status_code = status
    resp.headers.update(headers)
    return resp


def page(schema: Schema, rows: list, total: int, offset: int, limit: int):
    return jsonify({"items": schema.dump(rows, many=True), "total": total, "offset": offset, "limit": limit})


@dataclass(frozen=True)
class Doc:
    summary: str
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    status: int = 200
    many: bool = False
    content_type: str = "application/json"


def doc(summary: str, **kwargs: Any) -> Callable:
    def decorate(view: Callable) -> Callable:
        view.openapi = Doc(summary=summary, **kwargs)  # type: ignore[attr-defined]
        return view

    return decorate
