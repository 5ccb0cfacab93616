"""SMS through Twilio's Messages API with the official SDK, and its signed status callbacks.

The SDK has no base-URL option. Its documented extension point is the `http_client` passed to
`twilio.rest.Client`; `BaseUrlHttpClient` sends every request the SDK builds for
`https://api.twilio.com/...` to a configured origin instead (a regional proxy, a test fake).
`region`/`edge` only rewrite hostnames inside twilio.com, so they cannot point elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from .base import OutgoingMessage, PermanentError, ProviderError, RetriableError, SendResult

# Twilio error codes (https://www.twilio.com/docs/api/errors); anything unlisted falls back to the
# HTTP status: 429 and 5xx retry, other 4xx are permanent.
PERMANENT_CODES: dict[int, str] = {
    20003: "authentication failed",
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled",
    21606: "'From' number cannot send SMS",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "cannot route to this number",
    21614: "'To' is not a mobile number",
    21617: "body exceeds the maximum length",
    21635: "'To' is a landline",
}
RETRIABLE_CODES: dict[int, str] = {
    20429: "too many concurrent requests",
    20500: "Twilio internal error",
    20503: "Twilio service unavailable",
    21611: "the sender's queue is full",
}
_FAILED_ON_CREATE = {"failed", "undelivered", "canceled"}


class BaseUrlHttpClient(TwilioHttpClient):
    """A TwilioHttpClient that replaces scheme and host of every URL with `base_url` (path and
    query kept); with no base_url it is the stock client."""

    def __init__(self, base_url: str | None = None, *, timeout: float = 10.0) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/") if base_url else None

    def rewrite(self, url: str) -> str:
        if not self.base_url:
            return url
        origin, target = urlsplit(self.base_url), urlsplit(url)
        return urlunsplit((origin.scheme, origin.netloc, origin.path + target.path, target.query, target.fragment))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, self.rewrite(url), *args, **kwargs)


def classify(exc: TwilioRestException | TwilioServiceException) -> ProviderError:
    """Map an SDK error to RetriableError or PermanentError."""
    code = exc.code if isinstance(exc.code, int) else None
    status = int(exc.status or 0)
    if code in PERMANENT_CODES:
        return PermanentError(PERMANENT_CODES[code], code=code)
    if code in RETRIABLE_CODES:
        return RetriableError(RETRIABLE_CODES[code], code=code)
    if status == 429 or status >= 500:
        return RetriableError(f"Twilio answered HTTP {status}", code=code or status)
    return PermanentError(f"Twilio refused the message (HTTP {status}): {exc}", code=code or status)


class TwilioSms:
    """`send` posts one message; the status callback URL carries the notification id."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        from_number: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback_url: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        validity_period: int | None = None,
    ) -> None:
        if not (from_number or messaging_service_sid):
            raise ValueError("Twilio needs a from_number or a messaging_service_sid")
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.validity_period = validity_period
        self.client = Client(
            account_sid, auth_token, http_client=BaseUrlHttpClient(base_url, timeout=timeout)
        )
        # The SDK imports its API modules on first use (~70 ms): do it now, so that RQ's work horses,
        # forked from a worker that built this provider, start with them loaded.
        self._messages = self.client.messages

    def send(self, message: OutgoingMessage) -> SendResult:
        params: dict[str, Any] = {"to": message.recipient, "body": message.text}
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        if self.status_callback_url:
            params["status_callback"] = callback_url(self.status_callback_url, message.notification_id)
        if self.validity_period:
            params["validity_period"] = self.validity_period
        try:
            created = self._messages.create(**params)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise classify(exc) from exc
        except requests.ConnectTimeout as exc:
            raise RetriableError(f"cannot reach Twilio: {exc}") from exc
        except requests.Timeout as exc:
            raise RetriableError(f"no answer from Twilio: {exc}", maybe_sent=True) from exc
        except requests.RequestException as exc:
            raise RetriableError(f"cannot reach Twilio: {exc}") from exc
        status = str(created.status or "queued")
        if status in _FAILED_ON_CREATE:
            raise PermanentError(f"Twilio reports the message {status}", code=created.error_code)
        return SendResult(self.name, created.sid, status)


def callback_url(base: str, notification_id: str) -> str:
    """The status callback URL with `notification_id` added to its query."""
    parts = urlsplit(base)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("notification_id", notification_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- status callbacks ------------------------------------------------------------------------

# Receipts may arrive out of order; a status only ever moves to a higher rank. Terminal statuses
# share a rank, so the first terminal one received stands.
STATUS_RANK: dict[str, int] = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "partially_delivered": 4,
    "read": 5,
}


def furthest(current: str | None, new: str) -> str | None:
    """The status to keep when `new` arrives while `current` is stored: never a step backwards,
    and an unknown status never replaces a known one."""
    if new not in STATUS_RANK:
        return current
    if current not in STATUS_RANK or STATUS_RANK[new] > STATUS_RANK[current]:
        return new
    return current


class InvalidSignature(Exception):
    """The callback's X-Twilio-Signature is missing or does not match: answer 403."""


@dataclass(frozen=True)
class StatusReceipt:
    message_sid: str
    status: str
    error_code: int | None
    notification_id: str | None


def parse_status_callback(
    url: str, params: Mapping[str, str], signature: str | None, auth_token: str
) -> StatusReceipt:
    """Validate a status callback and read it. `url` is the full URL Twilio called (as the public
    sees it, query included); `params` the form fields; `signature` the X-Twilio-Signature header."""
    if not signature or not RequestValidator(auth_token).validate(url, dict(params), signature):
        raise InvalidSignature("X-Twilio-Signature missing or invalid")
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus")
    if not sid or not status:
        raise ValueError("status callback without MessageSid/MessageStatus")
    raw_code = params.get("ErrorCode")
    notification_id = dict(parse_qsl(urlsplit(url).query)).get("notification_id")
    return StatusReceipt(sid, status, int(raw_code) if raw_code and raw_code.isdigit() else None, notification_id)
