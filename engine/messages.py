"""Message correlation: (name, correlation value) → the waiting instance by one index lookup.
A message nobody waits for yet is buffered until its TTL; a repeated message id is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from .change import change_instance
from .errors import InvalidInput
from .models import Message, MessageSubscription
from .readmodels import deliver
from .runtime import Runtime
from .spiff_specs import find_task


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
    seen = _seen(rt, message_id)
    if seen is not None:
        return seen
    with rt.db.session() as s:
        sub = s.scalar(select(MessageSubscription).where(MessageSubscription.message_name == name,
                                                         MessageSubscription.correlation_value == value))
    if sub is not None:
        delivered = _deliver(rt, sub.instance_id, name, value, message_id, payload, actor)
        if delivered is not None:
            return delivered
    return _buffer(rt, name, value, message_id, payload, actor, ttl or rt.message_ttl)


def _seen(rt: Runtime, message_id: str) -> Correlated | None:
    with rt.db.session() as s:
        m = s.get(Message, message_id)
    if m is None:
        return None
    return Correlated(m.id, m.status, m.instance_id, duplicate=True)


def _deliver(rt: Runtime, instance_id: str, name: str, value: str, message_id: str,
             payload: dict[str, Any], actor: str) -> Correlated | None:
    """Deliver under the instance lock; None if the subscription vanished meanwhile."""
    try:
        with change_instance(rt, instance_id, actor) as ch:
            sub = ch.session.scalar(select(MessageSubscription).where(
                MessageSubscription.message_name == name, MessageSubscription.correlation_value == value))
            task = find_task(ch.workflow, sub.task_id) if sub and sub.instance_id == instance_id else None
            if task is None:
                raise _Vanished
            ch.session.add(Message(id=message_id, message_name=name, correlation_value=value, payload=payload,
                                   status="delivered", instance_id=instance_id, received_at=ch.now,
                                   delivered_at=ch.now, sender=actor))
            ch.session.flush()  # a concurrent duplicate id fails here, before any state change
            deliver(ch, task, payload)
            ch.record("message.correlated", task_id=sub.task_id, element_id=task.task_spec.bpmn_id,
                      message=name, message_id=message_id, correlation=value, payload=payload)
    except _Vanished:
        return None
    except IntegrityError:
        seen = _seen(rt, message_id)
        if seen is None:
            raise
        return seen
    return Correlated(message_id, "delivered", instance_id)


class _Vanished(Exception):
    """The subscription went away between lookup and lock; nothing was changed."""


def _buffer(rt: Runtime, name: str, value: str, message_id: str, payload: dict[str, Any],
            actor: str, ttl: timedelta) -> Correlated:
    now = rt.clock.now()
    try:
        with rt.db.transaction() as s:
            s.add(Message(id=message_id, message_name=name, correlation_value=value, payload=payload,
                          status="buffered", received_at=now, expires_at=now + ttl, sender=actor))
            s.flush()
            audit.append(rt.db, s, [audit.AuditDraft(
                action="message.buffered", actor=actor, at=now,
                details={"message": name, "message_id": message_id, "correlation": value,
                         "expires_at": (now + ttl).isoformat()})])
    except IntegrityError:
        seen = _seen(rt, message_id)
        if seen is None:
            raise
        return seen
    # A subscription may have appeared between our lookup and the insert: deliver it now.
    with rt.db.session() as s:
        sub = s.scalar(select(MessageSubscription).where(MessageSubscription.message_name == name,
                                                         MessageSubscription.correlation_value == value))
    if sub is not None:
        redeliver_buffered(rt, sub.instance_id)
        return _seen(rt, message_id) or Correlated(message_id, "buffered", None)
    return Correlated(message_id, "buffered", None)


def redeliver_buffered(rt: Runtime, instance_id: str) -> None:
    """Re-run the subscription refresh of an instance, which picks up matching buffered messages."""
    with change_instance(rt, instance_id, actor="engine"):
        pass


def expire(rt: Runtime) -> int:
    """Mark buffered messages past their TTL as expired; they will never be delivered."""
    with rt.db.transaction() as s:
        done = s.execute(update(Message).where(Message.status == "buffered", Message.expires_at <= rt.clock.now())
                         .values(status="expired"))
    return done.rowcount or 0
