"""`Idempotency-Key` for writes a client may retry (mobile apps on bad networks, callbacks): the
first answer to a key is stored and replayed for every repeat of the same request.

The key is claimed in its own small transaction before the action runs, so two concurrent repeats
cannot both act: the second gets 409 while the first is in progress. A claim whose request crashed
is taken over after `STALE_AFTER`. Server errors (5xx) are not stored: the client may try again."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from flask import Response, current_app, g, make_response, request
from sqlalchemy import Integer, String, Text, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime

from .errors import error_body
from .http import runtime

HEADER = "Idempotency-Key"
STALE_AFTER = timedelta(seconds=60)
KEEP_FOR = timedelta(hours=24)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_record"

    principal: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))  # method, path and body of the first request
    state: Mapped[str] = mapped_column(String(10))  # started | done
    status: Mapped[int | None] = mapped_column(Integer)
    body: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def _fingerprint() -> str:
    h = hashlib.sha256()
    h.update(f"{request.method} {request.path}\n".encode())
    if request.mimetype == "multipart/form-data":
        _multipart_content(h)
    else:
        h.update(request.get_data(cache=True))
    return h.hexdigest()


def _multipart_content(h) -> None:
    """A form's fields and files, not its bytes: a client's retry picks a new random boundary, and
    that is still the same request."""
    for name, value in sorted(request.form.items(multi=True)):
        h.update(f"field {name}={value}\n".encode())
    for name, upload in sorted(request.files.items(multi=True), key=lambda item: (item[0], item[1].filename or "")):
        digest = hashlib.sha256()
        stream = upload.stream
        while chunk := stream.read(1 << 16):
            digest.update(chunk)
        stream.seek(0)
        h.update(f"file {name} {upload.filename} {upload.mimetype} {digest.hexdigest()}\n".encode())


def idempotent(view: Callable) -> Callable:
    """Apply under `@roles` (it needs the principal)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 200:
            return error_body(422, "validation_failed", "invalid Idempotency-Key",
                              fields={HEADER: ["1 to 200 characters"]})
        rt, record_key, fingerprint = runtime(), (g.principal.name, key), _fingerprint()
        now = rt.clock.now()
        replay = _claim(rt, record_key, fingerprint, now)
        if replay is not None:
            return replay
        try:
            response = view(*args, **kwargs)
        except Exception as exc:  # an error answer (4xx) is an answer: it is stored and replayed too
            try:
                response = current_app.handle_user_exception(exc)
            except Exception:
                _release(rt, record_key)
                raise
        resp = make_response(response)
        if resp.status_code >= 500:
            _release(rt, record_key)
        else:
            with rt.db.transaction() as s:
                s.execute(update(IdempotencyRecord).where(*_is(record_key)).values(
                    state="done", status=resp.status_code, body=resp.get_data(as_text=True),
                    content_type=resp.content_type))
        return resp

    wrapper.allowed_roles = getattr(view, "allowed_roles", ())  # type: ignore[attr-defined]
    return wrapper


def _claim(rt, record_key: tuple[str, str], fingerprint: str, now: datetime) -> Response | None:
    """None if the key is ours to act on; otherwise the response to give instead."""
    try:
        with rt.db.transaction() as s:
            s.add(IdempotencyRecord(principal=record_key[0], key=record_key[1], fingerprint=fingerprint,
                                    state="started", created_at=now))
        return None
    except IntegrityError:
        pass
    with rt.db.session() as s:
        rec = s.get(IdempotencyRecord, record_key)
    if rec is None:  # expired and removed in between
        return _claim(rt, record_key, fingerprint, now)
    if rec.fingerprint != fingerprint:
        return error_body(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    if rec.state == "done":
        resp = Response(rec.body, status=rec.status, content_type=rec.content_type)
        resp.headers["Idempotent-Replayed"] = "true"
        return resp
    if rec.created_at > now - STALE_AFTER:
        return error_body(409, "in_progress", "a request with this Idempotency-Key is still in progress")
    with rt.db.transaction() as s:  # the first attempt died mid-request: take the claim over
        taken = s.execute(update(IdempotencyRecord).where(
            *_is(record_key), IdempotencyRecord.state == "started",
            IdempotencyRecord.created_at == rec.created_at).values(created_at=now))
    if taken.rowcount == 1:
        return None
    return error_body(409, "in_progress", "a request with this Idempotency-Key is still in progress")


def _release(rt, record_key: tuple[str, str]) -> None:
    with rt.db.transaction() as s:
        s.execute(delete(IdempotencyRecord).where(*_is(record_key), IdempotencyRecord.state == "started"))


def _is(record_key: tuple[str, str]) -> tuple:
    return IdempotencyRecord.principal == record_key[0], IdempotencyRecord.key == record_key[1]


def purge(rt) -> int:
    """Forget answers older than KEEP_FOR (housekeeping)."""
    with rt.db.transaction() as s:
        done = s.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < rt.clock.now() - KEEP_FOR))
    return done.rowcount or 0
