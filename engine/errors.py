"""Errors the engine raises; the API maps each to an HTTP status."""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    code = "engine_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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
    or a mapping of name to its messages; either way it is kept as {name: [messages]}."""

    code = "invalid_input"

    def __init__(self, message: str, *, fields: list[str] | dict[str, list[str]] | None = None,
                 **details: Any) -> None:
        super().__init__(message, **details)
        if isinstance(fields, dict):
            self.fields = {name: list(msgs) for name, msgs in fields.items()}
        else:
            self.fields = {name: [message] for name in fields or ()}


class ProcessError(EngineError):
    """The process model failed while running (a script raised, a timer value was bad...).
    Everything the change did is rolled back."""

    code = "process_error"
