"""首页 pushed live: Server-Sent Events carrying the home lists (home.home_lists) whenever they change.

EventSource cannot send an Authorization header, and a bearer token in a URL ends up in logs and
history, so a stream opens with a one-time ticket: `POST /home/stream-ticket` (bearer token, the
roles of /home) answers a signed ticket valid for TICKET_TTL_S and good for one connection
(remembered in Redis when there is one, else in the process — the embedded server is one process).
The stream watches a cheap change counter, the newest audit event id (every change appends one),
every POLL_S; on a change, and every REFRESH_S for work turning overdue, it recomputes the lists and
sends them if they differ. Each stream holds a web thread, so a process serves at most MAX_STREAMS
(then 503 and the console polls /home) and a stream ends after MAX_LIFE_S (the console reconnects
with a new ticket; a deactivated user's reconnect is refused).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Generator, Iterator

from flask import Blueprint, Response, current_app, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from marshmallow import fields
from sqlalchemy import func, select

from engine.models import AuditEvent
from engine.runtime import Runtime
from engine.visibility import Viewer

from .. import accounts
from ..auth import AuthError, Principal, current, public, roles
from ..errors import error_body
from ..http import doc, json_body, runtime
from ..ratelimit import shared_redis
from ..schemas import Strict
from .grids import TENANT
from .home import home_lists

log = logging.getLogger(__name__)

HOME_ROLES = ("supervisor", "admin", "leader")
TICKET_SALT = "gridloop.home-stream"
TICKET_TTL_S = 30
POLL_S = 1.0
REFRESH_S = 30.0
KEEPALIVE_S = 15.0
MAX_LIFE_S = 300.0
MAX_STREAMS = 4
LIST_LIMIT = 20


class TicketBody(Strict):
    tenant = fields.String(required=True, validate=TENANT)


class TicketView(Strict):
    ticket = fields.String()
    expires_in = fields.Integer(data_key="expiresIn")
    url = fields.String()


bp = Blueprint("home_stream", __name__, url_prefix="/api/v1/home")


@bp.record_once
def _state(setup) -> None:
    setup.app.extensions["gridloop.home_streams"] = _Streams()


class _Streams:
    """Open streams of this process, and the tickets already used (when there is no Redis)."""

    def __init__(self) -> None:
        self.slots = threading.BoundedSemaphore(MAX_STREAMS)
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, nonce: str) -> bool:
        redis = shared_redis(current_app)
        if redis is not None:
            try:
                return bool(redis.set(f"gridloop:stream-ticket:{nonce}", 1, nx=True, ex=TICKET_TTL_S * 2))
            except Exception:  # Redis down: fall back to this process's memory, as the rate limits do
                log.warning("redis unreachable: stream tickets checked in this process only")
        now = time.monotonic()
        with self._lock:
            self._used = {n: t for n, t in self._used.items() if now - t < TICKET_TTL_S * 2}
            if nonce in self._used:
                return False
            self._used[nonce] = now
            return True


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TICKET_SALT)


@bp.post("/stream-ticket")
@roles(*HOME_ROLES)
@doc("A one-time ticket to open the live home stream (EventSource cannot send a bearer token)",
     body=TicketBody, response=TicketView, status=201)
def stream_ticket():
    args = json_body(TicketBody())
    me = current()
    ticket = _serializer().dumps({"sub": me.name, "sid": me.session, "tenant": args["tenant"],
                                  "n": secrets.token_urlsafe(16)})
    return jsonify(TicketView().dump({"ticket": ticket, "expires_in": TICKET_TTL_S,
                                      "url": f"/api/v1/home/stream?ticket={ticket}"})), 201


@bp.get("/stream")
@public  # the credential is the one-time ticket, issued to the roles of /home only
@doc("The home lists as Server-Sent Events (event 'home'), sent again whenever they change",
     content_type="text/event-stream")
def stream():
    claims = _redeem(request.args.get("ticket", ""))
    user = accounts.find_user(runtime().db, claims["sub"])
    if user is None or not user.active or not user.role_set.intersection(HOME_ROLES):
        raise AuthError(401, "invalid_token", "the user no longer exists, is inactive or lost the role")
    login = _Login(user.username, claims.get("sid"))
    if not login.active(runtime()):
        raise AuthError(401, "invalid_token", "the session the ticket was issued to has ended; log in again")
    streams: _Streams = current_app.extensions["gridloop.home_streams"]
    if not streams.slots.acquire(blocking=False):
        resp = error_body(503, "busy", f"this process already serves {MAX_STREAMS} live streams; poll /home")
        resp[0].headers["Retry-After"] = "30"
        return resp

    viewer = Principal(user.username, user.role_set, user.scope).viewer
    body = _Started(_events(runtime(), viewer, claims["tenant"], streams, login))
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class _Started:
    """The event generator, already inside its try: closing the response, even unread, frees its slot.
    (It needs no request context: it holds what it reads.)"""

    def __init__(self, events: Generator[str, None, None]) -> None:
        self._events = events
        self._first = next(events)

    def __iter__(self) -> Iterator[str]:
        yield self._first
        yield from self._events

    def close(self) -> None:
        self._events.close()


def _redeem(ticket: str) -> dict:
    try:
        claims = _serializer().loads(ticket, max_age=TICKET_TTL_S)
    except SignatureExpired:
        raise AuthError(401, "ticket_expired", "the stream ticket has expired: ask for a new one") from None
    except BadSignature:
        raise AuthError(401, "invalid_ticket", "send ?ticket= from POST /api/v1/home/stream-ticket") from None
    streams: _Streams = current_app.extensions["gridloop.home_streams"]
    if not streams.first_use(claims["n"]):
        raise AuthError(401, "ticket_used", "the stream ticket was used already: ask for a new one")
    return claims


class _Login:
    """Whose stream it is: checked again whenever the lists are recomputed, so a logout, a disabled
    user or a password reset ends an open stream within REFRESH_S, not only its reconnect."""

    def __init__(self, username: str, session: str | None) -> None:
        self.username, self.session = username, session

    def active(self, rt: Runtime) -> bool:
        return self.session is None or accounts.session_active(rt.db, self.session, self.username)


def _events(rt: Runtime, viewer: Viewer, tenant: str, streams: _Streams, login: _Login) -> Generator[str, None, None]:
    """`retry:` then the lists at once, then again each time they change; a comment keeps proxies open."""
    started = last_sent_at = last_refresh = time.monotonic()
    try:
        yield f"retry: {int(POLL_S * 3000)}\n\n"
        counter, sent = _counter(rt), None
        while time.monotonic() - started < MAX_LIFE_S:
            now = time.monotonic()
            latest = _counter(rt)
            if sent is None or latest != counter or now - last_refresh >= REFRESH_S:
                if sent is not None and not login.active(rt):
                    yield "event: ended\ndata: {}\n\n"
                    return
                counter, last_refresh = latest, now
                lists = home_lists(rt, viewer, tenant, LIST_LIMIT)
                if lists != sent:
                    sent, last_sent_at = lists, now
                    yield f"event: home\nid: {counter}\ndata: {json.dumps(lists, ensure_ascii=False)}\n\n"
            if now - last_sent_at >= KEEPALIVE_S:
                last_sent_at = now
                yield ": keepalive\n\n"
            time.sleep(POLL_S)
        yield "event: bye\ndata: {}\n\n"
    finally:
        streams.slots.release()


def _counter(rt: Runtime) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.max(AuditEvent.id))) or 0
