"""Managing the people who log in (use cases behind /api/v1/users and /auth/logout).

Each change is one unit of work with its audit event on the system chain. A user's grid scope is a
current grid; their linked person (the roster's staff record, workflows.people.Person) is linked by
username, the name tasks are offered to. Disabling a user, or resetting their password, ends every
login session they have (their tokens stop at once, api.auth.token_claims); the last active admin
cannot be disabled or lose the role, and nobody disables themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine import audit
from engine.db import given
from engine.errors import Conflict, InvalidInput, NotFound
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from workflows.grids import Grid
from workflows.people import Person

from . import accounts
from .accounts import AccountError, User


@dataclass(frozen=True)
class UserQuery:
    role: str | None = None
    active: bool | None = None
    q: str | None = None  # part of the username or display name


@dataclass(frozen=True)
class UserRow:
    user: User
    person: Person | None


@dataclass(frozen=True)
class NewUser:
    username: str
    roles: list[str]
    display_name: str | None = None
    scope: str | None = None
    person_id: int | None = None
    password: str | None = None  # None: one is generated and answered once


# -- reading ---------------------------------------------------------------------------------------

def list_users(rt: Runtime, q: UserQuery, offset: int, limit: int) -> tuple[list[UserRow], int]:
    like = f"%{q.q}%" if q.q else None
    stmt = select(User).where(*given(
        User.roles.contains(q.role, autoescape=True) if q.role else None,
        User.active.is_(q.active) if q.active is not None else None,
        or_(User.username.ilike(like), User.display_name.ilike(like)) if like else None))
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        users = s.scalars(stmt.order_by(User.username).offset(offset).limit(limit)).all()
        people = _people_of(s, [u.username for u in users])
    return [UserRow(u, people.get(u.username)) for u in users], total


def get_user(rt: Runtime, user_id: int) -> UserRow:
    with rt.db.session() as s:
        return _row(s, _user(s, user_id))


# -- changing --------------------------------------------------------------------------------------

def create_user(rt: Runtime, actor: str, new: NewUser) -> tuple[UserRow, str | None]:
    """The new user, and the generated password when none was given (shown this once)."""
    generated = None if new.password is not None else accounts.generate_password()
    password = new.password if new.password is not None else generated
    problem = accounts.password_problem(new.username, password or "")
    if problem:
        raise InvalidInput(problem, fields=["password"])
    roles = _roles(new.roles)
    digest = accounts.password_hash(password or "")  # slow on purpose: outside the transaction
    with UnitOfWork(rt) as uow:
        s = uow.session
        if s.scalar(select(User.id).where(func.lower(User.username) == new.username.lower())) is not None:
            raise Conflict(f"user {new.username!r} already exists", fields=["username"])
        _check_scope(s, new.scope)
        person = _check_person(s, new.person_id, new.username, new.scope) if new.person_id is not None else None
        user = User(username=new.username, display_name=new.display_name, password_hash=digest, roles=roles,
                    scope=new.scope, active=True, created_at=rt.clock.now())
        s.add(user)
        if person is not None:
            person.username = new.username
        try:
            s.flush()
        except IntegrityError:  # a concurrent request took the name (or the person) first
            raise Conflict(f"user {new.username!r} already exists", fields=["username"]) from None
        _audit(rt, s, actor, "user.created", user=new.username, roles=roles, scope=new.scope,
               person=new.person_id, password="generated" if generated else "given")
        row = _row(s, user)
        uow.commit()
    return row, generated


CHANGEABLE = ("roles", "scope", "display_name", "person_id")


def change_user(rt: Runtime, actor: str, user_id: int, changes: Mapping[str, Any]) -> UserRow:
    """Change the roles, scope, display name or linked person (None unlinks) given in `changes`."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        user = _user(s, user_id, lock=True)
        before: dict[str, Any] = {"roles": user.roles, "scope": user.scope, "display_name": user.display_name}
        if "roles" in changes:
            roles = _roles(changes["roles"])
            if "admin" in user.role_set and "admin" not in roles.split(","):
                _keep_an_admin(s, user, "roles")
            user.roles = roles
        if "scope" in changes:
            _check_scope(s, changes["scope"])
            user.scope = changes["scope"]
        if "display_name" in changes:
            user.display_name = changes["display_name"]
        if "person_id" in changes:
            before["person"] = _relink(s, user, changes["person_id"])
        after = {"roles": user.roles, "scope": user.scope, "display_name": user.display_name,
                 "person": changes.get("person_id", before.get("person"))}
        _audit(rt, s, actor, "user.changed", user=user.username, before=before, after=after)
        s.flush()
        row = _row(s, user)
        uow.commit()
    return row


def set_active(rt: Runtime, actor: str, user_id: int, active: bool) -> UserRow:
    """Enable or disable a user; disabling ends their sessions. Repeating either is a no-op."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        user = _user(s, user_id, lock=True)
        if user.active == active:
            row = _row(s, user)
            uow.commit()  # nothing written; committing keeps the row readable after the session
            return row
        if not active:
            if user.username == actor:
                raise Conflict("you cannot disable yourself", fields=["id"])
            if "admin" in user.role_set:
                _keep_an_admin(s, user, "id")
            ended = accounts.revoke_sessions(s, user.username, rt.clock.now())
        user.active = active
        _audit(rt, s, actor, "user.enabled" if active else "user.disabled", user=user.username,
               **({} if active else {"sessions_ended": ended}))
        row = _row(s, user)
        uow.commit()
    return row


def reset_password(rt: Runtime, actor: str, user_id: int, password: str | None) -> tuple[UserRow, str | None]:
    """Set a new password (generated when None, and answered this once); ends the user's sessions."""
    with rt.db.session() as s:
        username = _user(s, user_id).username
    generated = None if password is not None else accounts.generate_password()
    chosen = password if password is not None else generated
    problem = accounts.password_problem(username, chosen or "")
    if problem:
        raise InvalidInput(problem, fields=["password"])
    digest = accounts.password_hash(chosen or "")
    with UnitOfWork(rt) as uow:
        s = uow.session
        user = _user(s, user_id, lock=True)
        user.password_hash = digest
        ended = accounts.revoke_sessions(s, user.username, rt.clock.now())
        _audit(rt, s, actor, "user.password_reset", user=user.username, sessions_ended=ended,
               password="generated" if generated else "given")
        row = _row(s, user)
        uow.commit()
    return row, generated


def logout_user(rt: Runtime, username: str, session: str | None) -> int:
    """End one login session of `username` (None: all of them); how many were open."""
    with UnitOfWork(rt) as uow:
        ended = accounts.revoke_sessions(uow.session, username, rt.clock.now(), session)
        _audit(rt, uow.session, username, "user.logout", user=username, sessions_ended=ended,
               scope="all" if session is None else "this")
        uow.commit()
    return ended


# -- helpers ---------------------------------------------------------------------------------------

def _user(s: Session, user_id: int, *, lock: bool = False) -> User:
    user = s.get(User, user_id, with_for_update=lock)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def _people_of(s: Session, usernames: list[str]) -> dict[str, Person]:
    if not usernames:
        return {}
    found = s.scalars(select(Person).where(Person.username.in_(usernames)))
    return {p.username: p for p in found if p.username is not None}


def _row(s: Session, user: User) -> UserRow:
    return UserRow(user, _people_of(s, [user.username]).get(user.username))


def _roles(roles: list[str]) -> str:
    try:
        return accounts.role_list(roles)
    except AccountError as exc:
        raise InvalidInput(str(exc), fields=["roles"]) from None


def _check_scope(s: Session, scope: str | None) -> None:
    if scope is None:
        return
    if s.scalar(select(Grid.id).where(Grid.code == scope, Grid.valid_to.is_(None))) is None:
        raise InvalidInput(f"scope {scope!r} is not a current grid's code", fields=["scope"])


def _check_person(s: Session, person_id: int, username: str, scope: str | None) -> Person:
    """The person to link to `username`: existing, in the scope, and not known by another name (tasks
    and rosters name people by username: relinking would strand what was offered to the old name)."""
    person = s.get(Person, person_id, with_for_update=True)
    if person is None:
        raise InvalidInput(f"person {person_id} does not exist", fields=["personId"])
    if scope is not None and not person.grid_code.startswith(scope):
        raise InvalidInput(f"person {person_id} works in grid {person.grid_code}, outside the scope {scope}",
                           fields=["personId"])
    if person.username not in (None, username):
        taken = s.scalar(select(User.id).where(User.username == person.username)) is not None
        raise Conflict(f"person {person_id} is linked to the login {person.username!r}" if taken else
                       f"person {person_id} is known as {person.username!r} (their tasks and shifts use that "
                       "name): give the login that username", fields=["personId"])
    return person


def _relink(s: Session, user: User, person_id: int | None) -> int | None:
    """Link `person_id` to the user (None: unlink); the previously linked person's id."""
    current = _people_of(s, [user.username]).get(user.username)
    if current is not None and current.id != person_id:
        current.username = None
        s.flush()  # the name is free before another person takes it (a unique column)
    if person_id is not None and (current is None or current.id != person_id):
        _check_person(s, person_id, user.username, user.scope).username = user.username
    return current.id if current is not None else None


def _keep_an_admin(s: Session, user: User, field: str) -> None:
    admins = s.scalars(select(User).where(User.active.is_(True), User.roles.contains("admin"),
                                          User.id != user.id).with_for_update()).all()
    if not any("admin" in u.role_set for u in admins):
        raise Conflict(f"{user.username} is the last active admin", fields=[field])


def _audit(rt: Runtime, s: Session, actor: str, action: str, **details: Any) -> None:
    audit.append_system(rt, s, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(), details=details)])
