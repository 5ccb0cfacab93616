"""A notification per recipient and channel, with its status history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime
from engine.models import BigId

# How far along a notification is; a status never moves to a lower rank (receipts arrive out of
# order). failed and delivered are both final for the provider; acknowledged is the person's answer.
RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "failed": 3, "acknowledged": 4}
STATUSES = tuple(RANK)


class Notification(Base):
    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_recipient", "recipient", "created_at"),
        Index("ix_notification_status", "status", "created_at"),
        Index("ix_notification_provider_id", "provider", "provider_message_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)  # what asked for it + recipient + channel
    kind: Mapped[str] = mapped_column(String(30))
    case_id: Mapped[str | None] = mapped_column(String(40), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36))
    recipient: Mapped[str] = mapped_column(String(200))  # a username, or "citizen:<case id>"
    channel: Mapped[str] = mapped_column(String(20))  # sms | wechat_work | wechat_oa
    address: Mapped[str] = mapped_column(String(200))  # phone number, WeChat Work userid, OA openid
    locale: Mapped[str] = mapped_column(String(10))
    title: Mapped[str | None] = mapped_column(String(400))
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(String(1000))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the template values (for provider templates, fallbacks)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # while a worker is sending it
    provider: Mapped[str | None] = mapped_column(String(30))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    fallbacks: Mapped[list[Any]] = mapped_column(JSON)  # [[channel, address], ...] still to try
    fallback_of: Mapped[str | None] = mapped_column(String(36))
    send_after: Mapped[datetime] = mapped_column(UTCDateTime)  # later than created_at in quiet hours
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class NotificationEvent(Base):
    __tablename__ = "notification_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    notification_id: Mapped[str] = mapped_column(ForeignKey("notification.id"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


def masked(address: str) -> str:
    """A phone number, openid or WeChat id as shown to those who may not see it whole (and as the audit
    trail keeps it): its last four characters, or nothing of a short one."""
    return "*" * max(len(address) - 4, 4) + address[-4:] if len(address) > 6 else "*" * len(address)
