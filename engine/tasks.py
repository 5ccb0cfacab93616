"""Human tasks: query, claim, unclaim, delegate, complete. Two completions of one task race for the
instance lock; the loser finds the task no longer open and gets Conflict, with nothing changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from . import audit
from .change import change_instance
from .errors import Conflict, InvalidInput, NotAllowed, NotFound
from .models import HumanTask
from .runtime import Runtime
from .spiff_specs import find_task


def get(rt: Runtime, task_id: str) -> HumanTask:
    with rt.db.session() as s:
        ht = s.get(HumanTask, task_id)
    if ht is None:
        raise NotFound(f"task {task_id} does not exist")
    return ht


def check_variables(variables: dict[str, Any]) -> dict[str, Any]:
    """Variables become Python names inside scripts: refuse names that cannot be or must not be."""
    bad = [k for k in variables if not isinstance(k, str) or not k.isidentifier() or k.startswith("_")]
    if bad:
        raise InvalidInput("variable names must be identifiers not starting with '_'", fields=bad)
    return variables


def claim(rt: Runtime, task_id: str, actor: str, assignee: str | None = None) -> HumanTask:
    """Take an unassigned open task (for oneself, or for `assignee` when a supervisor assigns)."""
    who = assignee or actor
    with rt.db.transaction() as s:
        done = s.execute(update(HumanTask)
                         .where(HumanTask.id == task_id, HumanTask.status == "open", HumanTask.assignee.is_(None))
                         .values(assignee=who, claimed_at=rt.clock.now()))
        if done.rowcount != 1:
            _explain_conflict(s, task_id, "claim")
        ht = s.get(HumanTask, task_id)
        _audit(rt, s, "task.claimed", actor, ht, assignee=who)
    return ht


def unclaim(rt: Runtime, task_id: str, actor: str, *, force: bool = False) -> HumanTask:
    with rt.db.transaction() as s:
        ht = _open_for_update(s, task_id)
        if ht.assignee is None:
            raise Conflict("task is not assigned")
        if ht.assignee != actor and not force:
            raise NotAllowed("only the assignee may give the task back")
        before = ht.assignee
        ht.assignee, ht.claimed_at = None, None
        _audit(rt, s, "task.unclaimed", actor, ht, before=before)
    return ht


def delegate(rt: Runtime, task_id: str, actor: str, to: str, *, force: bool = False) -> HumanTask:
    """Hand the task to someone else; the delegator is kept as owner."""
    with rt.db.transaction() as s:
        ht = _open_for_update(s, task_id)
        if ht.assignee not in (None, actor) and not force:
            raise NotAllowed("only the assignee may delegate the task")
        before = ht.assignee
        ht.owner, ht.assignee, ht.claimed_at = ht.owner or actor, to, rt.clock.now()
        _audit(rt, s, "task.delegated", actor, ht, before=before, after=to)
    return ht


def complete(rt: Runtime, task_id: str, actor: str, variables: dict[str, Any] | None = None,
             *, force: bool = False) -> HumanTask:
    """Complete a task with the submitted variables and run the process on to its next wait."""
    variables = check_variables(dict(variables or {}))
    instance_id = get(rt, task_id).instance_id
    with change_instance(rt, instance_id, actor) as ch:
        ht = ch.session.get(HumanTask, task_id)
        if ht is None or ht.status != "open":
            raise Conflict(f"task is {ht.status if ht else 'gone'}, not open", status=ht.status if ht else None)
        if ht.assignee is not None and ht.assignee != actor and not force:
            raise NotAllowed(f"task is assigned to {ht.assignee}")
        task = find_task(ch.workflow, task_id)
        if task is None or not task.task_spec.manual:
            raise Conflict("task is no longer waiting in the process")
        task.data.update(variables)
        task.run()
        ht.status, ht.ended_at, ht.completed_by = "completed", ch.now, actor
        ch.record("task.completed", task_id=task_id, element_id=ht.element_id,
                  before={"status": "open", "assignee": ht.assignee}, after={"variables": variables})
    return ht


def _open_for_update(s, task_id: str) -> HumanTask:
    ht = s.scalar(select(HumanTask).where(HumanTask.id == task_id).with_for_update())
    if ht is None:
        raise NotFound(f"task {task_id} does not exist")
    if ht.status != "open":
        raise Conflict(f"task is {ht.status}, not open", status=ht.status)
    return ht


def _explain_conflict(s, task_id: str, action: str) -> None:
    ht = s.get(HumanTask, task_id)
    if ht is None:
        raise NotFound(f"task {task_id} does not exist")
    if ht.status != "open":
        raise Conflict(f"cannot {action}: task is {ht.status}", status=ht.status)
    raise Conflict(f"cannot {action}: task is assigned to {ht.assignee}", assignee=ht.assignee)


def _audit(rt: Runtime, s, action: str, actor: str, ht: HumanTask, **details: Any) -> None:
    audit.append(rt.db, s, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(),
                                             instance_id=ht.instance_id, task_id=ht.id,
                                             element_id=ht.element_id, details=details)])


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
    # Visibility: tasks assigned to `viewer`, or offered to one of `viewer_roles` within `viewer_scope`
    # (a scope is a prefix of candidate scopes: grid codes nest). All None = no restriction.
    viewer: str | None = None
    viewer_roles: Sequence[str] | None = None
    viewer_scope: str | None = None


SORTS = {"created": HumanTask.created_at, "due": HumanTask.due_at, "priority": HumanTask.priority.desc()}


def query(rt: Runtime, q: TaskQuery) -> tuple[list[HumanTask], int]:
    stmt = select(HumanTask)
    if q.status:
        stmt = stmt.where(HumanTask.status == q.status)
    if q.assignee:
        stmt = stmt.where(HumanTask.assignee == q.assignee)
    if q.unassigned:
        stmt = stmt.where(HumanTask.assignee.is_(None))
    if q.candidate_roles is not None:
        stmt = stmt.where(HumanTask.candidate_role.in_(list(q.candidate_roles)))
    if q.candidate_scopes is not None:
        stmt = stmt.where(HumanTask.candidate_scope.in_(list(q.candidate_scopes)))
    if q.instance_id:
        stmt = stmt.where(HumanTask.instance_id == q.instance_id)
    if q.process_key:
        stmt = stmt.where(HumanTask.process_key == q.process_key)
    if q.element_id:
        stmt = stmt.where(HumanTask.element_id == q.element_id)
    if q.due_before:
        stmt = stmt.where(HumanTask.due_at < q.due_before)
    if q.viewer is not None:
        offered = HumanTask.candidate_role.in_(list(q.viewer_roles or ()))
        if q.viewer_scope:
            offered = and_(offered, or_(HumanTask.candidate_scope.is_(None),  # not bound to a place
                                        HumanTask.candidate_scope.startswith(q.viewer_scope, autoescape=True)))
        stmt = stmt.where(or_(HumanTask.assignee == q.viewer, offered))
    order = SORTS.get(q.sort, HumanTask.created_at)
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = list(s.scalars(stmt.order_by(order, HumanTask.id).offset(q.offset).limit(q.limit)))
    return rows, total or 0
