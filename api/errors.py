"""One JSON error shape for every failure: {"error": {"code", "message", "fields"?, "details"?}}, where
`fields` is always {name: [messages]} (marshmallow's shape), whoever found the problem."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, current_app, jsonify
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from engine import definitions
from engine import errors as engine_errors
from engine.operations import UnknownOperation
from engine.parsing import ModelError

from .auth import AuthError
from .http import http_error_message

log = logging.getLogger(__name__)

ENGINE_STATUS = {
    engine_errors.NotFound: 404,
    engine_errors.Conflict: 409,
    engine_errors.NotAllowed: 403,
    engine_errors.InvalidInput: 422,
    engine_errors.ProcessError: 422,
}


def error_body(status: int, code: str, message: str, **extra: Any):
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v})
    return jsonify({"error": body}), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(AuthError)
    def _auth(exc: AuthError):
        resp = error_body(exc.status, exc.code, exc.message)
        if exc.status == 401:
            resp[0].headers["WWW-Authenticate"] = 'Bearer realm="gridloop"'
        return resp

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError):
        return error_body(422, "validation_failed", "the request has invalid fields", fields=exc.messages)

    @app.errorhandler(ModelError)
    def _model(exc: ModelError):
        return error_body(400, "invalid_model", "the BPMN model was refused",
                          details={"problems": [p.as_dict() for p in exc.problems]})

    @app.errorhandler(engine_errors.EngineError)
    def _engine(exc: engine_errors.EngineError):
        status = next((s for cls, s in ENGINE_STATUS.items() if isinstance(exc, cls)), 500)
        return error_body(status, exc.code, exc.message, fields=getattr(exc, "fields", None), details=exc.details)

    @app.errorhandler(engine_errors.ProcessError)
    def _process(exc: engine_errors.ProcessError):
        _count_process_error(exc)
        return _engine(exc)

    @app.errorhandler(UnknownOperation)
    def _unknown_operation(exc: UnknownOperation):
        return error_body(422, "unknown_operation", f"operation {exc} is not registered")

    @app.errorhandler(IntegrityError)
    def _integrity(exc: IntegrityError):
        log.info("integrity conflict", extra={"error": str(exc.orig)})
        return error_body(409, "conflict", "the change conflicts with existing data")

    @app.errorhandler(DataError)
    def _data(exc: DataError):
        log.info("value refused by the database", extra={"error": str(exc.orig).splitlines()[0]})
        return error_body(422, "invalid_value", "a value is out of range or not storable (too long, bad characters)")

    @app.errorhandler(OperationalError)
    def _db_down(exc: OperationalError):
        log.error("database unavailable", extra={"error": str(exc.orig)})
        return error_body(503, "unavailable", "the database is unavailable; try again")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_body(exc.code or 500, code, http_error_message(exc))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_body(500, "internal_error", "an unexpected error occurred; it has been logged")


def _count_process_error(exc: engine_errors.ProcessError) -> None:
    """Count the failure against its definition version (/metrics, the definition's processErrors);
    the failed change has rolled back, so this is a transaction of its own. Never masks the answer."""
    definition_id = exc.details.get("definitionId")
    if definition_id is None:
        return
    try:
        definitions.count_process_error(current_app.extensions["gridloop"], definition_id)
    except Exception:
        log.exception("counting a process error failed", extra={"definition_id": definition_id})
