"""Every success status a route answers in the tests is one the OpenAPI document declares."""

from __future__ import annotations

from flask import Flask, request

from api.openapi import _PARAM, build_spec


def record_successes(app: Flask) -> set[tuple[str, str, int]]:
    """(method, route, status) of every 2xx the app answers from now on."""
    seen: set[tuple[str, str, int]] = set()

    @app.after_request
    def _record(response):
        if 200 <= response.status_code < 300 and request.url_rule is not None:
            seen.add((request.method.lower(), _PARAM.sub(r"{\1}", request.url_rule.rule), response.status_code))
        return response

    return seen


def undeclared(app: Flask, seen: set[tuple[str, str, int]]) -> list[str]:
    """The recorded answers whose status the document does not list (routes it leaves out are skipped)."""
    if not seen:
        return []
    paths = build_spec(app)["paths"]
    return sorted(f"{method.upper()} {path} answered {status}" for method, path, status in seen
                  if method in paths.get(path, {}) and str(status) not in paths[path][method]["responses"])
