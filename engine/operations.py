"""The registry of service-task operations: a name in the BPMN maps to a Python function.

Synchronous operations are pure computations run inside the instance's transaction. Asynchronous
ones (anything slow or failing: another system, a notification) run as jobs after commit; their
result completes the task in a later transaction, with retries and then an incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

Handler = Callable[[Mapping[str, Any], "OperationContext"], Any]


Emit = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class OperationContext:
    """What a handler may know about the call; deliberately no session and no workflow."""

    instance_id: str
    task_id: str
    element_id: str
    attempt: int = 1
    now: datetime | None = None  # the engine's clock at the change (sync operations); None in jobs
    # Sync operations only: `emit(queue, job, payload)` adds a job to the outbox in the change's
    # transaction, the one way a pure operation starts a side effect (it runs after commit).
    emit: Emit | None = None
    # Sync operations only: the change's connection (the instance is locked), for reading reference
    # data and writing the domain's own rows in the same transaction; and `move_scope(scope)`, which
    # moves the instance (who may see it) with the change, e.g. a case transferred to another grid.
    conn: Any = None
    move_scope: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    handler: Handler
    is_async: bool = False
    queue: str = "engine"
    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=10)
    backoff_cap: timedelta = timedelta(hours=1)

    def retry_delay(self, attempt: int) -> timedelta:
        """Exponential backoff: base * 2^(attempt-1), capped."""
        return min(self.backoff * (2 ** (attempt - 1)), self.backoff_cap)


class UnknownOperation(LookupError):
    pass


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help (the other side refused the request): the
    engine raises an incident at once instead of retrying."""


@dataclass
class OperationRegistry:
    _operations: dict[str, Operation] = field(default_factory=dict)

    def register(self, name: str, handler: Handler, *, is_async: bool = False, **options: Any) -> Operation:
        if name in self._operations:
            raise ValueError(f"operation {name!r} is already registered")
        op = Operation(name=name, handler=handler, is_async=is_async, **options)
        self._operations[name] = op
        return op

    def operation(self, name: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator form of `register`."""

        def wrap(handler: Handler) -> Handler:
            self.register(name, handler, **options)
            return handler

        return wrap

    def get(self, name: str) -> Operation:
        try:
            return self._operations[name]
        except KeyError:
            raise UnknownOperation(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._operations

    def names(self) -> list[str]:
        return sorted(self._operations)
