"""The provider interface every channel implements, and the two failures a provider may raise.

A provider sends one message and either answers a `SendResult` or raises `RetriableError` (try
again later, maybe after `retry_after` seconds) or `PermanentError` (retrying cannot help; fall
back to another channel or raise an incident). Providers never retry or sleep themselves: that is
the job runner's decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable


class Channel(StrEnum):
    SMS = "sms"
    WECHAT_WORK = "wechat_work"  # 企业微信 app message to a staff member (userid)
    WECHAT_OA = "wechat_oa"  # 公众号 template message to a citizen (openid)


@dataclass(frozen=True)
class OutgoingMessage:
    """One notice to one recipient. `notification_id` is the idempotency key: it is passed to the
    provider wherever the provider has a place for it (Aliyun OutId, OA client_msg_id, the Twilio
    status callback URL) so receipts can be matched back."""

    notification_id: str
    channel: str  # a Channel; NO_CHANNEL ("none") for a notice nobody can be reached for, refused before any provider
    recipient: str  # E.164 phone number, WeChat Work userid or OA openid
    text: str
    title: str | None = None
    url: str | None = None
    kind: str | None = None  # notice kind (templates.KINDS); selects provider-side templates
    params: Mapping[str, str] = field(default_factory=dict)  # template variables for Aliyun / OA


@dataclass(frozen=True)
class SendResult:
    provider: str
    provider_message_id: str | None
    status: str  # "queued" (a receipt will follow) or "sent" (accepted; no per-message receipt)


class ProviderError(Exception):
    def __init__(self, reason: str, *, code: str | int | None = None) -> None:
        super().__init__(reason if code is None else f"{reason} (code {code})")
        self.reason = reason
        self.code = code


class RetriableError(ProviderError):
    """Try again later: timeouts, connection errors, 429, 5xx, provider "busy"/throttling codes.

    `retry_after` is the provider's own hint in seconds (Retry-After, a rate limiter's wait), or None
    to let the caller's backoff decide. `maybe_sent` is set when the request may have reached the
    provider (read timeout): a retry may then deliver twice on providers without idempotency."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        code: str | int | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = retry_after
        self.maybe_sent = maybe_sent


class PermanentError(ProviderError):
    """Retrying cannot help: invalid number, unsubscribed or refused recipient, bad template or
    credentials. The message was not sent."""


class NotFollower(PermanentError):
    """The citizen does not follow the Official Account (errcode 43004): fall back to SMS."""


@runtime_checkable
class Provider(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> SendResult:
        """Send one message; raise RetriableError or PermanentError on failure."""
        ...
