"""Routing: a point → its basic grid unit → who is on duty there for the category → if nobody, the
parent level, up to the city. Nothing is dropped: an alarm with no location, or outside every grid,
goes to the city's supervisors with that reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .people import DutyShift, Person


@dataclass(frozen=True)
class Route:
    grid_code: str  # the grid the work belongs to (the unit the point is in, or the city)
    handled_at: str  # the level that has people for it (the unit, or an ancestor it fell back to)
    assignees: list[str] = field(default_factory=list)  # usernames of those on duty
    role: str = "inspector"
    reason: str = "on duty in the grid"


def route(session: Session, *, city: str, point: tuple[float, float] | None, category: str, at: datetime,
          locate: Callable[[float, float], str | None], ancestors: Callable[[str], Sequence[str]]) -> Route:
    """Where an alarm goes. `locate(lon, lat)` gives the basic unit; `ancestors(code)` the chain from
    it up to the city (both from the grid index)."""
    if point is None:
        return _to_city(session, city, category, at, "the alarm has no location")
    unit = locate(*point)
    if unit is None:
        return _to_city(session, city, category, at, f"({point[0]:.5f}, {point[1]:.5f}) is outside every grid")
    for level in ancestors(unit):
        people = on_duty(session, grid_code=level, category=category, at=at, post="inspector")
        if people:
            reason = "on duty in the grid" if level == unit else f"nobody on duty in {unit}; fell back to {level}"
            return Route(grid_code=unit, handled_at=level, assignees=people, reason=reason)
    return Route(grid_code=unit, handled_at=city, assignees=on_duty(session, grid_code=city, category=category,
                                                                   at=at, post="supervisor"),
                 role="supervisor", reason=f"nobody on duty from {unit} up to the city")


def _to_city(session: Session, city: str, category: str, at: datetime, reason: str) -> Route:
    return Route(grid_code=city, handled_at=city, role="supervisor", reason=reason,
                 assignees=on_duty(session, grid_code=city, category=category, at=at, post="supervisor"))


def on_duty(session: Session, *, grid_code: str, category: str, at: datetime, post: str) -> list[str]:
    """Usernames of active people of `post` on duty for `grid_code` at `at` (for this category or all)."""
    rows = session.scalars(
        select(Person.username).join(DutyShift, DutyShift.person_id == Person.id)
        .where(DutyShift.grid_code == grid_code, DutyShift.starts_at <= at, DutyShift.ends_at > at,
               or_(DutyShift.category.is_(None), DutyShift.category == category),
               Person.active.is_(True), Person.post == post, Person.username.is_not(None))
        .order_by(Person.username).distinct())
    return cast(list[str], list(rows))  # `Person.username.is_not(None)` in the query
