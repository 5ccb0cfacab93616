"""Every success status a route answers in the tests is one the OpenAPI document declares: every
app's answers are recorded through Flask's request_finished signal and checked after each test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, request, request_finished

from api.openapi import _PARAM, build_spec

Seen = dict[int, tuple[Flask, set[tuple[str, str, int]]]]


@contextmanager
def recorded_successes() -> Iterator[Seen]:
    """(method, route, status) of every 2xx any app answers inside the block, by app."""
    seen: Seen = {}

    def record(sender: Flask, response, **_extra) -> None:
        if 200 <= response.status_code < 300 and request.url_rule is not None:
            route = _PARAM.sub(r"{\1}", request.url_rule.rule)
            seen.setdefault(id(sender), (sender, set()))[1].add((request.method.lower(), route,
                                                                 response.status_code))

    request_finished.connect(record)
    try:
        yield seen
    finally:
        request_finished.disconnect(record)


def undeclared(seen: Seen) -> list[str]:
    """The recorded answers whose status the document does not list (routes it leaves out are skipped)."""
    missing = []
    for app, answers in seen.values():
        paths = build_spec(app)["paths"]
        missing += [f"{method.upper()} {path} answered {status}" for method, path, status in answers
                    if method in paths.get(path, {}) and str(status) not in paths[path][method]["responses"]]
    return sorted(set(missing))
