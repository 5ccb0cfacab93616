"""People and systems that may call the API: users with password hashes and roles, API keys."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import Boolean, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column
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


def create_user(db: Database, now: datetime, *, username: str, password: str, roles: list[str],
                scope: str | None = None, display_name: str | None = None,
                hash_method: str = "scrypt") -> User:
    """`hash_method` is werkzeug's; tests pass a cheap one, production keeps scrypt."""
    if len(password) < 8:
        raise AccountError("password must have at least 8 characters")
    user = User(username=username, display_name=display_name, roles=_check_roles(roles, PERSON_ROLES),
                password_hash=generate_password_hash(password, method=hash_method), scope=scope, active=True,
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
