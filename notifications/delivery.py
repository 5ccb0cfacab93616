"""The delivery job: send one notification through its channel's provider.

Idempotent by notification id: a notification that is no longer queued is not sent again, and one
that another worker is sending (its lease has not run out) is left alone, its job not marked done.
A worker killed mid-send leaves the notification `sending` with an expired lease and its outbox row not done: the outbox
sweeper hands the job out again and it is sent again — providers are given the notification id as
their de-duplication key (Aliyun OutId, WeChat Work's duplicate check), so the person sees it once.

Retriable failures are retried with exponential backoff and jitter (a provider's own `retry_after`
wins when longer); a per-member rate limit delays without using up an attempt. A permanent failure
falls back to the person's next channel; with none left, or when retries run out, it becomes an
incident that an operator can retry. A notice that had nobody to reach (channel `none`) looks the
person's channels up again when it is retried (`Contacts`, given by the domain at composition): an
operator adds the missing phone number, retries, and it goes out."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine import outbox
from engine.jobs import jittered
from engine.runtime import Runtime

from .models import Notification
from .providers.base import OutgoingMessage, PermanentError, Provider, RetriableError, SendResult
from .queueing import DELIVER, NO_CHANNEL, QUEUE, NoticeRequest, add_notification, notice_incident, record, text_for
from .quiet_hours import QuietHours

log = logging.getLogger(__name__)

RATE_LIMITED = "member_rate_limit"

# The channels a notification's recipient has now, in their order of preference.
Contacts = Callable[[Session, Notification], Sequence[tuple[str, str]]]


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 6
    backoff: timedelta = timedelta(seconds=30)
    backoff_cap: timedelta = timedelta(hours=1)
    quiet: QuietHours = field(default_factory=QuietHours)

    def retry_delay(self, attempt: int, hint: float | None) -> timedelta:
        delay = jittered(min(self.backoff * (2 ** (attempt - 1)), self.backoff_cap))
        return max(delay, timedelta(seconds=hint)) if hint else delay


class Deliverer:
    """The `notify.deliver` job, bound to the providers of this process."""

    marks_done = True  # every outcome marks its outbox row done in its own transaction

    def __init__(self, providers: Mapping[str, Provider], policy: DeliveryPolicy | None = None,
                 contacts: Contacts | None = None) -> None:
        self.providers = dict(providers)
        self.policy = policy or DeliveryPolicy()
        self.contacts = contacts

    def __call__(self, rt: Runtime, payload: dict[str, Any]) -> None:
        message = self._claim(rt, payload)
        if message is None:
            return
        provider = self.providers.get(message.channel)
        try:
            if message.channel == NO_CHANNEL:
                raise PermanentError("no channel to reach the recipient")
            if provider is None:
                raise PermanentError(f"no provider is configured for channel {message.channel}")
            result = provider.send(message)
        except RetriableError as exc:
            self._retry(rt, payload, exc)
        except PermanentError as exc:
            self._refused(rt, payload, str(exc))
        except Exception as exc:  # a bug or an unexpected answer: retry, then an incident shows it
            log.exception("notification provider failed unexpectedly", extra={"channel": message.channel})
            self._retry(rt, payload, RetriableError(f"{type(exc).__name__}: {exc}"))
        else:
            self._sent(rt, payload, result)

    def _claim(self, rt: Runtime, payload: dict[str, Any]) -> OutgoingMessage | None:
        now = rt.clock.now()
        with rt.db.transaction() as s:
            n = s.get(Notification, payload["notification_id"], with_for_update=True)
            if n is not None and n.status == "failed" and payload.get("retried_incident"):
                n.status, n.attempts = "queued", 0  # an operator retries it: a fresh set of attempts
                if n.channel == NO_CHANNEL and self.contacts is not None:
                    self._reach_again(s, n)
                record(s, n, now, "queued", retried_incident=payload["retried_incident"], channel=n.channel)
            if n is not None and n.status == "sending" and n.lease_until is not None and n.lease_until > now:
                # Another delivery holds it, alive or killed: leave this job's row for the lease sweeper,
                # which hands it out again after the lease (by then a dead holder's lease has run out).
                return None
            if n is None or n.status not in ("queued", "sending"):
                outbox.mark_done(s, payload.get("outbox_id"), now)
                return None
            n.status, n.attempts, n.lease_until, n.updated_at = "sending", n.attempts + 1, now + rt.job_lease, now
            record(s, n, now, "sending", attempt=n.attempts)
            return OutgoingMessage(notification_id=n.id, channel=n.channel, recipient=n.address, text=n.text,
                                   title=n.title, url=n.url, kind=n.kind,
                                   params={k: str(v) for k, v in n.data.items() if v is not None})

    def _reach_again(self, s: Session, n: Notification) -> None:
        """A notice that had nobody to reach, retried: on the channels the person has now, if any."""
        channels = list(self.contacts(s, n)) if self.contacts else []
        if channels:
            (n.channel, n.address), rest = channels[0], channels[1:]
            n.fallbacks, n.text = [list(c) for c in rest], text_for(n.channel, n.kind, n.data, n.locale)

    def _sent(self, rt: Runtime, payload: dict[str, Any], result: SendResult) -> None:
        with _outcome(rt, payload) as (s, n, now):
            if n is None:
                return
            n.status, n.provider, n.provider_message_id = "sent", result.provider, result.provider_message_id
            n.last_error, n.lease_until = None, None
            record(s, n, now, "sent", provider=result.provider, provider_message_id=result.provider_message_id)

    def _retry(self, rt: Runtime, payload: dict[str, Any], exc: RetriableError) -> None:
        with _outcome(rt, payload) as (s, n, now):
            if n is None:
                return
            if exc.code == RATE_LIMITED:
                n.attempts -= 1  # waiting for a free slot is not a failed attempt
            elif n.attempts >= self.policy.max_attempts:
                n.status, n.last_error, n.lease_until = "failed", str(exc), None
                record(s, n, now, "failed", error=str(exc), attempts=n.attempts)
                notice_incident(s, now, n, f"{n.channel} to {n.recipient}: {exc}")
                return
            at = now + self.policy.retry_delay(max(n.attempts, 1), exc.retry_after)
            n.status, n.last_error, n.lease_until = "queued", str(exc), None
            record(s, n, now, "queued", error=str(exc), retry_at=at.isoformat())
            outbox.add(s, now, queue=QUEUE, job=DELIVER, payload={"notification_id": n.id,
                                                                     "attempt": n.attempts + 1}, available_at=at)

    def _refused(self, rt: Runtime, payload: dict[str, Any], error: str) -> None:
        with _outcome(rt, payload) as (s, n, now):
            if n is not None:
                fail(s, n, now, error, self.policy.quiet)


def fail(s: Session, n: Notification, now: datetime, error: str, quiet: QuietHours) -> Notification | None:
    """`n` failed for good: queue it on the person's next channel, or raise an incident if none is left."""
    n.status, n.last_error, n.lease_until, n.updated_at = "failed", error, None, now
    record(s, n, now, "failed", error=error)
    if n.fallbacks:
        request = NoticeRequest.fallback_of(n)
        channel, *rest = request.channels
        return add_notification(s, now, request, f"{n.key.rsplit(':', 1)[0]}:{channel[0]}", channel, rest, quiet,
                                fallback_of=n.id)
    notice_incident(s, now, n, f"{n.channel} to {n.recipient} refused: {error}")
    return None


@contextmanager
def _outcome(rt: Runtime, payload: dict[str, Any]) -> Iterator[tuple[Session, Notification | None, datetime]]:
    """The transaction recording a delivery's outcome: the notification locked if it is still
    `sending` (None: another delivery recorded its outcome first), and the job's outbox row done."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        n = s.get(Notification, payload["notification_id"], with_for_update=True)
        if n is not None and n.status == "sending":
            n.updated_at = now
        else:
            n = None
        outbox.mark_done(s, payload.get("outbox_id"), now)
        yield s, n, now
