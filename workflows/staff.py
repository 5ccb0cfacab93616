"""The staff register (人员名册): the inspectors, supervisors, leaders and admins of a city with their
grid, department and the channels notices reach them on — what routing, duty rosters and notices
read. Use cases behind /api/v1/staff: list and read within the viewer's area; add one; import a
roster (all or nothing); change one.

Each change is one unit of work with its audit event on the system chain. Contact details are
personal data: the audit trail records that a phone number or WeChat Work id changed and its last
four characters (none of a short one), never the whole value. A member of staff is never deleted
(cases, shifts and figures name them); one who leaves is made inactive, and routing and notices
pass them by.

A supervisor keeps the register of their own area (inspectors and supervisors); posts above that,
and staff anywhere, are an admin's. The username is the name tasks, shifts and a login know the
person by: it can be given once, and is not changed after (what was offered to the old name would
be stranded)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import audit
from engine.db import given
from engine.errors import Conflict, EngineError, InvalidInput, NotAllowed, NotFound
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from engine.visibility import Viewer, grid_filter, grid_visible
from notifications.models import masked

from .grids import Grid
from .items import Items, by_index
from .notices import CHANNEL_ORDER, chosen_channels
from .people import LOGINS, POSTS, Department, Person

SUPERVISED_POSTS = ("inspector", "supervisor")  # the posts a supervisor registers in their own area
CHANNELS = CHANNEL_ORDER  # the staff channels, each with its address field
ADDRESS_OF = {"wechat_work": "wecom_id", "sms": "phone"}
FIELD_NAMES = {"wecom_id": "wecomId", "phone": "phone"}  # the API's names of the address columns
# A mobile number SMS can reach: a mainland one (11 digits, with or without +86), or E.164 elsewhere
PHONE = re.compile(r"^(\+86)?1[3-9][0-9]{9}\Z|^\+(?!86)[1-9][0-9]{6,14}\Z")  # ASCII digits: \d takes ８ too


@dataclass(frozen=True)
class NewPerson:
    tenant: str
    name: str
    post: str
    grid: str
    username: str | None = None
    department: str | None = None
    phone: str | None = None
    wecom_id: str | None = None
    channels: list[str] | None = None  # by preference; None: WeChat Work, then SMS
    active: bool = True


@dataclass(frozen=True)
class StaffQuery:
    tenant: str
    grid: str | None = None  # this grid and the grids under it
    post: str | None = None
    active: bool | None = None
    q: str | None = None  # part of the name or username
    unreachable: bool = False  # only those no notice can reach (no address for any of their channels)


def normal_phone(value: str) -> str:
    """A phone number as stored, in E.164 (Twilio needs it; Aliyun takes +86 too): spaces, dashes and
    brackets dropped, +86 before a mainland number. InvalidInput unless a mobile number."""
    digits = re.sub(r"[\s()-]", "", value)
    if not PHONE.match(digits):
        raise InvalidInput("a mobile number: 11 digits beginning with 1 (+86 optional), or +<country><number>",
                           fields=["phone"])
    return digits if digits.startswith("+") else f"+86{digits}"


# -- reading ---------------------------------------------------------------------------------------

def list_staff(rt: Runtime, viewer: Viewer, q: StaffQuery, offset: int, limit: int) -> tuple[list[Person], int]:
    """The staff of `q.tenant` in the viewer's area, by grid and name."""
    like = f"%{q.q}%" if q.q else None
    stmt = select(Person).where(Person.tenant == q.tenant, grid_filter(viewer, Person.grid_code), *given(
        Person.grid_code.startswith(q.grid, autoescape=True) if q.grid else None,
        Person.post == q.post if q.post else None,
        Person.active.is_(q.active) if q.active is not None else None,
        or_(Person.name.ilike(like), Person.username.ilike(like)) if like else None,
        _unreachable() if q.unreachable else None))
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        people = s.scalars(stmt.order_by(Person.grid_code, Person.name, Person.id).offset(offset).limit(limit)).all()
    return list(people), total


def person_of(rt: Runtime, viewer: Viewer, person_id: int) -> Person:
    with rt.db.session() as s:
        return _visible(s, viewer, person_id)


def _unreachable():
    """No address on any channel the person has chosen (or on either, when they chose none). Channels
    are checked when saved, so only a person without any address matches."""
    return (func.coalesce(Person.phone, "") == "") & (func.coalesce(Person.wecom_id, "") == "")


# -- changing --------------------------------------------------------------------------------------

def add_person(rt: Runtime, actor: Viewer, new: NewPerson) -> Person:
    """Register a member of staff. InvalidInput names each field at fault; NotAllowed a grid outside
    the actor's area or a post a supervisor does not register; Conflict a username already taken."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        values = _registered(s, actor, new)
        person = Person(**values)
        s.add(person)
        _flush(s)
        _audit(rt, s, actor.name, "staff.added", person=person.id, **_recorded(values))
        uow.commit()
    return person


def import_staff(rt: Runtime, actor: Viewer, people: Items) -> list[Person]:
    """Register a city's roster at once, all or nothing: a refusal names every item's problems by index
    — 403 when any item is outside the actor's area, else 422, or 409 when each is a username taken."""
    if not people.count:
        raise InvalidInput("give at least one person", fields={"_schema": ["give at least one person"]})
    problems: dict[int, Any] = dict(people.refused)
    kinds: set[type[EngineError]] = {InvalidInput} if problems else set()
    with UnitOfWork(rt) as uow:
        s = uow.session
        registered: list[dict[str, Any]] = []
        first: dict[str, int] = {}  # lower-cased username → the item that has it first
        for i, new in people.loaded:
            try:
                registered.append(_registered(s, actor, new))
                if new.username is not None and first.setdefault(new.username.lower(), i) != i:
                    raise Conflict(f"the username of item {first[new.username.lower()]} again", fields=["username"])
            except (InvalidInput, NotAllowed, Conflict) as exc:
                problems[i], kinds = exc.fields or {"_schema": [exc.message]}, kinds | {type(exc)}
        if problems:
            refusal = NotAllowed if NotAllowed in kinds else InvalidInput if InvalidInput in kinds else Conflict
            raise refusal(f"the import was refused ({len(problems)} of {people.count} people); nothing was changed",
                          fields=by_index(problems))
        persons = [Person(**values) for values in registered]
        s.add_all(persons)
        _flush(s)
        _audit(rt, s, actor.name, "staff.imported", count=len(persons),
               people=[{"person": p.id, **_recorded(v)} for p, v in zip(persons, registered, strict=True)])
        uow.commit()
    return persons


def _registered(s: Session, actor: Viewer, new: NewPerson) -> dict[str, Any]:
    """The columns of a new person, every rule checked."""
    _may_register(actor, new.grid, new.post)
    values = {"tenant": new.tenant, "name": new.name.strip(), "post": new.post, "grid_code": new.grid,
              "username": new.username, "department_code": new.department,
              "phone": normal_phone(new.phone) if new.phone else None, "wecom_id": new.wecom_id or None,
              "channels": _channels(new.channels), "active": new.active}
    _check(s, values)
    _check_username(s, actor, values)
    return values


_COLUMN = {"grid": "grid_code", "department": "department_code"}
COLUMNS = ("tenant", "name", "post", "grid_code", "username", "department_code", "phone", "wecom_id", "channels",
           "active")


def change_person(rt: Runtime, actor: Viewer, person_id: int, changes: Mapping[str, Any]) -> Person:
    """Change the fields given in `changes` (None clears an optional one). The person must be in the
    actor's area before and after, with a post the actor registers."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        person = _visible(s, actor, person_id, lock=True)
        _may_register(actor, person.grid_code, person.post)
        before = {column: getattr(person, column) for column in COLUMNS}
        values = dict(before)
        for name, value in changes.items():
            column = _COLUMN.get(name, name)
            if name == "name":
                value = value.strip()
            elif name == "phone" and value:
                value = normal_phone(value)
            elif name == "channels":
                value = _channels(value)
            elif name == "wecom_id":
                value = value or None
            values[column] = value
        _may_register(actor, values["grid_code"], values["post"])
        if before["username"] is not None and values["username"] != before["username"]:
            raise Conflict(f"person {person_id} is known as {before['username']!r} (their tasks and shifts use "
                           "that name): it is not changed", fields=["username"])
        _check(s, values, before)
        _check_username(s, actor, values, before)
        changed = {column for column in values if values[column] != before[column]}
        if changed:
            for column in changed:
                setattr(person, column, values[column])
            _flush(s)
            _audit(rt, s, actor.name, "staff.changed", person=person.id,
                   before=_recorded({c: before[c] for c in sorted(changed)}),
                   after=_recorded({c: values[c] for c in sorted(changed)}))
        uow.commit()
    return person


# -- rules -----------------------------------------------------------------------------------------

def _may_register(actor: Viewer, grid: str, post: str) -> None:
    if not grid_visible(actor, grid):
        raise NotAllowed(f"grid {grid} is outside your area ({actor.scope or 'none'})", fields=["grid"])
    if "admin" not in actor.roles and post not in SUPERVISED_POSTS:
        raise NotAllowed(f"a {post} is registered by an admin", fields=["post"])


def _check(s: Session, values: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> None:
    """Every problem of the person's values at once, by field (the API's names). A change checks what
    it changes: someone whose grid was since redrawn can still be made inactive."""
    def changed(column: str) -> bool:
        return before is None or values[column] != before[column]

    problems: dict[str, Any] = {}
    if changed("grid_code"):
        grid = s.scalar(select(Grid).where(Grid.code == values["grid_code"], Grid.valid_to.is_(None)))
        if grid is None:
            problems["grid"] = [f"{values['grid_code']!r} is not a current grid's code"]
        elif grid.tenant != values["tenant"]:
            problems["grid"] = [f"grid {grid.code} belongs to tenant {grid.tenant}, not {values['tenant']}"]
    if values["post"] not in POSTS:
        problems["post"] = [f"one of {', '.join(POSTS)}"]
    if values["department_code"] is not None and changed("department_code"):
        department = s.get(Department, values["department_code"])
        if department is None or department.tenant != values["tenant"]:
            problems["department"] = [f"{values['department_code']!r} is not a department of tenant "
                                      f"{values['tenant']}"]
    unaddressed = {}
    for i, channel in enumerate(chosen_channels(values["channels"])):
        if channel not in ADDRESS_OF:
            unaddressed[str(i)] = [f"one of {', '.join(CHANNELS)}"]
        elif not values[ADDRESS_OF[channel]]:
            unaddressed[str(i)] = [f"{channel} needs {FIELD_NAMES[ADDRESS_OF[channel]]}"]
    if unaddressed:
        problems["channels"] = unaddressed
    if problems:
        raise InvalidInput("; ".join(_said(problems)), fields=problems)


def _check_username(s: Session, actor: Viewer, values: Mapping[str, Any],
                    before: Mapping[str, Any] | None = None) -> None:
    """A username given is nobody else's, whatever its case. When a login has it, the person becomes
    that login's (its tasks, notices, figures): the login must be spelt so, work where the person
    does, and lie in the actor's area unless an admin links it — nobody takes over a login of
    another area, or an admin's, by registering a person under its name."""
    username = values["username"]
    named = before is None or username != before["username"]
    moved = before is not None and values["grid_code"] != before["grid_code"]
    if username is None or not (named or moved):
        return
    if named and s.scalar(select(Person.id).where(func.lower(Person.username) == username.lower())) is not None:
        raise Conflict("someone is already known by this username", fields=["username"])
    login = s.execute(select(LOGINS.c.username, LOGINS.c.scope)
                      .where(func.lower(LOGINS.c.username) == username.lower())).first()
    if login is None:
        return
    if "admin" not in actor.roles and not (login.scope and grid_visible(actor, login.scope)):
        raise NotAllowed("this username is a login's outside your area: an admin links it", fields=["username"])
    if login.username != username:
        raise InvalidInput(f"the login is spelt {login.username!r}: give the username exactly so",
                           fields=["username"])
    if login.scope and not values["grid_code"].startswith(login.scope):
        raise InvalidInput(f"the login {username!r} works in grid {login.scope}; {values['grid_code']} is outside "
                           "it", fields=["username"])


def _said(problems: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Each problem as `field: message` (a list item as `channels.1`)."""
    said = []
    for name, value in problems.items():
        said += _said(value, f"{prefix}{name}.") if isinstance(value, Mapping) else [f"{prefix}{name}: {value[0]}"]
    return said


def _channels(channels: Sequence[str] | None) -> str | None:
    if not channels:
        return None
    # an unknown channel is refused, by index, with the rest of the person's values (_check)
    if len(set(channels)) != len(channels):
        raise InvalidInput("a channel is named once", fields=["channels"])
    return ",".join(channels)


def _flush(s: Session) -> None:
    try:
        s.flush()
    except IntegrityError:  # a concurrent request registered the name first
        raise Conflict("someone is already known by this username", fields=["username"]) from None


def _visible(s: Session, viewer: Viewer, person_id: int, *, lock: bool = False) -> Person:
    person = s.get(Person, person_id, with_for_update=lock)
    if person is None or not grid_visible(viewer, person.grid_code):
        raise NotFound(f"person {person_id} does not exist")  # outside the area: as if not there
    return person


def _recorded(values: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit trail keeps of `values`: contact addresses masked."""
    return {k: masked(v) if k in ("phone", "wecom_id") and v else v for k, v in values.items()}


def _audit(rt: Runtime, s: Session, actor: str, action: str, **details: Any) -> None:
    audit.append_system(rt, s, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(), details=details)])
