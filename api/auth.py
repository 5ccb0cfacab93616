"""Authentication (bearer tokens for people, API keys for systems) and per-endpoint roles.

Every view declares its owner roles with `@roles(...)`; a request without credentials gets 401,
one whose principal lacks the role gets 403. The principal is kept on `flask.g` for the request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from engine.visibility import Viewer
from workflows.people import staff_viewer

from . import accounts

ACCESS_SALT = "gridloop.access"
REFRESH_SALT = "gridloop.refresh"  # a refresh token is never accepted as an access token, nor the reverse


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    scope: str | None = None  # grid code prefix the principal may see; None = everywhere
    kind: str = "user"  # user | system
    session: str | None = None  # the login session a user's token belongs to (accounts.LoginSession)

    def has(self, *wanted: str) -> bool:
        return bool(self.roles.intersection(wanted))

    @property
    def viewer(self) -> Viewer:
        """What this principal may see (workflows.people.staff_viewer)."""
        return staff_viewer(self.name, self.roles, self.scope)


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _now() -> datetime:
    """Wall-clock time, as the tokens' signed timestamps use (not the runtime's clock, which tests move)."""
    return datetime.now(UTC)


def issue_tokens(user: accounts.User, session: str | None = None) -> dict[str, object]:
    """An access token for requests and a longer-lived refresh token to get the next one, both bound
    to a login session: a new one at login (`session` None), the same one, extended, at refresh."""
    db, ttl = current_app.extensions["gridloop"].db, current_app.config["REFRESH_TOKEN_TTL"]
    if session is None:
        session = accounts.open_session(db, user.username, _now(), timedelta(seconds=ttl))
    else:
        accounts.extend_session(db, session, _now() + timedelta(seconds=ttl))
    claims = {"sub": user.username, "sid": session}
    return {"access_token": _serializer(ACCESS_SALT).dumps(claims), "token_type": "Bearer",
            "expires_in": current_app.config["ACCESS_TOKEN_TTL"],
            "refresh_token": _serializer(REFRESH_SALT).dumps(claims),
            "refresh_expires_in": ttl, "roles": sorted(user.role_set)}


def token_claims(token: str, *, refresh: bool = False) -> tuple[accounts.User, str]:
    """The user and login session of a token. Refused (401) when the token is bad or old, the user is
    gone or disabled, or the session was revoked (logout, disable, password reset): at once, not when
    the access token runs out."""
    kind = "refresh" if refresh else "access"
    ttl = current_app.config["REFRESH_TOKEN_TTL" if refresh else "ACCESS_TOKEN_TTL"]
    try:
        data = _serializer(REFRESH_SALT if refresh else ACCESS_SALT).loads(token, max_age=ttl)
    except SignatureExpired:
        raise AuthError(401, "token_expired", f"the {kind} token has expired") from None
    except BadSignature:
        raise AuthError(401, "invalid_token", f"the {kind} token is not valid") from None
    db = current_app.extensions["gridloop"].db
    user = accounts.find_user(db, data.get("sub", ""))
    if user is None or not user.active:  # deactivating a user revokes their tokens at once
        raise AuthError(401, "invalid_token", "the user no longer exists or is inactive")
    sid = data.get("sid")
    if not isinstance(sid, str) or not accounts.session_active(db, sid, user.username):
        raise AuthError(401, "invalid_token", f"the {kind} token's session has ended (logged out); log in again")
    return user, sid


def user_from_token(token: str, *, refresh: bool = False) -> accounts.User:
    return token_claims(token, refresh=refresh)[0]


def _principal_from_token(token: str) -> Principal:
    user, sid = token_claims(token)
    return Principal(user.username, user.role_set, user.scope, "user", sid)


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
