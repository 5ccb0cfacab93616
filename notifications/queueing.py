"""Asking for notices: one notification row per recipient (first channel of their preference; the
rest are its fallbacks) and one delivery job each, written in the caller's transaction. Asking
twice with the same key changes nothing, so a repeated job never notifies twice."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import outbox

from . import templates
from .models import Notification, NotificationEvent
from .quiet_hours import QuietHours

log = logging.getLogger(__name__)

QUEUE = "notify"
DELIVER = "notify.deliver"
SMS_MAX_SEGMENTS = 3


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

    @classmethod
    def fallback_of(cls, n: Notification) -> NoticeRequest:
        """The same notice to the same person, on the channels `n` had left."""
        return cls(key=n.key, kind=n.kind, recipient=n.recipient, channels=[tuple(c) for c in n.fallbacks],
                   data=n.data, locale=n.locale, urgent=n.urgent, case_id=n.case_id, instance_id=n.instance_id)


def queue_notices(s: Session, now: datetime, requests: Sequence[NoticeRequest], quiet: QuietHours) -> list[str]:
    """Write the notifications and their delivery jobs; answers the ids of those newly queued."""
    keys = [f"{r.key}:{r.channels[0][0]}" if r.channels else f"{r.key}:none" for r in requests]
    known = set(s.scalars(select(Notification.key).where(Notification.key.in_(keys)))) if keys else set()
    queued = []
    for request, key in zip(requests, keys, strict=True):
        if key in known:
            continue
        if not request.channels:
            log.warning("a notice has nobody to reach", extra={"recipient": request.recipient, "kind": request.kind})
            add_notification(s, now, request, key, ("none", ""), [], quiet, error="no channel to reach the recipient")
            continue
        first, *rest = request.channels
        queued.append(add_notification(s, now, request, key, first, rest, quiet).id)
    return queued


def add_notification(s: Session, now: datetime, request: NoticeRequest, key: str, channel: tuple[str, str],
                     fallbacks: Sequence[tuple[str, str]], quiet: QuietHours, *, fallback_of: str | None = None,
                     error: str | None = None) -> Notification:
    """One notification on `channel`, its first event and (unless it cannot be sent) its delivery job."""
    name, address = channel
    notice = templates.render(request.kind, request.data, request.locale)
    text = (templates.render_sms(request.kind, request.data, request.locale, max_segments=SMS_MAX_SEGMENTS)
            if name == "sms" else notice.text)
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
