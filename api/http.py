"""Small helpers every view uses: parse a JSON body or query string through a schema, answer JSON,
and record what the endpoint takes and returns for the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from flask import current_app, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.routing import IntegerConverter

from engine.runtime import Runtime
from workflows.items import Items


def runtime() -> Runtime:
    return current_app.extensions["gridloop"]


class RowIdConverter(IntegerConverter):
    """`<int:...>` path ids are row ids: 1..2^63-1 (a BIGINT). Anything else matches no route (404)
    instead of reaching the database (SQLite cannot bind an integer above 2^63-1: a 500)."""

    def __init__(self, map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


MAX_DEPTH = 32  # variables are forms and payloads, not trees: deeper is an attack or a bug
MAX_NODES = 50_000
MAX_STRING = 100_000


def _parsed_body() -> Any:
    """The request body as JSON (any value), refused with 415/400 when it is not JSON."""
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    try:
        return json.loads(request.get_data(cache=True), parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def json_body(schema: Schema) -> Any:
    """The body loaded by `schema`: a dict of its fields, or what its post_load makes of them."""
    data = _parsed_body()
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    check_json(data)
    return schema.load(data)


def json_list(max_items: int) -> list[Any]:
    """The body as a JSON array of at most `max_items` items, each bounded like a JSON body (the
    whole array may hold more values than one body may: it is many bodies in one request)."""
    data = _parsed_body()
    if not isinstance(data, list):
        raise BadRequest("the body must be a JSON array")
    if len(data) > max_items:
        raise ValidationError({"_schema": [f"at most {max_items} items in one request (got {len(data)})"]})
    for i, item in enumerate(data):
        try:
            check_json(item)
        except BadRequest as exc:
            raise BadRequest(f"item {i}: {exc.description}") from None
    return data


def json_items(max_items: int, schema: Schema) -> Items:
    """The body as an array (json_list), each item loaded by `schema` or its field errors kept by
    index: the use case adds its own problems and refuses them all in one answer."""
    refused: dict[int, dict[str, Any]] = {}
    loaded: list[tuple[int, Any]] = []
    data = json_list(max_items)
    for i, item in enumerate(data):
        try:
            loaded.append((i, schema.load(item)))
        except ValidationError as exc:
            refused[i] = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return Items(loaded, refused, len(data))


FORM_OVERHEAD = 64 * 1024  # multipart boundaries, part headers and the small fields around a photo


def photo_upload(view: Callable) -> Callable:
    """The route takes a photo: its body may be as large as GRIDLOOP_MAX_PHOTO_BYTES plus the form
    around it, even when that is above GRIDLOOP_MAX_REQUEST_BYTES (which would refuse it first)."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        request.max_content_length = photo_request_limit()
        return view(*args, **kwargs)

    return limited


def photo_request_limit() -> int:
    settings = current_app.config["GRIDLOOP_SETTINGS"]
    return max(current_app.config.get("MAX_CONTENT_LENGTH") or 0, settings.max_photo_bytes + FORM_OVERHEAD)


def byte_size(n: int) -> str:
    """`n` bytes as people read it: '8388608 bytes (8 MB)'."""
    return f"{n} bytes ({n / 2**20:.3g} MB)"


def http_error_message(exc: HTTPException) -> str:
    """What an HTTP error says; a 413 says the limit this route applies."""
    if isinstance(exc, RequestEntityTooLarge) and request and request.max_content_length:
        return f"the request body is larger than the {byte_size(request.max_content_length)} allowed here"
    return exc.description or exc.name


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def check_json(value: Any) -> None:
    """Bound what a client may store: depth, size, no NUL characters (PostgreSQL refuses them)."""
    nodes = 0
    stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
    while stack:
        item, depth, where = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise BadRequest(f"the JSON is nested deeper than {MAX_DEPTH} levels at {where}")
        if nodes > MAX_NODES:
            raise BadRequest(f"the JSON has more than {MAX_NODES} values")
        if isinstance(item, str):
            if "\x00" in item:
                raise BadRequest(f"NUL characters are not allowed ({where})")
            if len(item) > MAX_STRING:
                raise BadRequest(f"a string is longer than {MAX_STRING} characters ({where})")
        elif isinstance(item, dict):
            for k, v in item.items():
                if "\x00" in k:
                    raise BadRequest(f"NUL characters are not allowed in keys ({where})")
                stack.append((v, depth + 1, f"{where}.{k[:40]}"))
        elif isinstance(item, list):
            stack.extend((v, depth + 1, f"{where}[{i}]") for i, v in enumerate(item))


def optional_json_body(schema: Schema) -> Any:
    if not request.get_data(cache=True):
        return schema.load({})
    return json_body(schema)


def query_args(schema: Schema) -> dict[str, Any]:
    return schema.load(request.args.to_dict())


def dumped(schema: Schema, obj: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`obj` as `schema` dumps it; `extra`: fields the object does not have (worked out by the view),
    dumped by the same schema, so that nothing is set on a database row for the sake of its answer."""
    return {**schema.dump(obj), **schema.dump(extra)} if extra else schema.dump(obj)


def answer(schema: Schema, obj: Any, status: int = 200, *, extra: dict[str, Any] | None = None, **headers: str):
    resp = jsonify(dumped(schema, obj, extra))
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
    also: Mapping[int, str] = field(default_factory=dict)  # other success statuses: {status: when}

    @property
    def statuses(self) -> set[int]:
        """Every success status the endpoint answers."""
        return {self.status, *self.also}


def doc(summary: str, **kwargs: Any) -> Callable:
    def decorate(view: Callable) -> Callable:
        view.openapi = Doc(summary=summary, **kwargs)  # type: ignore[attr-defined]
        return view

    return decorate
