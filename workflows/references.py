"""What reference fields of the closed loop's forms may name, checked inside the change:

- `grid`: a current grid. `sameTenantAs="<var>"` — of the same city as the grid in that variable;
  `contains="<var>"` — a grid that contains it (the level above, the city); `inActorScope="true"`
  — inside the acting person's own subtree (a supervisor starts work only there).
- `case`: an open case. `self="<var>"` — not that case, and of the same city.
- `person`: a member of staff, active, with `post`, whose grid and the grid in `scope="<var>"`
  lie on one branch (routing picks on-duty people of the unit or a level above)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from engine.references import ReferenceContext, ReferenceKind, ReferenceKinds, ReferenceRefused

from .cases import Case
from .grids import Grid
from .people import Person


def _current_grid(ctx: ReferenceContext, code: str) -> Grid | None:
    return ctx.conn.execute(select(Grid).where(Grid.code == code, Grid.valid_to.is_(None))).first()


def check_grid(value: Any, ctx: ReferenceContext) -> str:
    found = _current_grid(ctx, value)
    if found is None:
        raise ReferenceRefused(f"there is no grid {value!r}")
    grid = found[0]
    same = ctx.variable("sameTenantAs")
    if same:
        other = _current_grid(ctx, same)
        if other is None or other[0].tenant != grid.tenant:
            raise ReferenceRefused(f"grid {value!r} is not of this case's city")
    inner = ctx.variable("contains")
    if inner and not str(inner).startswith(value):
        raise ReferenceRefused(f"grid {value!r} does not contain {inner!r}")
    if ctx.arg("inActorScope") == "true" and ctx.viewer is not None and not ctx.viewer.sees_all \
            and not (ctx.viewer.scope and value.startswith(ctx.viewer.scope)):
        raise ReferenceRefused(f"grid {value!r} is outside your own grid")
    return value


def check_case(value: Any, ctx: ReferenceContext) -> str:
    found = ctx.conn.execute(select(Case.id, Case.tenant, Case.status).where(Case.id == value)).first()
    if found is None:
        raise ReferenceRefused(f"there is no case {value!r}")
    if found.status != "open":
        raise ReferenceRefused(f"case {value!r} is closed")
    me = ctx.variable("self")
    if me:
        if value == me:
            raise ReferenceRefused("a case cannot be merged into itself")
        mine = ctx.conn.execute(select(Case.tenant).where(Case.id == me)).scalar()
        if mine is not None and mine != found.tenant:
            raise ReferenceRefused(f"case {value!r} is of another city")
    return value


def check_person(value: Any, ctx: ReferenceContext) -> str:
    person = ctx.conn.execute(select(Person.post, Person.grid_code, Person.active)
                              .where(Person.username == value)).first()
    if person is None or not person.active:
        raise ReferenceRefused(f"{value!r} is not an active member of staff")
    post = ctx.arg("post")
    if post and person.post != post:
        raise ReferenceRefused(f"{value!r} is not a {post}")
    scope = ctx.variable("scope")
    if scope and not (str(scope).startswith(person.grid_code) or person.grid_code.startswith(str(scope))):
        raise ReferenceRefused(f"{value!r} does not work in grid {scope}")
    return value


def register(kinds: ReferenceKinds) -> None:
    kinds.register(ReferenceKind("grid", check_grid, variables=frozenset({"sameTenantAs", "contains"}),
                                 literals=frozenset({"inActorScope"})))
    kinds.register(ReferenceKind("case", check_case, variables=frozenset({"self"})))
    kinds.register(ReferenceKind("person", check_person, variables=frozenset({"scope"}),
                                 literals=frozenset({"post"})))
