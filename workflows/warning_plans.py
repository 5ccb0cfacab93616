"""Who is told of a graded warning (workflows/warnings.py): the policy rows for its level and grid, or
the defaults, turned into recipient groups along the grid's lineage up to the city."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .grids import Grid
from .people import Person
from .routing import on_duty
from .warning_models import DEFAULT_ACK_MINUTES, NOTIFY_LEVELS, WarningPolicy


@dataclass(frozen=True)
class GroupPlan:
    scope: str
    post: str
    recipient: str | None
    ack_minutes: int
    renotify: bool
    escalation_scopes: list[str]
    policy: str


class UnknownGrid(LookupError):
    pass


def lineage(s: Session, tenant: str, code: str) -> list[tuple[str, str]]:
    """(code, level) from the grid up to the city, current rows; UnknownGrid if it is not one."""
    chain: list[tuple[str, str]] = []
    current: str | None = code
    while current is not None and len(chain) <= len(NOTIFY_LEVELS):
        row = s.execute(select(Grid.code, Grid.level, Grid.parent_code).where(
            Grid.tenant == tenant, Grid.code == current, Grid.valid_to.is_(None))).first()
        if row is None:
            if not chain:
                raise UnknownGrid(code)
            break
        chain.append((row.code, row.level))
        current = row.parent_code
    return chain


def policies_for(s: Session, tenant: str, level: int, grid: str) -> list[WarningPolicy]:
    """The tenant's rows for `level` with the longest grid prefix that `grid` starts with."""
    rows = [p for p in s.scalars(select(WarningPolicy).where(WarningPolicy.tenant == tenant,
                                                             WarningPolicy.level == level).order_by(WarningPolicy.id))
            if grid.startswith(p.grid_prefix or "")]
    best = max((len(p.grid_prefix or "") for p in rows), default=0)
    return [p for p in rows if len(p.grid_prefix or "") == best]


def default_policy(level: int) -> list[tuple[str, str, int, bool, str]]:
    """(notify level, post, minutes, renotify, why): the grid's supervisors; for I and II also the
    district's."""
    levels = ["grid", "district"] if level <= 2 else ["grid"]
    return [(at, "supervisor", DEFAULT_ACK_MINUTES[level], True, "default") for at in levels]


def plan_groups(s: Session, tenant: str, level: int, chain: Sequence[tuple[str, str]],
                at: datetime) -> list[GroupPlan]:
    """The recipient groups of a warning in `chain[0]` (see `lineage`)."""
    rows = policies_for(s, tenant, level, chain[0][0])
    specs = ([(p.notify_level, p.notify_post, p.ack_minutes, p.renotify, f"policy {p.id}") for p in rows]
             or default_policy(level))
    plans: list[GroupPlan] = []
    seen: set[tuple[str, str, str | None]] = set()
    for notify_level, post, minutes, renotify, why in specs:
        start = 0 if notify_level == "grid" else next(
            (i for i, (_code, lvl) in enumerate(chain) if lvl == notify_level), None)
        if start is None:  # e.g. a district level for a warning of the city itself
            continue
        for plan in _groups_at(s, chain[start:], post, minutes, renotify, why, at):
            if (plan.scope, plan.post, plan.recipient) not in seen:
                seen.add((plan.scope, plan.post, plan.recipient))
                plans.append(plan)
    return plans


def _groups_at(s: Session, chain: Sequence[tuple[str, str]], post: str, minutes: int, renotify: bool, why: str,
               at: datetime) -> list[GroupPlan]:
    codes = [code for code, _level in chain]
    staffed = set(s.scalars(select(Person.grid_code).where(Person.grid_code.in_(codes), Person.post == "supervisor",
                                                           Person.active.is_(True))))
    if post != "supervisor":
        people = on_duty(s, grid_code=codes[0], category="", at=at, post=post) or list(s.scalars(
            select(Person.username).where(Person.grid_code == codes[0], Person.post == post, Person.active.is_(True),
                                          Person.username.is_not(None)).order_by(Person.username)))
        if people:
            above = [c for c in codes[1:] if c in staffed]
            return [GroupPlan(codes[0], post, name, minutes, renotify, above, why) for name in people]
        why = f"{why}; no {post} in {codes[0]}, its supervisors instead"
    # notify.send climbs from a grid without supervisors to its parent: start where it will land,
    # so that the first escalation reaches new people
    first = next((i for i, c in enumerate(codes) if c in staffed), len(codes) - 1)
    return [GroupPlan(codes[first], "supervisor", None, minutes, renotify,
                      [c for c in codes[first + 1:] if c in staffed], why)]
