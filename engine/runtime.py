"""The engine's collaborators in one explicit object, passed to every use case."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from .audit.keys import AuditKeys
from .clock import Clock, SystemClock
from .contracts import ModelContracts
from .db import Database
from .endings import EndListener
from .errors import NotFound
from .models import ProcessDefinition
from .operations import OperationRegistry
from .parsing import ParsedModel, parse_model
from .references import ReferenceKinds
from .sandbox.isolation import IsolatedEvaluator
from .serialization import StateSerializer
from .workflow_cache import WorkflowCache

JobHandler = Callable[["Runtime", dict[str, Any]], None]


def one_tenant(scope: str | None) -> str | None:
    """The engine alone knows no tenants: every scoped instance is of one, unscoped ones of another."""
    return None if scope is None else ""


class SpecCache:
    """Parsed specs per definition id. Definitions are immutable, so entries never go stale."""

    def __init__(self) -> None:
        self._specs: dict[int, ParsedModel] = {}
        self._lock = threading.Lock()

    def get(self, db: Database, definition_id: int, *, session: Session | Connection | None = None) -> ParsedModel:
        """The parsed model; on a miss it is read through `session` when given (on SQLite a second
        connection inside a write transaction would wait for that transaction's own lock)."""
        model = self._specs.get(definition_id)
        if model is not None:
            return model
        query = select(ProcessDefinition.bpmn_xml, ProcessDefinition.key).where(ProcessDefinition.id == definition_id)
        if session is not None:
            found = session.execute(query).first()
        else:
            with db.session() as s:
                found = s.execute(query).first()
        xml, key = found if found is not None else (None, None)  # a file may hold several processes: this key's
        if xml is None:
            raise NotFound(f"process definition {definition_id} does not exist")
        model = parse_model(xml, require_lint=False, process_id=key)
        with self._lock:
            return self._specs.setdefault(definition_id, model)

    def put(self, definition_id: int, model: ParsedModel) -> None:
        with self._lock:
            self._specs.setdefault(definition_id, model)


@dataclass
class Runtime:
    db: Database
    registry: OperationRegistry = field(default_factory=OperationRegistry)
    clock: Clock = field(default_factory=SystemClock)
    message_ttl: timedelta = timedelta(days=1)
    job_lease: timedelta = timedelta(minutes=10)  # longer than any job may run (RQ job timeout: 5 min)
    specs: SpecCache = field(default_factory=SpecCache)
    serializer: StateSerializer = field(default_factory=StateSerializer)
    # Committed workflows by instance, so the next change of one skips deserializing it (workflow_cache.py).
    workflows: WorkflowCache = field(default_factory=WorkflowCache)
    job_handlers: dict[str, JobHandler] = field(default_factory=dict)
    # Called after a commit that created outbox rows or moved a wake-up time earlier. The embedded
    # runner uses it to relay at once; with PostgreSQL, NOTIFY does the same across processes.
    on_wakeup: Callable[[], None] | None = None
    # Called inside the change that ends an instance, after its writes (see endings.py).
    end_listeners: list[EndListener] = field(default_factory=list)
    # What reference fields of forms may name (users, cases, grids...); the domain registers them.
    references: ReferenceKinds = field(default_factory=ReferenceKinds)
    # The tenant of an instance's scope, as a scope prefix every instance of that tenant has (None: the
    # unscoped instances). A signal reaches the waiting instances of its thrower's tenant only.
    tenant_of: Callable[[str | None], str | None] = one_tenant
    # Call activities (engine/calls.py): what the environment and the change ask to start, cancel and
    # report back called instances.
    calls: Any = None
    # Decision tables (engine/decisions.py): parsed versions, and what a business rule task evaluates.
    decisions: Any = None
    # What other layers rely on in the models they start (contracts.py); every new version is checked.
    contracts: ModelContracts = field(default_factory=ModelContracts)
    # The audit trail's key ring (engine/audit/keys.py); unconfigured, a random key of this process only.
    audit_keys: AuditKeys = field(default_factory=AuditKeys.generate)
    # Scripts and expressions in pre-started child processes with rlimits (GRIDLOOP_SANDBOX_ISOLATION=
    # subprocess); None: in this process, under the sandbox's budgets only.
    sandbox: IsolatedEvaluator | None = None

    def __post_init__(self) -> None:
        from . import calls, jobs, messages, signals  # the engine's own jobs; other layers add theirs with add_job

        for name, handler in {**jobs.ENGINE_JOBS, **messages.JOBS, **signals.JOBS, **calls.JOBS}.items():
            self.job_handlers.setdefault(name, handler)
        if self.calls is None:
            self.calls = calls.CallActivities()
        if self.decisions is None:
            from .decisions import Decisions  # below the runtime, like the jobs above

            self.decisions = Decisions()

    def add_job(self, name: str, handler: JobHandler) -> None:
        self.job_handlers[name] = handler

    def wake(self) -> None:
        if self.on_wakeup is not None:
            self.on_wakeup()
