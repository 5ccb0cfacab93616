"""One transaction per change (DESIGN.md §4): lock the instance row, load, act, run the engine,
save the state, refresh the read models, append audit events and outbox rows, commit. Any error
rolls all of it back; side effects only ever leave through the outbox after commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import Connection, Select, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import audit, outbox, readmodels
from .db import Prepared, insert_all
from .endings import InstanceEnded, workflow_data
from .environment import attach
from .errors import EngineError, NotFound, ProcessError
from .models import ProcessDefinition, ProcessInstance, from_row
from .operations import Operation
from .parsing import ParsedModel
from .process_errors import describe, element_name, element_of
from .runtime import Runtime
from .spiff_event_subprocess import end_idle_event_subprocesses
from .timers import next_wakeup

log = logging.getLogger(__name__)
WAKEUP_CHANNEL = outbox.WAKEUP_CHANNEL
MAX_STEPS_PER_CHANGE = 800  # generous: a real change runs tens of elements
# Every loop iteration hangs new tasks under the previous ones, and SpiffWorkflow walks ancestors
# recursively: near Python's recursion limit (~1,000 levels) it silently ends the process instead
# of looping on. Past this depth a change is refused, loudly, while the instance still stands.
MAX_TREE_DEPTH = 600


PI = cast(Table, ProcessInstance.__table__)

# The hot path runs Core statements built once (see db.Prepared); `instance` is a plain, session-less
# ProcessInstance written back with them.
LOCK_BY_ID = Prepared(select(*PI.c).where(PI.c.id == bindparam("lock_id")).with_for_update())
_WRITTEN = ("status", "state", "next_wakeup_at", "updated_at", "ended_at", "revision", "audit_head", "scope")
_UPDATE = Prepared(update(PI).where(PI.c.id == bindparam("row_id"))
                   .values({name: bindparam(name) for name in _WRITTEN}))
_INSERT = Prepared(insert_all(PI))


class DefinitionRef(Protocol):
    """What `new_instance` reads of a definition: a ProcessDefinition, or any row of its id and key."""

    @property
    def id(self) -> int: ...

    @property
    def key(self) -> str: ...


@dataclass(frozen=True)
class Lock:
    """A statement that locks one instance row (`SELECT <process_instance columns> ... FOR UPDATE`)
    and its parameters. It may find the instance another way (through a task, a subscription)."""

    stmt: Prepared
    params: dict[str, Any]


def lock_by_id(instance_id: str) -> Lock:
    return Lock(LOCK_BY_ID, {"lock_id": instance_id})


@dataclass
class Change:
    rt: Runtime
    conn: Connection  # inside the change's transaction
    instance: ProcessInstance
    workflow: BpmnWorkflow
    actor: str
    now: datetime
    is_new: bool = False
    snapshot: readmodels.Snapshot = field(default_factory=readmodels.Snapshot)
    pending: readmodels.PendingWrites = field(default_factory=readmodels.PendingWrites)
    drafts: list[audit.AuditDraft] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    outbox_rows: int = 0
    woke_earlier: bool = False
    deferred: list[tuple[Prepared, dict[str, Any]]] = field(default_factory=list)
    _session: Session | None = None
    loaded_status: str = ""  # the instance's status when the change began
    model: ParsedModel | None = None  # the instance's parsed definition (its specs and forms)
    escaped: list[dict[str, Any]] = field(default_factory=list)  # errors/escalations for the caller (calls.py)
    nested_wake: bool = False  # a change of another instance made in this one's transaction wants a wake-up
    settled: bool = False  # set by an action whose last step was `run_engine`: `finish` need not run it again

    def __post_init__(self) -> None:
        self.loaded_status = self.instance.status

    @property
    def session(self) -> Session:
        """An ORM session in the change's transaction, for code that wants one (made on first use;
        what it holds is flushed with the change's writes)."""
        if self._session is None:
            self._session = Session(bind=self.conn, autoflush=False, expire_on_commit=False)
        return self._session

    def move_scope(self, scope: str) -> None:
        """Move the instance to another scope (who may see it), audited with the change."""
        if scope != self.instance.scope:
            self.record("instance.scope_moved", before=self.instance.scope, after=scope)
            self.instance.scope = scope

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def write_later(self, stmt: Prepared, params: dict[str, Any]) -> None:
        """A write whose result nobody reads: it goes with the change's other writes, in one batch
        at the end of the change (same transaction; errors surface there and roll everything back)."""
        self.deferred.append((stmt, params))

    def record(self, action: str, *, task_id: str | None = None, element_id: str | None = None,
               **details: Any) -> None:
        self.drafts.append(audit.AuditDraft(action=action, actor=self.actor, at=self.now,
                                            instance_id=self.instance.id, task_id=task_id,
                                            element_id=element_id, details=details))

    def schedule_operation(self, my_task, op: Operation, params: dict[str, Any]) -> None:
        """Called from a service task: the job is written to the outbox and runs after commit."""
        element = my_task.task_spec.bpmn_id or my_task.task_spec.name
        self.add_job(op.queue, "service_call", {
            "instance_id": self.instance.id, "task_id": str(my_task.id), "element_id": element,
            "operation": op.name, "params": params, "attempt": 1,
        })

    def add_job(self, queue: str, job: str, payload: dict[str, Any]) -> None:
        self.write_later(outbox.INSERT, outbox.row(self.now, queue=queue, job=job, payload=payload))
        self.outbox_rows += 1

    def run_engine(self) -> None:
        """Run everything that can run now. SpiffWorkflow refreshes timers only at the end of
        `do_engine_steps`, so a timer that fell due there needs one more pass."""
        wf = self.workflow
        with self._process_errors():
            while True:
                wf.refresh_timers()
                wf.do_engine_steps(did_complete_task=self._did_complete)
                if not readmodels.any_ready_automatic(wf) and not end_idle_event_subprocesses(wf):
                    return

    def run_task(self, task) -> None:
        """Complete one READY task (a user task the action completes), failing like the engine does."""
        with self._process_errors():
            task.run()

    @contextmanager
    def _process_errors(self) -> Iterator[None]:
        """Scripts, handlers and the library raise anything: it becomes a ProcessError in words (and
        the change rolls back); the engine's other errors (conflicts, bad input) pass as they are."""
        try:
            yield
        except EngineError as exc:
            if not isinstance(exc, ProcessError):
                raise
            raise self.failed(exc) from exc
        except SQLAlchemyError:
            raise  # the database's trouble, not the model's: answered as such (503, 409), not counted
        except Exception as exc:
            raise self.failed(exc) from exc

    def failed(self, exc: Exception) -> ProcessError:
        """What the user reads: the step by its name and what is wrong in plain words (no Python).
        The whole exception goes to the log at ERROR for an administrator."""
        element = (exc.details.get("element") if isinstance(exc, ProcessError) else None) or element_of(exc)
        name = element_name(self.workflow, element, exc)
        row = self.instance
        version = self._definition_version()
        log.error("process error: %s", describe(exc), exc_info=exc, extra={
            "instance_id": row.id, "new_instance": self.is_new, "element": element, "element_name": name,
            "process_key": row.process_key, "definition_id": row.definition_id, "definition_version": version,
            "actor": self.actor})
        step = f'step "{name}" ({element})' if name and name != element else f'step "{element}"'
        return ProcessError(f"{step if element else 'the process'} failed: {describe(exc)}; nothing was saved, "
                            "tell an administrator", element=element, elementName=name,
                            definitionId=row.definition_id, key=row.process_key, version=version)

    def _definition_version(self) -> int | None:
        """For the log only: best effort (a statement that failed has aborted a PostgreSQL transaction)."""
        try:
            return self.conn.scalar(select(ProcessDefinition.version)
                                    .where(ProcessDefinition.id == self.instance.definition_id))
        except Exception:
            return None

    def _did_complete(self, task) -> None:
        if task.task_spec.bpmn_id:  # BPMN elements only, not the library's internal join/split specs
            self.ran.append(task.task_spec.bpmn_id)
            if task.depth > MAX_TREE_DEPTH:
                raise ProcessError(f"the instance has looped so often that its history is {task.depth} steps deep; "
                                   f"the engine stops at {MAX_TREE_DEPTH} rather than let the process end by itself",
                                   element=task.task_spec.bpmn_id)
            if len(self.ran) > MAX_STEPS_PER_CHANGE:  # a loop in the model: stop before it holds the lock forever
                raise ProcessError(f"the process ran more than {MAX_STEPS_PER_CHANGE} steps in one change "
                                   "(an endless loop in the model?)", element=task.task_spec.bpmn_id)


class Abandon(Exception):
    """Raised inside `change_instance` to leave without writing anything (nothing to do after all)."""


def instance_lock(instance_id: str) -> Select:
    """The ORM form of the lock, for writers that keep the instance in their session (audit appends)."""
    return select(ProcessInstance).where(ProcessInstance.id == instance_id).with_for_update()


def locked_instance(session, instance_id: str) -> ProcessInstance:
    """The instance row under its lock, for changes that touch the row but not the workflow
    (audit annotations, incidents); NotFound if there is none."""
    row = session.scalar(instance_lock(instance_id))
    if row is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    return row


@contextmanager
def change_instance(rt: Runtime, instance_id: str, actor: str, *, lock: Lock | None = None,
                    not_found: str | None = None) -> Iterator[Change]:
    """Lock, load and yield the instance; on normal exit run the engine, save and commit. `lock`
    may find the instance another way in the same single statement (through a task, a subscription)."""
    with rt.db.begin() as conn, change_in(rt, conn, instance_id, actor, lock=lock, not_found=not_found) as change:
        yield change
    keep_workflow(rt, change)
    after_commit(rt, change)


@contextmanager
def change_in(rt: Runtime, conn: Connection, instance_id: str, actor: str, *, lock: Lock | None = None,
              not_found: str | None = None, locked_row: dict[str, Any] | None = None) -> Iterator[Change]:
    """`change_instance` inside the caller's transaction (`conn`): a change of one instance that
    changes another with it (a parent cancelling its child). The caller commits, then calls
    `after_commit` with its own change (see `Change.nested_wake`). `locked_row`: the instance's
    row (every column), which the caller already locked in this transaction."""
    if locked_row is None:
        lock = lock or lock_by_id(instance_id)
        found = rt.db.rows(conn, lock.stmt, lock.params)
        if not found:
            raise NotFound(not_found or f"process instance {instance_id} does not exist")
        locked_row = found[0]
    row = from_row(ProcessInstance, locked_row)
    model = rt.specs.get(rt.db, row.definition_id, session=conn)
    workflow = rt.workflows.take(row.id, row.revision, row.definition_id)  # checked under the lock just taken
    if workflow is None:
        workflow = rt.serializer.loads(row.state, model.spec, model.subprocess_specs)
    change = Change(rt=rt, conn=conn, instance=row, workflow=workflow, actor=actor, now=rt.clock.now(),
                    model=model)
    try:
        attach(workflow, change)
        change.snapshot = readmodels.snapshot(workflow)
        yield change
        finish(change)
    finally:
        change.close()


@contextmanager
def new_instance(rt: Runtime, definition: DefinitionRef, conn: Connection, actor: str,
                 business_key: str | None, variables: dict[str, Any], *, scope: str | None = None
                 ) -> Iterator[Change]:
    """Create an instance inside the caller's transaction (`conn`); yields before the first engine
    run. `definition` needs only `id` and `key` (a row of those columns will do)."""
    model = rt.specs.get(rt.db, definition.id, session=conn)
    workflow = BpmnWorkflow(model.spec, model.subprocess_specs)
    workflow.task_tree.data.update(variables)
    now = rt.clock.now()
    row = ProcessInstance(id=str(uuid.uuid4()), definition_id=definition.id, process_key=definition.key,
                          business_key=business_key, status="running", state="", started_by=actor,
                          started_at=now, updated_at=now, revision=0, scope=scope, suspended=False)
    change = Change(rt=rt, conn=conn, instance=row, workflow=workflow, actor=actor, now=now, is_new=True,
                    model=model)
    try:
        attach(workflow, change)
        yield change
        finish(change)
    finally:
        change.close()


def finish(change: Change) -> None:
    """Everything after the action, in the same transaction: run, derive, then write once."""
    wf, row = change.workflow, change.instance
    before_status, before_wakeup = row.status, row.next_wakeup_at
    if not change.settled:
        change.run_engine()
    while readmodels.refresh(change):  # a buffered message was waiting for a subscription that just appeared
        change.run_engine()
    if row.status == "running" and wf.is_completed():
        row.status, row.ended_at = "completed", change.now
        change.record("instance.completed")
    row.state = change.rt.serializer.dumps(wf)
    row.next_wakeup_at = next_wakeup(wf) if row.status == "running" else None
    row.updated_at = change.now
    row.revision = (row.revision or 0) + 1
    if row.parent_instance_id and change.rt.calls is not None:  # a called instance reports to its caller
        change.rt.calls.report(change)
    if change.drafts:
        first = change.drafts[0].details
        if change.ran:
            first.setdefault("ran", change.ran)
        if before_status != row.status:
            first.setdefault("status", {"before": before_status, "after": row.status})
    rows, row.audit_head = audit.chain_rows(change.rt.audit_keys, row.id, row.audit_head or audit.GENESIS,
                                            change.drafts)
    change.woke_earlier = row.next_wakeup_at is not None and (
        before_wakeup is None or row.next_wakeup_at < before_wakeup)
    if change._session is not None:
        change._session.flush()  # anything an action added through the ORM goes first
    try:
        _write(change, rows)
    except IntegrityError as exc:
        if not _read_model_conflict(exc):
            raise
        elements = sorted(filter(None, change.pending.subscribing_elements.values()))
        raise ProcessError(_integrity_message(exc), element=elements[0] if elements else None) from exc
    if change.loaded_status == "running" and row.status != "running":
        _tell_end(change)


def _tell_end(change: Change) -> None:
    row = change.instance
    ended = InstanceEnded(instance_id=row.id, process_key=row.process_key, business_key=row.business_key,
                          status=row.status, ended_at=row.ended_at or change.now, actor=change.actor,
                          variables=workflow_data(change.workflow))
    for listener in change.rt.end_listeners:
        listener(change.conn, ended)


def _write(change: Change, rows: list[dict[str, Any]]) -> None:
    """The writes of a change: the instance row, the deferred writes, the read models, the audit
    events and the wake-up signal; all but a new instance's row in one round trip (PostgreSQL)."""
    conn, db, row = change.conn, change.rt.db, change.instance
    if change.is_new:  # on its own: a clashing business key is an IntegrityError, which start() expects
        db.run(conn, _INSERT, {c.key: getattr(row, c.key) for c in PI.c})
        audit.anchor_instances(change.rt, conn, [row.id], change.actor, change.now)
    with db.pipeline(conn):
        for stmt, params in change.deferred:
            db.run(conn, stmt, params)
        if not change.is_new:
            db.run(conn, _UPDATE, {"row_id": row.id, **{name: getattr(row, name) for name in _WRITTEN}})
        readmodels.write(change)
        if rows:
            db.run(conn, audit.INSERT, rows)
        if change.outbox_rows or change.woke_earlier:
            db.notify(conn, WAKEUP_CHANNEL)


def keep_workflow(rt: Runtime, change: Change) -> None:
    """After the commit of `change`: its workflow is the instance's state at the revision it wrote."""
    row = change.instance
    if row.status == "running":  # an ended instance does not change again
        rt.workflows.put(row.id, row.revision, row.definition_id, change.workflow)


def after_commit(rt: Runtime, change: Change) -> None:
    if change.outbox_rows or change.woke_earlier or change.nested_wake:
        rt.wake()


READ_MODEL_TABLES = ("human_task", "message_subscription")


def _read_model_conflict(exc: IntegrityError) -> bool:
    """Whether a read-model row clashed (a process error: e.g. two instances waiting for the same
    message and correlation value), as opposed to the instance row or the other writes."""
    table = getattr(getattr(exc.orig, "diag", None), "table_name", None)  # psycopg
    if table is not None:
        return table in READ_MODEL_TABLES
    text = str(exc.orig)  # sqlite3: "UNIQUE constraint failed: message_subscription.message_name, ..."
    return any(f"{name}." in text for name in READ_MODEL_TABLES)


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "uq_subscription" in text or "message_subscription" in text:
        return "another instance already waits for this message with the same correlation value"
    return f"the change conflicts with existing data: {text.splitlines()[0]}"
