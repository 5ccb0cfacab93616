"""Human tasks: query, claim, unclaim, delegate, complete. Two completions of one task race for the
instance lock; the loser finds the task no longer open and gets Conflict, with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.orm import Session

from . import audit, readmodels
from .change import PI, Lock, change_instance
from .db import Prepared, given, page
from .errors import Conflict, InvalidInput, NotAllowed, NotFound
from .forms import Form
from .models import HumanTask, ProcessInstance, from_row
from .parsing import declared_outputs
from .runtime import Runtime
from .spiff_specs import find_task
from .visibility import Viewer, task_filter

HT = cast(Table, HumanTask.__table__)
_BY_ID = Prepared(select(*HT.c).where(HT.c.id == bindparam("task_id")))
# Completion closes the row first, in the same statement that reads it (after the instance lock, so
# it sees the latest committed row); no row back means it was not open, or not the actor's to complete.
_CLOSE = (update(HT).where(HT.c.id == bindparam("task_id"), HT.c.status == "open")
          .values(status="completed", ended_at=bindparam("now"), completed_by=bindparam("actor")))
_CLOSE_OWN = Prepared(_CLOSE.where(or_(HT.c.assignee.is_(None), HT.c.assignee == bindparam("actor")))
                      .returning(*HT.c))
_CLOSE_ANY = Prepared(_CLOSE.returning(*HT.c))
# Lock the task's instance in one statement. The task row is read after the lock is held: a row joined
# into the locking statement would be the version from before a concurrent change.
_LOCK_THROUGH_TASK = Prepared(select(*PI.c).where(PI.c.id == select(HT.c.instance_id)
                                                  .where(HT.c.id == bindparam("task_id")).scalar_subquery())
                              .with_for_update())


def form(rt: Runtime, ht: HumanTask) -> Form | None:
    """The form the task takes (None: a model without one for this task)."""
    with rt.db.read() as conn:
        definition_id = conn.execute(select(PI.c.definition_id).where(PI.c.id == ht.instance_id)).scalar_one()
        return rt.specs.get(rt.db, definition_id, session=conn).forms.get(ht.element_id)


def get(rt: Runtime, task_id: str) -> HumanTask:
    with rt.db.read() as conn:
        found = rt.db.rows(conn, _BY_ID, {"task_id": task_id})
    if not found:
        raise NotFound(f"task {task_id} does not exist")
    return from_row(HumanTask, found[0])


def check_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables become Python names inside scripts: refuse names that cannot be or must not be."""
    bad = [k for k in variables if not isinstance(k, str) or not k.isidentifier() or k.startswith("_")]
    if bad:
        raise InvalidInput("variable names must be identifiers not starting with '_'", fields=bad)
    return variables


def check_outputs(task, variables: dict[str, Any]) -> None:
    """A form sets only what its task declares; without a declaration it may not overwrite variables
    the process holds (a grid, a deadline, a supervisor's decision)."""
    allowed = declared_outputs(task.task_spec)
    if allowed is not None:
        extra = sorted(set(variables) - allowed)
        if extra:
            raise InvalidInput(f"this task sets only: {', '.join(sorted(allowed)) or 'nothing'}", fields=extra)
        return
    held = sorted(k for k in variables if k in task.data)
    if held:
        raise InvalidInput("these variables are held by the process and cannot be set here", fields=held)


def _task_lock(task_id: str):
    """Lock the task's instance in one statement. The task row is read after the lock is held: a row
    joined into the locking statement would be the version from before a concurrent change."""
    of_task = select(HumanTask.instance_id).where(HumanTask.id == task_id).scalar_subquery()
    return select(ProcessInstance).where(ProcessInstance.id == of_task).with_for_update()


def _fresh_task(s: Session, task_id: str) -> HumanTask:
    return s.scalars(select(HumanTask).where(HumanTask.id == task_id)
                     .execution_options(populate_existing=True)).one()


@contextmanager
def _locked_task(rt: Runtime, task_id: str, actor: str) -> Iterator[tuple[Session, ProcessInstance, HumanTask]]:
    """For assignment changes: the instance lock (so the instance's audit chain stays linear) without
    loading the workflow, which these changes do not touch."""
    with rt.db.transaction() as s:
        row = s.scalar(_task_lock(task_id))
        if row is None:
            raise NotFound(f"task {task_id} does not exist")
        ht = _fresh_task(s, task_id)
        if ht.status != "open":
            raise Conflict(f"task is {ht.status}, not open", status=ht.status)
        yield s, row, ht


def _assignment_audit(rt: Runtime, s: Session, row: ProcessInstance, ht: HumanTask, action: str, actor: str,
                      **details: Any) -> None:
    audit.append_to_instance(rt, s, row, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(),
                                                       instance_id=row.id, task_id=ht.id,
                                                       element_id=ht.element_id, details=details)])


def claim(rt: Runtime, task_id: str, actor: str, assignee: str | None = None) -> HumanTask:
    """Take an unassigned open task (for oneself, or for `assignee` when a supervisor assigns)."""
    who = assignee or actor
    with _locked_task(rt, task_id, actor) as (s, row, ht):
        if ht.assignee is not None:
            raise Conflict(f"cannot claim: task is assigned to {ht.assignee}", assignee=ht.assignee)
        ht.assignee, ht.claimed_at = who, rt.clock.now()
        _assignment_audit(rt, s, row, ht, "task.claimed", actor, assignee=who)
    return ht


def unclaim(rt: Runtime, task_id: str, actor: str, *, force: bool = False) -> HumanTask:
    with _locked_task(rt, task_id, actor) as (s, row, ht):
        if ht.assignee is None:
            raise Conflict("task is not assigned")
        if ht.assignee != actor and not force:
            raise NotAllowed("only the assignee may give the task back")
        before = ht.assignee
        ht.assignee, ht.claimed_at = None, None
        _assignment_audit(rt, s, row, ht, "task.unclaimed", actor, before=before)
    return ht


def delegate(rt: Runtime, task_id: str, actor: str, to: str, *, force: bool = False) -> HumanTask:
    """Hand the task to someone else; the delegator is kept as owner."""
    with _locked_task(rt, task_id, actor) as (s, row, ht):
        if ht.assignee not in (None, actor) and not force:
            raise NotAllowed("only the assignee may delegate the task")
        before = ht.assignee
        ht.owner, ht.assignee, ht.claimed_at = ht.owner or actor, to, rt.clock.now()
        _assignment_audit(rt, s, row, ht, "task.delegated", actor, before=before, after=to)
    return ht


def complete(rt: Runtime, task_id: str, actor: str, variables: dict[str, Any] | None = None,
             *, force: bool = False, viewer: Viewer | None = None) -> HumanTask:
    """Complete a task with the submitted variables and run the process on to its next wait. A task
    with a form takes exactly its fields, checked and converted (references as `viewer` may name
    them; None: the system) before anything runs; a bad value changes nothing."""
    variables = check_variables(dict(variables or {}))
    lock = Lock(_LOCK_THROUGH_TASK, {"task_id": task_id})
    with change_instance(rt, "", actor, lock=lock, not_found=f"task {task_id} does not exist") as ch:
        if ch.instance.suspended:
            raise Conflict("the process instance is suspended: its tasks cannot be completed until an "
                           "administrator activates it", instanceId=ch.instance.id)
        closed = rt.db.rows(ch.conn, _CLOSE_ANY if force else _CLOSE_OWN,
                            {"task_id": task_id, "now": ch.now, "actor": actor})
        if not closed:
            (found,) = rt.db.rows(ch.conn, _BY_ID, {"task_id": task_id})
            if found["status"] != "open":
                raise Conflict(f"task is {found['status']}, not open", status=found["status"])
            raise NotAllowed(f"task is assigned to {found['assignee']}")
        ht = from_row(HumanTask, closed[0])
        task = find_task(ch.workflow, task_id)
        if task is None or not task.task_spec.manual or task.state != TaskState.READY:
            raise Conflict("task is no longer waiting in the process")
        form = ch.model.forms.get(ht.element_id) if ch.model is not None else None
        if form is not None:
            variables = form.validate(variables, task.data, resolve=rt.references.resolve(ch.conn, viewer),
                                      now=rt.clock.now())
        else:
            check_outputs(task, variables)
        task.data.update(variables)
        ch.run_task(task)  # the library checks outputs and data mappings here
        readmodels.completed_task(ch, task_id)
        ch.record("task.completed", task_id=task_id, element_id=ht.element_id,
                  before={"status": "open", "assignee": ht.assignee}, after={"variables": variables})
    return ht


@dataclass
class TaskQuery:
    status: str | None = "open"
    assignee: str | None = None
    unassigned: bool = False
    candidate_roles: Sequence[str] | None = None
    candidate_scopes: Sequence[str] | None = None  # None = any scope
    instance_id: str | None = None
    process_key: str | None = None
    element_id: str | None = None
    due_before: datetime | None = None
    sort: str = "created"
    offset: int = 0
    limit: int = 50
    viewer: Viewer | None = None  # only what this viewer may see (engine.visibility); None: everything


SORTS = {"created": HumanTask.created_at, "due": HumanTask.due_at, "priority": HumanTask.priority.desc()}


def query(rt: Runtime, q: TaskQuery) -> tuple[list[HumanTask], int]:
    t = HumanTask
    stmt = select(t).where(*given(
        t.status == q.status if q.status else None,
        t.assignee == q.assignee if q.assignee else None,
        t.assignee.is_(None) if q.unassigned else None,
        t.candidate_role.in_(list(q.candidate_roles)) if q.candidate_roles is not None else None,
        t.candidate_scope.in_(list(q.candidate_scopes)) if q.candidate_scopes is not None else None,
        t.instance_id == q.instance_id if q.instance_id else None,
        t.process_key == q.process_key if q.process_key else None,
        t.element_id == q.element_id if q.element_id else None,
        t.due_at < q.due_before if q.due_before else None,
        task_filter(q.viewer) if q.viewer is not None else None,
    ))
    return page(rt.db, stmt, [SORTS.get(q.sort, t.created_at), t.id], q.offset, q.limit)
