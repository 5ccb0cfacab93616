"""Delivery receipts from providers: a notification's status moves forward only (receipts arrive
out of order), and a failed delivery falls back to the person's next channel (or, with none left,
becomes an incident).

`twilio_status` and `aliyun_report` are the use cases behind the receipt endpoints: one transaction
each, after the view has checked the credential and parsed the body. A receipt for no notification
of ours, or with a status we do not know, is logged and acknowledged (the provider would only retry)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from engine.runtime import Runtime

from .delivery import fail
from .models import RANK, Notification, NotificationEvent
from .providers.aliyun_sms import DeliveryReport
from .providers.base import Channel
from .providers.twilio_sms import StatusReceipt
from .queueing import record
from .quiet_hours import QuietHours

log = logging.getLogger(__name__)

_NOTIFICATIONS = cast(Table, Notification.__table__)
_NOTIFICATION_EVENTS = cast(Table, NotificationEvent.__table__)

# provider status → ours
TWILIO = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
          "delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed",
          "canceled": "failed", "partially_delivered": "delivered"}


def twilio_status(rt: Runtime, receipt: StatusReceipt, quiet: QuietHours) -> bool:
    """A verified Twilio status callback: found by our id (in the callback URL) or by the MessageSid;
    True when it moved the notification on."""
    status = TWILIO.get(receipt.status)
    if status is None:
        log.warning("Twilio status callback with a status we do not know",
                    extra={"status": receipt.status, "message_sid": receipt.message_sid})
        return False
    with rt.db.transaction() as s:
        n = find(s, notification_id=receipt.notification_id) if receipt.notification_id else None
        n = n or find(s, provider="twilio", provider_message_id=receipt.message_sid)
        if n is None:
            log.warning("Twilio status callback for no notification of ours", extra={
                "message_sid": receipt.message_sid, "notification_id": receipt.notification_id})
            return False
        changed = apply_receipt(s, rt.clock.now(), n, status, quiet, provider="twilio", provider_status=receipt.status,
                                message_sid=receipt.message_sid, code=receipt.error_code)
    if changed:
        rt.wake()  # a failure may have queued the next channel
    return changed


def aliyun_report(rt: Runtime, reports: Sequence[DeliveryReport], quiet: QuietHours) -> int:
    """An Aliyun SmsReport push, all its receipts in one transaction: found by BizId, else by the
    OutId we sent (a receipt may beat the send's own record; an SMS that Twilio sent is not
    Aliyun's). Answers how many moved a notification on."""
    changed = 0
    with rt.db.transaction() as s:
        now = rt.clock.now()
        for report in reports:
            n = find(s, provider="aliyun", provider_message_id=report.biz_id)
            if n is None and report.notification_id:
                n = find(s, notification_id=report.notification_id)
                # not yet recorded as sent, or sent by Aliyun: never an SMS another provider sent
                n = n if n is not None and n.channel == Channel.SMS and n.provider in (None, "aliyun") else None
            if n is None:
                log.warning("Aliyun receipt for no notification of ours",
                            extra={"biz_id": report.biz_id, "out_id": report.notification_id})
                continue
            changed += apply_receipt(s, now, n, "delivered" if report.delivered else "failed", quiet,
                                     provider="aliyun", biz_id=report.biz_id, code=report.err_code,
                                     error_message=report.err_msg, report_time=report.report_time)
    if changed:
        rt.wake()
    return changed


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
    n, ev = _NOTIFICATIONS, _NOTIFICATION_EVENTS
    ids = list(conn.execute(select(n.c.id).where(n.c.instance_id == instance_id,
                                                n.c.status.in_(("queued", "sent", "delivered")))).scalars())
    if ids:
        conn.execute(update(n).where(n.c.id.in_(ids)).values(status="acknowledged", updated_at=at))
        conn.execute(insert(ev), [{"notification_id": i, "status": "acknowledged", "at": at, "detail": {"by": by}}
                                  for i in ids])
    return len(ids)
