"""What reference fields of the closed loop's forms may name, checked inside the change:

- `grid`: a current grid. `sameTenantAs="<var>"` — of the same city as the grid in that variable;
  `contains="<var>"` — that grid or one of its ancestors (the level above, the city); `inActorScope="true"`
  — inside the acting person's own subtree (a supervisor starts work only there).
- `case`: an open case the actor may see. `self="<var>"` — not that case, and of the same city;
  `unstarted="true"` — one whose process is not started yet (the start of its own process).
- `user`: a login account, active, that could work on a task offered to `role` in the grid in
  `scope="<var>"` itself (engine.visibility.may_work) — the one rule for dispatch, escalation,
  delegation and claiming for someone else.
- `person`: a member of staff, active, with `post`, who belongs to (or has a duty shift in) the
  grid in `scope="<var>"` or a grid above it — whom routing may pick.
A variable an attribute names that is not set fails the check (closed, never skipped)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from engine.references import ReferenceContext, ReferenceKind, ReferenceKinds, ReferenceRefused
from engine.visibility import grid_visible, may_work

from .cases import Case
from .grids import Grid
from .people import LOGINS, DutyShift, Person, staff_viewer


def _tenant_of(ctx: ReferenceContext, code: str) -> str | None:
    """The city of a current grid, or None when there is no such grid."""
    return ctx.conn.execute(select(Grid.tenant).where(Grid.code == code, Grid.valid_to.is_(None))).scalar()


def _chain(ctx: ReferenceContext, code: str) -> list[str]:
    """The grid and its ancestors, up to the city (codes of a level need not prefix the next)."""
    chain = [code]
    while len(chain) <= 8:
        parent = ctx.conn.execute(select(Grid.parent_code).where(Grid.code == chain[-1],
                                                                 Grid.valid_to.is_(None))).scalar()
        if not parent:
            break
        chain.append(parent)
    return chain


def check_grid(value: Any, ctx: ReferenceContext) -> str:
    tenant = _tenant_of(ctx, value)
    if tenant is None:
        raise ReferenceRefused(f"there is no grid {value!r}")
    if ctx.arg("sameTenantAs") is not None:
        same = ctx.variable("sameTenantAs")
        if not same or _tenant_of(ctx, same) != tenant:
            raise ReferenceRefused(f"grid {value!r} is not of this case's city")
    if ctx.arg("contains") is not None:
        inner = ctx.variable("contains")
        if not inner or value not in _chain(ctx, str(inner)):
            raise ReferenceRefused(f"grid {value!r} does not contain {inner!r}")
    if ctx.arg("inActorScope") == "true" and ctx.viewer is not None and not grid_visible(ctx.viewer, value):
        raise ReferenceRefused(f"grid {value!r} is outside your own grid")
    return value


def check_case(value: Any, ctx: ReferenceContext) -> str:
    found = ctx.conn.execute(select(Case.id, Case.tenant, Case.status, Case.grid_code, Case.instance_id)
                             .where(Case.id == value)).first()
    if found is None or found.status != "open" or (ctx.viewer is not None
                                                   and not grid_visible(ctx.viewer, found.grid_code)):
        raise ReferenceRefused(f"there is no open case {value!r} you may name")
    if ctx.arg("unstarted") == "true" and found.instance_id is not None:
        raise ReferenceRefused(f"case {value!r} has its process already")
    if ctx.arg("self") is not None:
        me = ctx.variable("self")
        if value == me:
            raise ReferenceRefused("a case cannot be merged into itself")
        mine = ctx.conn.execute(select(Case.tenant).where(Case.id == me)).scalar() if me else None
        if mine != found.tenant:
            raise ReferenceRefused(f"case {value!r} is of another city")
    return value


def check_person(value: Any, ctx: ReferenceContext) -> str:
    person = ctx.conn.execute(select(Person.id, Person.post, Person.grid_code, Person.active)
                              .where(Person.username == value)).first()
    if person is None or not person.active:
        raise ReferenceRefused(f"{value!r} is not an active member of staff")
    post = ctx.arg("post")
    if post and person.post != post:
        raise ReferenceRefused(f"{value!r} is not a {post}")
    if ctx.arg("scope") is not None:
        scope = ctx.variable("scope")
        chain = set(_chain(ctx, str(scope))) if scope else set()
        shifts = ctx.conn.execute(select(DutyShift.grid_code).where(DutyShift.person_id == person.id)).scalars()
        if not chain & {person.grid_code, *shifts}:  # routing takes people on duty for the grid or above it
            raise ReferenceRefused(f"{value!r} does not work in grid {scope} or above it")
    return value


def assignable(conn: Connection, username: str, role: str | None, scope: str | None) -> str | None:
    """Why `username` cannot be given work offered to `role` in `scope`, or None if they can."""
    user = conn.execute(select(LOGINS).where(LOGINS.c.username == username)).first()
    if user is None or not user.active:
        return f"{username!r} is not an active user"
    viewer = staff_viewer(user.username, frozenset(r for r in user.roles.split(",") if r), user.scope)
    if not may_work(viewer, role, scope):
        return f"{username!r} may not work on this (needs role {role!r} in grid {scope})"
    return None


def check_user(value: Any, ctx: ReferenceContext) -> str:
    problem = assignable(ctx.conn, value, ctx.arg("role"), ctx.variable("scope"))
    if problem:
        raise ReferenceRefused(problem)
    return value


def register(kinds: ReferenceKinds) -> None:
    kinds.register(ReferenceKind("user", check_user, variables=frozenset({"scope"}), literals=frozenset({"role"}),
                                 required=frozenset({"role", "scope"})))
    kinds.register(ReferenceKind("grid", check_grid, variables=frozenset({"sameTenantAs", "contains"}),
                                 literals=frozenset({"inActorScope"})))
    kinds.register(ReferenceKind("case", check_case, variables=frozenset({"self"}),
                                 literals=frozenset({"unstarted"})))
    kinds.register(ReferenceKind("person", check_person, variables=frozenset({"scope"}),
                                 literals=frozenset({"post"})))
