"""Delivery receipts from providers: a notification's status moves forward only (receipts arrive
out of order), and a failed delivery falls back to the person's next channel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from .delivery import fail
from .models import RANK, Notification, NotificationEvent
from .queueing import record
from .quiet_hours import QuietHours

# provider status → ours
TWILIO = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
          "delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed",
          "canceled": "failed", "partially_delivered": "delivered"}


def find(s: Session, *, notification_id: str | None = None, provider: str | None = None,
         provider_message_id: str | None = None) -> Notification | None:
    """The notification a receipt is about, by our id (which we gave the provider) or by theirs."""
    if notification_id:
        return s.get(Notification, notification_id, with_for_update=True)
    if provider and provider_message_id:
        return s.scalar(select(Notification).where(Notification.provider == provider,
                                                   Notification.provider_message_id == provider_message_id)
                        .with_for_update())
    return None


def apply_receipt(s: Session, now: datetime, n: Notification, status: str, quiet: QuietHours,
                  **detail: object) -> bool:
    """Record what the provider reports; False when it is not news (older or equal to what we have)."""
    if status not in RANK or RANK[status] <= RANK.get(n.status, 0):
        record(s, n, now, "receipt", reported=status, ignored=True, **detail)
        return False
    if status == "failed":
        fail(s, n, now, f"the provider reports the message undelivered ({detail.get('code') or 'no code'})", quiet)
        return True
    n.status, n.updated_at = status, now
    record(s, n, now, status, **detail)
    return True


def acknowledge_instance(conn, instance_id: str, at: datetime, by: str) -> int:
    """The person answered (a graded warning acknowledged): the instance's notices become
    `acknowledged`, and those not sent yet are never sent. One in flight (`sending`) is left alone."""
    n, ev = Notification.__table__, NotificationEvent.__table__
    ids = list(conn.execute(select(n.c.id).where(n.c.instance_id == instance_id,
                                                n.c.status.in_(("queued", "sent", "delivered")))).scalars())
    if ids:
        conn.execute(update(n).where(n.c.id.in_(ids)).values(status="acknowledged", updated_at=at))
        conn.execute(insert(ev), [{"notification_id": i, "status": "acknowledged", "at": at, "detail": {"by": by}}
                                  for i in ids])
    return len(ids)
