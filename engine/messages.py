"""Message correlation: (name, correlation value) → the waiting instance by one index lookup.
A message nobody waits for yet is buffered until its TTL; a repeated message id is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.exc import IntegrityError

from . import audit, outbox
from .change import PI, Abandon, Lock, change_instance
from .db import Prepared, insert_all
from .errors import EngineError, InvalidInput, NotFound
from .jobs import job_incident
from .models import Message, MessageSubscription
from .outgoing import MESSAGE_JOB, QUEUE
from .readmodels import correlation_lock_key, deliver
from .runtime import Runtime
from .spiff_specs import find_task
from .start_events import start_by_message

if TYPE_CHECKING:
    from sqlalchemy import CursorResult

MSG = cast(Table, Message.__table__)
SUB = cast(Table, MessageSubscription.__table__)
_SUBSCRIBED = (SUB.c.message_name == bindparam("name")) & (SUB.c.correlation_value == bindparam("value"))
# A suspended instance takes messages into the buffer only (engine/suspension.py delivers them).
_TAKING = exists().where(_SUBSCRIBED, PI.c.id == SUB.c.instance_id, PI.c.suspended.is_(False))
# One look before any lock: the message as already seen (by id), and whether anything waits for it.
_LOOK = Prepared(select(
    select(MSG.c.status).where(MSG.c.id == bindparam("message_id")).scalar_subquery().label("status"),
    select(MSG.c.instance_id).where(MSG.c.id == bindparam("message_id")).scalar_subquery().label("instance_id"),
    _TAKING.label("waiting"),
))
_LOCK_THROUGH_SUBSCRIPTION = Prepared(select(*PI.c).where(PI.c.id == select(SUB.c.instance_id).where(_SUBSCRIBED)
                                                          .scalar_subquery()).with_for_update())
# Read after the instance lock is held: a concurrent delivery may have consumed the subscription, or
# delivered this very message, meanwhile (no row then).
_SUBSCRIPTION_UNLESS_SEEN = Prepared(select(SUB.c.instance_id, SUB.c.task_id)
                                      .where(_SUBSCRIBED, ~exists().where(MSG.c.id == bindparam("message_id"))))
_INSERT_MESSAGE = Prepared(insert_all(MSG))


@dataclass
class Correlated:
    message_id: str
    status: str  # delivered | buffered
    instance_id: str | None
    duplicate: bool = False


def correlate(rt: Runtime, *, name: str, message_id: str, actor: str, correlation_value: str | None = None,
              instance_id: str | None = None, payload: dict[str, Any] | None = None,
              ttl: timedelta | None = None) -> Correlated:
    if (correlation_value is None) == (instance_id is None):
        raise InvalidInput("give exactly one of correlation value or process instance id")
    value = correlation_value if correlation_value is not None else f"#{instance_id}"
    payload = dict(payload or {})
    for _attempt in range(3):
        with rt.db.read() as conn:
            (look,) = rt.db.rows(conn, _LOOK, {"message_id": message_id, "name": name, "value": value})
        if look["status"] is not None:
            return Correlated(message_id, look["status"], look["instance_id"], duplicate=True)
        if look["waiting"]:
            delivered = _deliver(rt, name, value, message_id, payload, actor)
        else:
            delivered = (_start(rt, name, value, message_id, payload, actor)
                         or _buffer(rt, name, value, message_id, payload, actor, ttl or rt.message_ttl))
        if delivered is not None:
            return delivered
    raise InvalidInput("the waiting instance kept changing; try again")  # pragma: no cover - a race thrice


def _seen(rt: Runtime, message_id: str) -> Correlated | None:
    with rt.db.session() as s:
        m = s.get(Message, message_id)
    return None if m is None else Correlated(m.id, m.status, m.instance_id, duplicate=True)


def _deliver(rt: Runtime, name: str, value: str, message_id: str, payload: dict[str, Any],
             actor: str) -> Correlated | None:
    """Deliver under the instance lock (taken through the subscription in one statement); None if the
    subscription vanished in between, so the caller looks again."""
    keys = {"name": name, "value": value}
    try:
        with change_instance(rt, "", actor, lock=Lock(_LOCK_THROUGH_SUBSCRIPTION, keys)) as ch:
            found = rt.db.rows(ch.conn, _SUBSCRIPTION_UNLESS_SEEN, {**keys, "message_id": message_id})
            sub = found[0] if found else None
            task = find_task(ch.workflow, sub["task_id"]) if sub and sub["instance_id"] == ch.instance.id else None
            if task is None or ch.instance.suspended:  # gone, delivered meanwhile, suspended: look again
                raise Abandon
            ch.write_later(_INSERT_MESSAGE, {"id": message_id, "message_name": name, "correlation_value": value,
                                             "payload": payload, "status": "delivered", "instance_id": ch.instance.id,
                                             "received_at": ch.now, "expires_at": None, "delivered_at": ch.now,
                                             "sender": actor})
            deliver(ch, task, payload)
            assert sub is not None  # the task was found through it
            ch.record("message.correlated", task_id=sub["task_id"], element_id=task.task_spec.bpmn_id,
                      message=name, message_id=message_id, correlation=value, payload=payload)
    except Abandon:
        return None
    except NotFound:  # the subscription went away between our lookup and the lock
        return None
    except IntegrityError:  # the same message id, delivered concurrently: ours is the repeat
        return _seen(rt, message_id)
    return Correlated(message_id, "delivered", ch.instance.id)


def _start(rt: Runtime, name: str, value: str, message_id: str, payload: dict[str, Any],
           actor: str) -> Correlated | None:
    """A message nothing waits for that a process starts on (start_events.py), or None."""
    try:
        started = start_by_message(rt, name=name, value=value, message_id=message_id, payload=payload, actor=actor)
    except IntegrityError:  # the same message id, taken concurrently
        return _seen(rt, message_id)
    return None if started is None else Correlated(message_id, "delivered", started)


def _buffer(rt: Runtime, name: str, value: str, message_id: str, payload: dict[str, Any],
            actor: str, ttl: timedelta) -> Correlated | None:
    """Keep the message until a subscription appears. The key lock is the one a new subscription
    takes before looking for buffered messages, so one of the two always sees the other.
    Returns None if a subscription appeared meanwhile (the caller delivers instead)."""
    now = rt.clock.now()
    try:
        with rt.db.transaction() as s:
            rt.db.advisory_xact_lock(s, correlation_lock_key(name, value))
            if s.scalar(select(_TAKING), {"name": name, "value": value}):
                return None
            s.add(Message(id=message_id, message_name=name, correlation_value=value, payload=payload,
                          status="buffered", received_at=now, expires_at=now + ttl, sender=actor))
            s.flush()
            audit.append_system(rt, s, [audit.AuditDraft(
                action="message.buffered", actor=actor, at=now,
                details={"message": name, "message_id": message_id, "correlation": value,
                         "expires_at": (now + ttl).isoformat()})])
    except IntegrityError:
        return _seen(rt, message_id)
    return Correlated(message_id, "buffered", None)


def expire(rt: Runtime) -> int:
    """Mark buffered messages past their TTL as expired; they will never be delivered."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        stmt = update(Message).where(Message.status == "buffered", Message.expires_at <= now).values(status="expired")
        done = cast("CursorResult[Any]", s.execute(stmt))  # an UPDATE's result
    return done.rowcount or 0


def deliver_sent(rt: Runtime, payload: dict[str, Any]) -> None:
    """The job that delivers a message thrown by another instance (outgoing.message): like a message
    from outside, by (name, correlation value), buffered until something waits. Run again, it finds
    the message id seen and does nothing. A delivery the receiver cannot take becomes an incident."""
    try:
        correlate(rt, name=payload["message"], message_id=payload["message_id"], actor=f"instance:{payload['sender']}",
                  correlation_value=payload["correlation"], payload=payload["payload"])
    except EngineError as exc:
        now = rt.clock.now()
        with rt.db.transaction() as s:
            if outbox.mark_done(s, payload.get("outbox_id"), now):
                kept = {k: v for k, v in payload.items() if k != "outbox_id"}
                job_incident(s, now, job=MESSAGE_JOB, queue=QUEUE, payload=kept, attempts=1,
                             instance_id=payload["sender"],
                             error=f"message '{payload['message']}' ({payload['correlation']}) could not be "
                                   f"delivered: {exc.message}")


JOBS = {MESSAGE_JOB: deliver_sent}
