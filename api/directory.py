"""Who may be named to work on something: the `user` reference kind of forms (dispatch, escalation)
and the check behind delegating or claiming for someone else — one rule (engine.visibility.may_work)
over active login accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from engine.references import ReferenceContext, ReferenceKind, ReferenceRefused
from engine.visibility import may_work

from .accounts import User
from .auth import Principal


def assignable(conn: Connection, username: str, role: str | None, scope: str | None) -> str | None:
    """Why `username` cannot be given work offered to `role` in `scope`, or None if they can."""
    user = conn.execute(select(User.username, User.roles, User.scope, User.active)
                        .where(User.username == username)).first()
    if user is None or not user.active:
        return f"{username!r} is not an active user"
    viewer = Principal(user.username, frozenset(r for r in user.roles.split(",") if r), user.scope).viewer
    if not may_work(viewer, role, scope):
        return f"{username!r} may not work on this (needs role {role!r} in grid {scope})"
    return None


def _check_user(value: Any, ctx: ReferenceContext) -> str:
    problem = assignable(ctx.conn, value, ctx.arg("role"), ctx.variable("scope"))
    if problem:
        raise ReferenceRefused(problem)
    return value


USER = ReferenceKind("user", _check_user, variables=frozenset({"scope"}), literals=frozenset({"role"}),
                     required=frozenset({"role", "scope"}))
