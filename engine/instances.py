"""Process instances: start, cancel, read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import definitions
from .calls import refuse_direct_cancel
from .change import Change, after_commit, change_instance, keep_workflow, new_instance
from .db import Prepared, given, page
from .endings import workflow_data
from .errors import Conflict, InvalidInput, NotFound
from .forms import Form
from .models import AuditEvent, HumanTask, MessageSubscription, ProcessDefinition, ProcessInstance, from_row
from .runtime import Runtime
from .tasks import check_variables
from .visibility import Viewer, instance_filter

PD = cast(Table, ProcessDefinition.__table__)
PI = cast(Table, ProcessInstance.__table__)
HT = cast(Table, HumanTask.__table__)
# What starting needs of a definition (not its BPMN text: the parsed spec is cached per version).
_DEFINITION_BY_ID = Prepared(select(PD.c.id, PD.c.key, PD.c.version, PD.c.suspended)
                             .where(PD.c.id == bindparam("definition_id")))
_LATEST_DEFINITION = Prepared(select(PD.c.id, PD.c.key, PD.c.version, PD.c.suspended)
                              .where(PD.c.key == bindparam("key"), PD.c.is_latest))
_INSTANCE_BY_ID = Prepared(select(*PI.c).where(PI.c.id == bindparam("instance_id")))
_OPEN_TASKS = Prepared(select(*HT.c).where(HT.c.instance_id == bindparam("instance_id"), HT.c.status == "open"))


@dataclass
class Started:
    instance: ProcessInstance
    created: bool


def start(rt: Runtime, *, actor: str, key: str | None = None, definition_id: int | None = None,
          business_key: str | None = None, variables: dict[str, Any] | None = None,
          scope: str | None = None, viewer: Viewer | None = None) -> Started:
    """Start the latest version of `key` (or exactly `definition_id`). A repeat start with the same
    business key returns the existing instance instead of a second one (the unique index decides).
    A process with a start form takes exactly its fields (references as `viewer` may name them)."""
    if (key is None) == (definition_id is None):
        raise InvalidInput("give exactly one of key or definition id")
    try:
        with rt.db.begin() as conn:
            ch = start_in(rt, conn, actor=actor, key=key, definition_id=definition_id, business_key=business_key,
                          variables=variables, scope=scope, viewer=viewer)
    except IntegrityError:
        existing = _by_business_key(rt, key or _key_of(rt, definition_id), business_key) if business_key else None
        if existing is None:
            raise
        return Started(existing, created=False)
    keep_workflow(rt, ch)
    after_commit(rt, ch)
    return Started(ch.instance, created=True)


def start_in(rt: Runtime, conn, *, actor: str, key: str | None = None, definition_id: int | None = None,
             business_key: str | None = None, variables: dict[str, Any] | None = None,
             scope: str | None = None, viewer: Viewer | None = None) -> Change:
    """Start an instance inside the caller's transaction (a use case that writes more with it); the
    caller commits, then calls `change.after_commit(rt, change)`. A clashing business key raises
    IntegrityError."""
    variables = check_variables(dict(variables or {}))
    definition = _definition(rt, conn, key, definition_id)
    start_form = rt.specs.get(rt.db, definition.id, session=conn).start_form
    if start_form is not None:
        variables = start_form.validate(variables, {}, resolve=rt.references.resolve(conn, viewer),
                                        now=rt.clock.now())
    with new_instance(rt, definition, conn, actor, business_key, variables, scope=scope) as ch:
        ch.record("instance.started", definition_id=definition.id, version=definition.version,
                  business_key=business_key, variables=variables)
    return ch


def _key_of(rt: Runtime, definition_id: int | None) -> str:
    with rt.db.read() as conn:
        return rt.db.rows(conn, _DEFINITION_BY_ID, {"definition_id": definition_id})[0]["key"]


@dataclass(frozen=True)
class _Definition:
    id: int
    key: str
    version: int


def _definition(rt: Runtime, conn, key: str | None, definition_id: int | None) -> _Definition:
    """The id, key and version of the definition to start: exactly `definition_id`, or the version
    an administrator made the latest of `key`. A suspended version takes no new cases (Conflict)."""
    if definition_id is not None:
        found = rt.db.rows(conn, _DEFINITION_BY_ID, {"definition_id": definition_id})
        if not found:
            raise NotFound(f"process definition {definition_id} does not exist")
    else:
        found = rt.db.rows(conn, _LATEST_DEFINITION, {"key": key})
        if not found:
            raise NotFound(f"no process definition with key '{key}'")
    row = found[0]
    if row["suspended"]:
        raise Conflict(f"version {row['version']} of '{row['key']}' is suspended: it takes no new cases (those "
                       "running go on); an administrator can activate it or make another version the latest",
                       definitionId=row["id"], key=row["key"], version=row["version"])
    return _Definition(id=row["id"], key=row["key"], version=row["version"])


def _by_business_key(rt: Runtime, key: str, business_key: str) -> ProcessInstance | None:
    with rt.db.session() as s:
        return s.scalar(select(ProcessInstance).where(ProcessInstance.process_key == key,
                                                      ProcessInstance.business_key == business_key))


def annotate(rt: Runtime, instance_id: str, actor: str, action: str, **details: Any) -> None:
    """Put a domain event (an urge, a note) on the instance's audit trail without changing its state.
    The instance lock keeps its chain linear."""
    from . import audit
    from .change import locked_instance

    with rt.db.transaction() as s:
        row = locked_instance(s, instance_id)
        audit.append_to_instance(rt, s, row, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(),
                                                           instance_id=instance_id, details=details)])


def cancel(rt: Runtime, instance_id: str, actor: str, reason: str | None = None) -> ProcessInstance:
    with change_instance(rt, instance_id, actor) as ch:
        if ch.instance.status != "running":
            raise Conflict(f"instance is {ch.instance.status}, not running")
        refuse_direct_cancel(ch)
        ch.workflow.cancel()  # a waiting call activity cancels its child in this change (calls.py)
        ch.instance.status, ch.instance.ended_at = "cancelled", ch.now
        ch.record("instance.cancelled", reason=reason)
    return ch.instance


def get(rt: Runtime, instance_id: str) -> ProcessInstance:
    with rt.db.read() as conn:
        found = rt.db.rows(conn, _INSTANCE_BY_ID, {"instance_id": instance_id})
    if not found:
        raise NotFound(f"process instance {instance_id} does not exist")
    return from_row(ProcessInstance, found[0])


def variables(rt: Runtime, instance_id: str) -> dict[str, Any]:
    """The instance's variables (see `endings.workflow_data`)."""
    row = get(rt, instance_id)
    model = rt.specs.get(rt.db, row.definition_id)
    return workflow_data(rt.serializer.loads(row.state, model.spec, model.subprocess_specs))


@dataclass
class InstanceQuery:
    key: str | None = None
    status: str | None = None
    business_key: str | None = None
    definition_id: int | None = None
    version: int | None = None  # of `key`
    suspended: bool | None = None
    started_after: datetime | None = None
    started_before: datetime | None = None
    offset: int = 0
    limit: int = 50
    viewer: Viewer | None = None  # only what this viewer may see (engine.visibility); None: everything


def query(rt: Runtime, q: InstanceQuery) -> tuple[list[ProcessInstance], int]:
    pi = ProcessInstance
    stmt = select(pi).where(*given(
        pi.process_key == q.key if q.key else None,
        pi.status == q.status if q.status else None,
        pi.business_key == q.business_key if q.business_key else None,
        pi.definition_id == q.definition_id if q.definition_id is not None else None,
        pi.definition_id.in_(select(PD.c.id).where(PD.c.key == q.key, PD.c.version == q.version))
        if q.version is not None else None,
        pi.suspended.is_(q.suspended) if q.suspended is not None else None,
        pi.started_at >= q.started_after if q.started_after else None,
        pi.started_at < q.started_before if q.started_before else None,
        instance_filter(q.viewer) if q.viewer is not None else None,
    ))
    return page(rt.db, stmt, [pi.started_at.desc(), pi.id], q.offset, q.limit)


def history(rt: Runtime, instance_id: str) -> list[AuditEvent]:
    get(rt, instance_id)
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                              .order_by(AuditEvent.id)))


def forms(rt: Runtime, instance_id: str) -> Mapping[str, Form]:
    """The typed forms of the instance's version, by element id (what its tasks were completed with)."""
    with rt.db.read() as conn:
        definition_id = conn.execute(select(PI.c.definition_id).where(PI.c.id == instance_id)).scalar_one()
        return rt.specs.get(rt.db, definition_id, session=conn).forms


def subscriptions(rt: Runtime, instance_id: str) -> list[MessageSubscription]:
    with rt.db.session() as s:
        return list(s.scalars(select(MessageSubscription).where(MessageSubscription.instance_id == instance_id)))


def open_tasks(rt: Runtime, instance_id: str) -> list[HumanTask]:
    with rt.db.read() as conn:
        found = rt.db.rows(conn, _OPEN_TASKS, {"instance_id": instance_id})
    return [from_row(HumanTask, row) for row in found]


def task_history(rt: Runtime, instance_id: str) -> list[HumanTask]:
    """Every user task the instance has had, open or ended, oldest first."""
    with rt.db.session() as s:
        return list(s.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id)
                              .order_by(HumanTask.created_at, HumanTask.ended_at.is_(None), HumanTask.ended_at,
                                        HumanTask.id)))


def definition_of(rt: Runtime, row: ProcessInstance) -> ProcessDefinition:
    return definitions.get(rt, row.definition_id)


def annotate_in(rt: Runtime, session: Session, instance_id: str, actor: str, action: str, at: datetime,
                **details: Any) -> ProcessInstance:
    """`annotate` inside the caller's transaction (a use case that writes more with it): locks the
    instance, appends the event, and answers the locked row; the caller commits or rolls back."""
    from . import audit
    from .change import locked_instance

    row = locked_instance(session, instance_id)
    audit.append_to_instance(rt, session, row, [audit.AuditDraft(action=action, actor=actor, at=at,
                                                                 instance_id=instance_id, details=details)])
    return row
