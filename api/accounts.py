"""People and systems that may call the API: users with password hashes and roles, API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Boolean, CursorResult, Integer, String, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from engine.db import Base, Database, UTCDateTime

ROLES = ("admin", "supervisor", "inspector", "leader", "system", "reporter")  # reporter: a citizen app's key
PERSON_ROLES = ("admin", "supervisor", "inspector", "leader")


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    roles: Mapped[str] = mapped_column(String(200))  # comma-separated
    scope: Mapped[str | None] = mapped_column(String(200))  # the grid (or subtree root) the user works in
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class LoginSession(Base):
    """One login (a browser, a phone): the access and refresh tokens issued for it carry its id, so
    revoking the row stops both at once — logout ends this session, disabling a user or resetting
    their password ends all of theirs."""

    __tablename__ = "login_session"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the refresh token's end, moved on at each refresh
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A key for a system (enforcement, monitoring). Only its SHA-256 is stored."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class AccountError(ValueError):
    pass


def _check_roles(roles: list[str], allowed: tuple[str, ...]) -> str:
    unknown = sorted(set(roles) - set(allowed))
    if unknown or not roles:
        raise AccountError(f"roles must be a non-empty subset of {', '.join(allowed)}; unknown: {unknown}")
    return ",".join(sorted(set(roles)))


PASSWORD_MIN, PASSWORD_MAX = 8, 128


def password_problem(username: str, password: str) -> str | None:
    """Why the password is refused (None: it may be used): 8 to 128 characters, not the username, and
    at least two kinds of character among letters, digits and others."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters"
    if password.strip().lower() == username.lower():
        return "the password may not be the username"
    kinds = (any(c.isalpha() for c in password), any(c.isdigit() for c in password),
             any(not c.isalnum() for c in password))
    if sum(kinds) < 2:
        return "mix at least two kinds of character: letters, digits, others"
    return None


def generate_password() -> str:
    """A one-time password that passes the policy (shown once, changed by its user)."""
    while True:
        chosen = secrets.token_urlsafe(12)
        if password_problem("", chosen) is None:
            return chosen


def password_hash(password: str, method: str = "scrypt") -> str:
    return generate_password_hash(password, method=method)


def role_list(roles: list[str]) -> str:
    """The stored form of a user's roles; AccountError unless a non-empty subset of PERSON_ROLES."""
    return _check_roles(roles, PERSON_ROLES)


def create_user(db: Database, now: datetime, *, username: str, password: str, roles: list[str],
                scope: str | None = None, display_name: str | None = None,
                hash_method: str = "scrypt") -> User:
    """`hash_method` is werkzeug's; tests pass a cheap one, production keeps scrypt."""
    problem = password_problem(username, password)
    if problem:
        raise AccountError(problem)
    user = User(username=username, display_name=display_name, roles=_check_roles(roles, PERSON_ROLES),
                password_hash=password_hash(password, hash_method), scope=scope, active=True,
                created_at=now)
    with db.transaction() as s:
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise AccountError(f"user {username!r} already exists")
        s.add(user)
    return user


_DUMMY_HASH = generate_password_hash("gridloop-no-such-user")


def authenticate(db: Database, username: str, password: str) -> User | None:
    """The user if the password matches. An unknown name costs the same hash check as a known one,
    so response times do not tell which usernames exist."""
    with db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
    matches = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not user.active or not matches:
        return None
    return user


def find_user(db: Database, username: str) -> User | None:
    with db.session() as s:
        return s.scalar(select(User).where(User.username == username))


def open_session(db: Database, username: str, now: datetime, lifetime: timedelta) -> str:
    """A new login session; the user's sessions that ended long ago are forgotten on the way."""
    sid = secrets.token_hex(16)
    with db.transaction() as s:
        s.execute(delete(LoginSession).where(LoginSession.username == username, LoginSession.expires_at < now))
        s.add(LoginSession(id=sid, username=username, created_at=now, expires_at=now + lifetime))
    return sid


def purge_sessions(db: Database, now: datetime) -> int:
    """Forget sessions whose refresh token has expired (housekeeping: a user who never logs in again
    would otherwise keep their rows)."""
    with db.transaction() as s:
        gone = cast("CursorResult[Any]", s.execute(delete(LoginSession).where(LoginSession.expires_at < now)))
        return gone.rowcount or 0


def session_active(db: Database, sid: str, username: str) -> bool:
    """Not revoked (how long a token lives is its own signed timestamp's business; `expires_at` only
    tells when the row may be forgotten)."""
    with db.session() as s:
        row = s.get(LoginSession, sid)
    return row is not None and row.username == username and row.revoked_at is None


def extend_session(db: Database, sid: str, until: datetime) -> None:
    with db.transaction() as s:
        s.execute(update(LoginSession).where(LoginSession.id == sid).values(expires_at=until))


def revoke_sessions(session: Session, username: str, now: datetime, sid: str | None = None) -> int:
    """End one session of `username` (`sid`) or all of them; how many were still open."""
    stmt = update(LoginSession).where(LoginSession.username == username, LoginSession.revoked_at.is_(None))
    if sid is not None:
        stmt = stmt.where(LoginSession.id == sid)
    revoked = cast("CursorResult[Any]", session.execute(stmt.values(revoked_at=now)))  # an UPDATE's result
    return revoked.rowcount or 0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(db: Database, now: datetime, *, name: str, roles: list[str]) -> str:
    """Create a key and return it in clear text: the only time it is ever shown."""
    key = "glk_" + secrets.token_urlsafe(32)
    with db.transaction() as s:
        if s.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
            raise AccountError(f"API key {name!r} already exists")
        s.add(ApiKey(name=name, key_hash=hash_key(key), roles=_check_roles(roles, ROLES), active=True,
                     created_at=now))
    return key


def find_api_key(db: Database, key: str) -> ApiKey | None:
    with db.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    return row if row is not None and row.active else None
