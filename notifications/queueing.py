"""Asking for notices: one notification row per recipient (first channel of their preference; the
rest are its fallbacks) and one delivery job each, written in the caller's transaction. Asking
twice with the same key changes nothing, so a repeated job never notifies twice.

A notice that cannot be sent is an incident, never only a log line: nobody to reach (no channel),
every channel refused, or retries run out. One open incident per notification, so a repeated
failure cannot multiply them; an operator's retry resolves it and starts over."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import outbox
from engine.jobs import job_incident
from engine.models import Incident

from . import templates
from .models import Notification, NotificationEvent
from .quiet_hours import QuietHours

log = logging.getLogger(__name__)

QUEUE = "notify"
DELIVER = "notify.deliver"
SMS_MAX_SEGMENTS = 3
NO_CHANNEL = "none"  # the channel of a notice for someone we have no way to reach
NO_CHANNEL_REASON = "no channel"  # nobody of that name, or no phone or WeChat id to reach them


@dataclass(frozen=True)
class NoticeRequest:
    key: str  # unique per notice and recipient, e.g. "<instance>:<task>:<username>"
    kind: str  # templates.KINDS
    recipient: str
    channels: Sequence[tuple[str, str]]  # (channel, address) in order of preference
    data: Mapping[str, Any]  # template values
    locale: str = "zh-CN"
    urgent: bool = False
    case_id: str | None = None
    instance_id: str | None = None
    unreachable: str | None = None  # without channels: why (else "no channel to reach the recipient")

    @classmethod
    def fallback_of(cls, n: Notification) -> NoticeRequest:
        """The same notice to the same person, on the channels `n` had left."""
        return cls(key=n.key, kind=n.kind, recipient=n.recipient, channels=[tuple(c) for c in n.fallbacks],
                   data=n.data, locale=n.locale, urgent=n.urgent, case_id=n.case_id, instance_id=n.instance_id)


@dataclass(frozen=True)
class Queued:
    """What asking for one notice did: `notification_id` is set when it was queued on a channel
    the recipient has; otherwise `reason` says why not (it is then a failed notice and an incident)."""

    request: NoticeRequest
    notification_id: str | None = None
    reason: str | None = None
    repeat: bool = False  # asked before with the same key: nothing new


def queue_notices(s: Session, now: datetime, requests: Sequence[NoticeRequest], quiet: QuietHours) -> list[str]:
    """Write the notifications and their delivery jobs; answers the ids of those newly queued."""
    return [q.notification_id for q in queue_each(s, now, requests, quiet) if q.notification_id and not q.repeat]


def queue_each(s: Session, now: datetime, requests: Sequence[NoticeRequest], quiet: QuietHours) -> list[Queued]:
    """`queue_notices`, answering what became of each request."""
    keys = [f"{r.key}:{r.channels[0][0]}" if r.channels else f"{r.key}:{NO_CHANNEL}" for r in requests]
    known = dict(s.execute(select(Notification.key, Notification.id).where(Notification.key.in_(keys))).all()
                 ) if keys else {}
    out = []
    for request, key in zip(requests, keys, strict=True):
        if key in known:
            out.append(Queued(request, known[key] if request.channels else None,
                              None if request.channels else NO_CHANNEL_REASON, repeat=True))
        elif not request.channels:
            log.warning("a notice has nobody to reach", extra={"recipient": request.recipient, "kind": request.kind})
            error = request.unreachable or "no channel to reach the recipient"
            n = add_notification(s, now, request, key, (NO_CHANNEL, ""), [], quiet, error=error)
            notice_incident(s, now, n, f"{request.kind} notice to {request.recipient}: {error}")
            out.append(Queued(request, reason=NO_CHANNEL_REASON))
        else:
            first, *rest = request.channels
            out.append(Queued(request, add_notification(s, now, request, key, first, rest, quiet).id))
    return out


def add_notification(s: Session, now: datetime, request: NoticeRequest, key: str, channel: tuple[str, str],
                     fallbacks: Sequence[tuple[str, str]], quiet: QuietHours, *, fallback_of: str | None = None,
                     error: str | None = None) -> Notification:
    """One notification on `channel`, its first event and (unless it cannot be sent) its delivery job."""
    name, address = channel
    notice = templates.render(request.kind, request.data, request.locale)
    text = text_for(name, request.kind, request.data, request.locale)
    send_after = now if request.urgent else quiet.release(now)
    n = Notification(id=str(uuid.uuid4()), key=key, kind=request.kind, case_id=request.case_id,
                     instance_id=request.instance_id, recipient=request.recipient, channel=name, address=address,
                     locale=request.locale, title=notice.title, text=text, url=notice.url, data=dict(request.data),
                     urgent=request.urgent, status="failed" if error else "queued", attempts=0,
                     fallbacks=[list(c) for c in fallbacks], fallback_of=fallback_of, last_error=error,
                     send_after=send_after, created_at=now, updated_at=now)
    s.add(n)
    s.flush()
    record(s, n, now, n.status, error=error, send_after=send_after.isoformat() if send_after != now else None)
    if not error:
        outbox.add(s, now, queue=QUEUE, job=DELIVER, payload={"notification_id": n.id, "attempt": 1},
                   available_at=send_after)
    return n


def record(s: Session, n: Notification, now: datetime, status: str, **detail: Any) -> None:
    s.add(NotificationEvent(notification_id=n.id, status=status, at=now,
                            detail={k: v for k, v in detail.items() if v is not None}))


def text_for(channel: str, kind: str, data: Mapping[str, Any], locale: str) -> str:
    """The text as sent on `channel`: SMS cut to fit its segments, the full notice elsewhere."""
    if channel == "sms":
        return templates.render_sms(kind, data, locale, max_segments=SMS_MAX_SEGMENTS)
    return templates.render(kind, data, locale).text


def notice_incident(s: Session, now: datetime, n: Notification, error: str) -> Incident:
    """The open incident of `n`: the existing one, or a new one whose retry runs `notify.deliver`
    again with a fresh set of attempts (engine.incidents.retry)."""
    found = s.scalar(select(Incident).where(*_open_notice_incidents(), Incident.kind == "job",
                                            _of_notification(n.id)).limit(1))
    if found is not None:
        return found
    return job_incident(s, now, job=DELIVER, queue=QUEUE, payload={"notification_id": n.id}, error=error,
                        attempts=n.attempts, instance_id=n.instance_id)


def open_incidents(s: Session) -> int:
    """Open incidents of notices (also counted among all open incidents): failed ones, and delivery
    jobs that never finished (`job_lost`, raised by the outbox sweeper)."""
    return s.scalar(select(func.count()).where(*_open_notice_incidents())) or 0


def _open_notice_incidents() -> tuple:
    return Incident.status == "open", Incident.operation == DELIVER


def _of_notification(notification_id: str):
    return Incident.payload["payload"]["notification_id"].as_string() == notification_id
