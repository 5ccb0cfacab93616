"""Authentication (bearer tokens for people, API keys for systems) and per-endpoint roles.

Every view declares its owner roles with `@roles(...)`; a request without credentials gets 401,
one whose principal lacks the role gets 403. The principal is kept on `flask.g` for the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from . import accounts

TOKEN_SALT = "gridloop.access"


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    scope: str | None = None  # grid code prefix the principal may see; None = everywhere
    kind: str = "user"  # user | system

    def has(self, *wanted: str) -> bool:
        return bool(self.roles.intersection(wanted))

    @property
    def sees_everything(self) -> bool:
        return self.has("admin", "leader") or self.kind == "system" or self.scope is None


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(user: accounts.User) -> str:
    return _serializer().dumps({"sub": user.username})


def _principal_from_token(token: str) -> Principal:
    try:
        data = _serializer().loads(token, max_age=current_app.config["ACCESS_TOKEN_TTL"])
    except SignatureExpired:
        raise AuthError(401, "token_expired", "the access token has expired") from None
    except BadSignature:
        raise AuthError(401, "invalid_token", "the access token is not valid") from None
    user = accounts.find_user(current_app.extensions["gridloop"].db, data.get("sub", ""))
    if user is None or not user.active:  # deactivating a user revokes their tokens at once
        raise AuthError(401, "invalid_token", "the user no longer exists or is inactive")
    return Principal(user.username, user.role_set, user.scope, "user")


def _principal_from_key(key: str) -> Principal:
    row = accounts.find_api_key(current_app.extensions["gridloop"].db, key)
    if row is None:
        raise AuthError(401, "invalid_api_key", "the API key is not valid")
    return Principal(f"system:{row.name}", row.role_set, None, "system")


def authenticate_request() -> Principal:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return _principal_from_token(header.removeprefix("Bearer ").strip())
    key = request.headers.get("X-API-Key")
    if key:
        return _principal_from_key(key.strip())
    raise AuthError(401, "unauthenticated", "send a bearer token or an X-API-Key header")


def roles(*allowed: str) -> Callable:
    """Owner roles of an endpoint. Stored on the view for the OpenAPI document and the tests."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate_request()
            if not principal.has(*allowed):
                raise AuthError(403, "forbidden", f"this endpoint needs one of the roles: {', '.join(allowed)}")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapper

    return decorate


def public(view: Callable) -> Callable:
    view.allowed_roles = ()  # type: ignore[attr-defined]
    return view


def current() -> Principal:
    return g.principal
