"""Who may see which tasks and instances: one set of rules, as a Python predicate for single rows
and as a SQL filter for queries, so the two cannot drift apart.

Scopes are prefixes: a viewer with scope "320706" sees work scoped "320706001000001". The rules
fail closed: a viewer without a scope sees only what is assigned to them, and work without a scope
is visible only to those who see everything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true

from .models import HumanTask, ProcessInstance


@dataclass(frozen=True)
class Viewer:
    name: str
    roles: frozenset[str]
    scope: str | None
    sees_all: bool = False  # e.g. administrators and leaders
    oversees: bool = False  # e.g. supervisors: every task in their scope, whatever role it is offered to


def _in_scope(viewer: Viewer, scope: str | None) -> bool:
    if not viewer.scope or scope is None:  # an empty scope would otherwise prefix every grid
        return False
    return scope.startswith(viewer.scope)


def task_visible(viewer: Viewer, ht: HumanTask) -> bool:
    if viewer.sees_all or ht.assignee == viewer.name:
        return True
    return _in_scope(viewer, ht.candidate_scope) and (viewer.oversees or ht.candidate_role in viewer.roles)


def may_work(viewer: Viewer, role: str | None, scope: str | None) -> bool:
    """Whether a person could work on a task offered to `role` in `scope` themselves: they hold the
    role, and the scope lies in their subtree (or they see everything). The one rule for everyone a
    task is handed to: dispatch, escalation, delegation, claiming for someone."""
    return role is not None and role in viewer.roles and (viewer.sees_all or _in_scope(viewer, scope))


def task_filter(viewer: Viewer) -> ColumnElement[bool]:
    if viewer.sees_all:
        return true()
    mine = HumanTask.assignee == viewer.name
    if not viewer.scope:
        return mine
    offered = HumanTask.candidate_scope.startswith(viewer.scope, autoescape=True)
    if not viewer.oversees:
        offered = and_(offered, HumanTask.candidate_role.in_(sorted(viewer.roles)))
    return or_(mine, offered)


def grid_visible(viewer: Viewer, grid: str | None) -> bool:
    """Anything placed in a grid (an instance, a case, a source, a warning): everything for those who
    see everything, else what lies in the viewer's subtree, and nothing without a scope."""
    return viewer.sees_all or _in_scope(viewer, grid)


def grid_filter(viewer: Viewer, column: Any) -> ColumnElement[bool]:
    """`grid_visible` as a SQL condition on the grid column of any table."""
    if viewer.sees_all:
        return true()
    if not viewer.scope:  # None, or an empty scope, which would otherwise prefix every grid
        return false()
    return column.startswith(viewer.scope, autoescape=True)


def instance_visible(viewer: Viewer, instance: ProcessInstance) -> bool:
    return grid_visible(viewer, instance.scope)


def instance_filter(viewer: Viewer) -> ColumnElement[bool]:
    return grid_filter(viewer, ProcessInstance.scope)
