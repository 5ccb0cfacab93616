"""Duty rosters (值班): who is on duty for a grid, and when — the day shifts of a grid's own staff,
the night and holiday duty of a grid centre. Routing (workflows/routing.py) and notices to a grid's
supervisors (workflows/notices.py) read these rows at the moment they act.

Use cases: list a grid's shifts over a period; add shifts (one, a shift repeated daily, or a batch:
all or nothing, problems by item index); end one early; delete one that has not begun. Each change is
one unit of work with its audit event on the system chain. The roster is also the record of who was
on duty: a shift that is over is never added, moved back or deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from engine import audit
from engine.db import given
from engine.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from engine.visibility import Viewer, grid_filter, grid_visible

from .grids import Grid
from .people import SHIFT_KINDS, Category, DutyShift, Person

MAX_SHIFT = timedelta(hours=72)
"""One watch, however long a holiday is: a weekend's duty (Friday 17:30 to Monday 08:30) is 63 hours.
A longer row would hide who really stands the watch; a long holiday is several shifts."""
MAX_AHEAD = timedelta(days=400)  # rosters are planned for the coming months, not for years
MAX_REPEAT = 31
Problems = dict[str, list[str]]


@dataclass(frozen=True)
class NewShift:
    person_id: int
    grid: str
    starts_at: datetime
    ends_at: datetime
    kind: str = "day"
    category: str | None = None


@dataclass(frozen=True)
class RosterQuery:
    grid: str
    starts: datetime | None = None  # shifts that end after this
    ends: datetime | None = None  # ... and begin before this (equal to `starts`: on duty at that moment)
    kind: str | None = None
    person_id: int | None = None
    subgrids: bool = False  # the grids under `grid` too


@dataclass(frozen=True)
class ShiftRow:
    shift: DutyShift
    person: Person


def repeated(new: NewShift, days: int) -> list[NewShift]:
    """The same shift on each of `days` consecutive days (China keeps no daylight saving time)."""
    if not 1 <= days <= MAX_REPEAT:
        raise InvalidInput(f"repeat a shift on 1 to {MAX_REPEAT} days", fields=["repeatDays"])
    step = timedelta(days=1)
    return [NewShift(new.person_id, new.grid, new.starts_at + n * step, new.ends_at + n * step, new.kind,
                     new.category) for n in range(days)]


# -- reading ---------------------------------------------------------------------------------------

def roster(rt: Runtime, viewer: Viewer, q: RosterQuery, offset: int, limit: int) -> tuple[list[ShiftRow], int]:
    """The shifts of `q.grid` (and below it) over the period, by start; the viewer sees those in their
    scope (engine.visibility) and their own."""
    stmt = _visible(viewer, select(DutyShift, Person).join(Person, Person.id == DutyShift.person_id).where(*given(
        DutyShift.grid_code.startswith(q.grid, autoescape=True) if q.subgrids else DutyShift.grid_code == q.grid,
        DutyShift.ends_at > q.starts if q.starts else None,
        (DutyShift.starts_at <= q.ends if q.ends == q.starts else DutyShift.starts_at < q.ends) if q.ends else None,
        DutyShift.kind == q.kind if q.kind else None,
        DutyShift.person_id == q.person_id if q.person_id else None)))
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.with_only_columns(DutyShift.id).subquery())) or 0
        rows = s.execute(stmt.order_by(DutyShift.starts_at, DutyShift.id).offset(offset).limit(limit)).all()
        return [ShiftRow(shift, person) for shift, person in rows], total


def shift_of(rt: Runtime, viewer: Viewer, shift_id: int) -> ShiftRow:
    with rt.db.session() as s:
        row = s.execute(_visible(viewer, select(DutyShift, Person).join(Person, Person.id == DutyShift.person_id)
                                 .where(DutyShift.id == shift_id))).first()
    if row is None:
        raise NotFound(f"duty shift {shift_id} does not exist")
    return ShiftRow(*row)


def _visible(viewer: Viewer, stmt: Select) -> Select:
    return stmt.where(grid_filter(viewer, DutyShift.grid_code) | (Person.username == viewer.name))


# -- changing --------------------------------------------------------------------------------------

def add_shifts(rt: Runtime, actor: Viewer, shifts: Sequence[NewShift], *, batch: bool = False) -> list[ShiftRow]:
    """Add shifts, all or none. InvalidInput names each field at fault (by item index in a batch);
    Conflict names the shifts that overlap another of the same person in the same grid; NotAllowed
    a grid outside a supervisor's scope."""
    now = rt.clock.now()
    with UnitOfWork(rt) as uow:
        s = uow.session
        _lock_people(s, {n.person_id for n in shifts})
        problems: dict[int, Problems] = {}
        outside: dict[int, Problems] = {}
        for i, new in enumerate(shifts):
            if not grid_visible(actor, new.grid):
                outside[i] = {"grid": [f"grid {new.grid} is outside your scope ({actor.scope or 'none'})"]}
            else:
                problems[i] = _problems(s, now, new)
        _refuse(outside, problems, batch)
        overlaps = _overlaps(s, shifts)
        if overlaps:
            raise Conflict("a shift overlaps another of the same person in the same grid",
                           fields=_by_item(overlaps, batch))
        rows = [DutyShift(person_id=n.person_id, grid_code=n.grid, category=n.category,
                          starts_at=n.starts_at.astimezone(UTC), ends_at=n.ends_at.astimezone(UTC), kind=n.kind)
                for n in shifts]  # in UTC as stored, so the answer reads as a later GET does
        s.add_all(rows)
        s.flush()
        _audit(rt, s, actor.name, "duty.add", shifts=[_record(r) for r in rows])
        people = {p.id: p for p in s.scalars(select(Person).where(Person.id.in_({r.person_id for r in rows})))}
        uow.commit()
    return [ShiftRow(r, people[r.person_id]) for r in rows]


def end_shift(rt: Runtime, actor: Viewer, shift_id: int, at: datetime | None = None) -> ShiftRow:
    """End a shift early, at `at` (default now): not in the past, inside the shift."""
    now = rt.clock.now()
    at = at or now
    with UnitOfWork(rt) as uow:
        shift, person = _for_change(uow.session, actor, shift_id)
        if at < now - timedelta(minutes=1):
            raise InvalidInput("a shift cannot be ended in the past: the roster is the record of who was on duty",
                               fields=["at"])
        if at <= shift.starts_at:
            raise InvalidInput(f"the shift begins at {shift.starts_at.isoformat()}: delete it instead of ending it "
                               "before it begins", fields=["at"])
        if at >= shift.ends_at:
            raise Conflict(f"the shift already ends at {shift.ends_at.isoformat()}", fields=["at"])
        before = shift.ends_at
        shift.ends_at = at.astimezone(UTC)
        _audit(rt, uow.session, actor.name, "duty.end", shift=_record(shift), planned_end=before.isoformat())
        uow.commit()
    return ShiftRow(shift, person)


def delete_shift(rt: Runtime, actor: Viewer, shift_id: int) -> None:
    """Delete a shift that has not begun (one that has is ended instead: it is on the record)."""
    with UnitOfWork(rt) as uow:
        shift, _person = _for_change(uow.session, actor, shift_id)
        if shift.starts_at <= rt.clock.now():
            raise Conflict(f"duty shift {shift_id} has begun: end it instead (the roster is the record of who "
                           "was on duty)")
        _audit(rt, uow.session, actor.name, "duty.delete", shift=_record(shift))
        uow.session.delete(shift)
        uow.commit()


# -- helpers ---------------------------------------------------------------------------------------

def _problems(s: Session, now: datetime, new: NewShift) -> Problems:
    """Everything wrong with one shift, by field."""
    found: Problems = {}

    def say(name: str, message: str) -> None:
        found.setdefault(name, []).append(message)

    grid = s.scalar(select(Grid).where(Grid.code == new.grid, Grid.valid_to.is_(None)))
    person = s.get(Person, new.person_id)
    if grid is None:
        say("grid", f"no current grid {new.grid}")
    if person is None:
        say("personId", f"no member of staff with id {new.person_id}")
    elif not person.active:
        say("personId", f"{_who(person)} is not active")
    elif grid is not None and person.tenant != grid.tenant:
        say("personId", f"{_who(person)} works for tenant {person.tenant}, grid {new.grid} belongs to {grid.tenant}")
    elif grid is not None and new.grid not in _chain(s, person.grid_code):
        say("personId", f"{_who(person)} belongs to grid {person.grid_code}, which is not {new.grid} or under it")
    if new.kind not in SHIFT_KINDS:
        say("kind", f"one of {', '.join(SHIFT_KINDS)}")
    if new.category is not None and grid is not None and s.scalar(
            select(Category.code).where(Category.code == new.category, Category.tenant == grid.tenant)) is None:
        say("category", f"no category {new.category!r} in tenant {grid.tenant}")
    if new.ends_at <= new.starts_at:
        say("endsAt", "must be after startsAt")
    elif new.ends_at - new.starts_at > MAX_SHIFT:
        say("endsAt", f"a shift lasts at most {MAX_SHIFT.total_seconds() / 3600:.0f} hours (this one "
                      f"{(new.ends_at - new.starts_at).total_seconds() / 3600:g}): a watch that long would hide who "
                      "really stands it; give a long holiday as several shifts")
    if new.ends_at <= now:
        say("endsAt", "the shift is over: the roster is the record of who was on duty, and the past is not rostered")
    if new.starts_at > now + MAX_AHEAD:
        say("startsAt", f"at most {MAX_AHEAD.days} days ahead")
    return found


def _refuse(outside: dict[int, Problems], problems: dict[int, Problems], batch: bool) -> None:
    if outside:
        raise NotAllowed("you may roster only grids in your scope", fields=_by_item(outside, batch))
    wrong = {i: p for i, p in problems.items() if p}
    if wrong:
        first = next(iter(wrong.values()))
        name, messages = next(iter(first.items()))
        raise InvalidInput(f"the duty shift was refused: {name} {messages[0]}", fields=_by_item(wrong, batch))


def _by_item(problems: dict[int, Problems], batch: bool) -> dict[str, Any]:
    """A batch names fields by item index; a single shift by name (as for any body)."""
    if batch:
        return {str(i): p for i, p in problems.items()}
    merged: Problems = {}
    for p in problems.values():
        for name, messages in p.items():
            merged.setdefault(name, []).extend(m for m in messages if m not in merged.get(name, []))
    return merged


def _overlaps(s: Session, shifts: Sequence[NewShift]) -> dict[int, Problems]:
    """Items that overlap a stored shift, or an earlier item, of the same person in the same grid."""
    found: dict[int, Problems] = {}
    for i, new in enumerate(shifts):
        other = s.scalar(select(DutyShift).where(
            DutyShift.person_id == new.person_id, DutyShift.grid_code == new.grid,
            DutyShift.starts_at < new.ends_at, DutyShift.ends_at > new.starts_at).order_by(DutyShift.starts_at))
        if other is not None:
            found[i] = {"startsAt": [f"overlaps duty shift {other.id} of the same person in grid {new.grid} "
                                     f"({other.starts_at.isoformat()} to {other.ends_at.isoformat()})"]}
            continue
        for j, earlier in enumerate(shifts[:i]):
            if (earlier.person_id, earlier.grid) == (new.person_id, new.grid) and \
                    earlier.starts_at < new.ends_at and new.starts_at < earlier.ends_at:
                found[i] = {"startsAt": [f"overlaps item {j} of this request (same person, same grid)"]}
                break
    return found


def _lock_people(s: Session, person_ids: set[int]) -> None:
    """Serialise roster changes per person (PostgreSQL row locks; SQLite's write lock does it anyway),
    so two requests cannot both find a person free and overlap."""
    if person_ids:
        s.execute(select(Person.id).where(Person.id.in_(sorted(person_ids))).order_by(Person.id).with_for_update())


def _for_change(s: Session, actor: Viewer, shift_id: int) -> tuple[DutyShift, Person]:
    shift = s.get(DutyShift, shift_id, with_for_update=True)
    person = s.get(Person, shift.person_id) if shift is not None else None
    if shift is None or person is None or not (grid_visible(actor, shift.grid_code) or person.username == actor.name):
        raise NotFound(f"duty shift {shift_id} does not exist")
    if not grid_visible(actor, shift.grid_code):  # their own shift: they may read it, not change it
        raise NotAllowed(f"grid {shift.grid_code} is outside your scope")
    return shift, person


def _chain(s: Session, code: str) -> list[str]:
    """`code` and the current grids above it, up to the city."""
    chain: list[str] = []
    current: str | None = code
    while current and current not in chain and len(chain) < 10:
        chain.append(current)
        current = s.scalar(select(Grid.parent_code).where(Grid.code == current, Grid.valid_to.is_(None)))
    return chain


def _who(person: Person) -> str:
    return f"{person.name} ({person.username or f'id {person.id}'})"


def _record(shift: DutyShift) -> dict[str, Any]:
    return {"id": shift.id, "person_id": shift.person_id, "grid": shift.grid_code, "kind": shift.kind,
            "category": shift.category, "starts_at": shift.starts_at.isoformat(), "ends_at": shift.ends_at.isoformat()}


def _audit(rt: Runtime, s: Session, actor: str, action: str, **details: Any) -> None:
    audit.append_system(rt, s, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(), details=details)])
