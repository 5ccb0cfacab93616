"""Errors the engine raises; the API maps each to an HTTP status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EngineError(Exception):
    """`fields` names the values at fault, as InvalidInput explains; any error may name them (a 409
    naming the items of a batch that conflict)."""

    code = "engine_error"

    def __init__(self, message: str, *, fields: list[str] | Mapping[str, Any] | None = None,
                 **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.fields = _field_messages(message, fields)


class NotFound(EngineError):
    code = "not_found"


class Conflict(EngineError):
    """The resource is not in a state that allows the action (already completed, claimed, ...)."""

    code = "conflict"


class NotAllowed(EngineError):
    """The actor may not do this to this resource (not the assignee, ...)."""

    code = "forbidden"


class InvalidInput(EngineError):
    """A value the caller sent is wrong. `fields` names them: a list of names (each gets the message)
    or a mapping of name to its messages; either way it is kept as {name: [messages]}, nested like
    marshmallow's for the items of a list ({"3": {"mn": [...]}})."""

    code = "invalid_input"


class ProcessError(EngineError):
    """The process model failed while running (a script raised, a timer value was bad...).
    Everything the change did is rolled back."""

    code = "process_error"


def _field_messages(message: str, fields: list[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    if not isinstance(fields, Mapping):
        return {name: [message] for name in fields or ()}
    return {str(name): _field_messages(message, msgs) if isinstance(msgs, Mapping) else list(msgs)
            for name, msgs in fields.items()}
