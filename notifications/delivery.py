"""The delivery job: send notifications, a batch of them per job, through their channels' providers.

Idempotent by notification id: a notification that is no longer queued is not sent again, and one
that another worker is sending (its lease has not run out) is left alone, its job not marked done.
A worker killed mid-batch leaves its notifications `sending` with a lease and their outbox rows not
done: once the lease runs out the outbox sweeper hands them out again and they are sent again —
providers are given the notification id as their de-duplication key (Aliyun OutId, WeChat Work's
duplicate check), so the person sees each once.

Retriable failures are retried with exponential backoff and jitter (a provider's own `retry_after`
wins when longer); a per-member rate limit delays without using up an attempt. A permanent failure
falls back to the person's next channel; with none left, or when retries run out, it becomes an
incident that an operator can retry. A notice that had nobody to reach (channel `none`) looks the
person's channels up again when it is retried (`Contacts`, given by the domain at composition): an
operator adds the missing phone number, retries, and it goes out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select
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
    batch: int = 10  # notices one delivery job carries (GRIDLOOP_NOTIFY_BATCH)
    # A batch starts no new send after this long (nor after a quarter of the job lease, which keeps
    # it inside the job's timeout); the notices it did not reach go back to the queue.
    batch_budget: timedelta = timedelta(seconds=30)

    def retry_delay(self, attempt: int, hint: float | None) -> timedelta:
        delay = jittered(min(self.backoff * (2 ** (attempt - 1)), self.backoff_cap))
        return max(delay, timedelta(seconds=hint)) if hint else delay


# What became of one send, applied to its locked notification when the batch's outcomes are recorded.
Outcome = Callable[[Session, Notification, datetime], object]


class Deliverer:
    """The `notify.deliver` job, bound to the providers of this process. One job carries up to
    `batch_size` notices (engine.outbox.jobs_of): they are claimed in one transaction, sent one
    after another, and their outcomes recorded in one more, so a notice costs two commits and one
    RQ job divided by the batch. A worker killed mid-batch leaves them all `sending`; the lease
    hands them out again, as it does a single one."""

    marks_done = True  # every outcome marks its outbox row done in the transaction that records it

    def __init__(self, providers: Mapping[str, Provider], policy: DeliveryPolicy | None = None,
                 contacts: Contacts | None = None) -> None:
        self.providers = dict(providers)
        self.policy = policy or DeliveryPolicy()
        self.contacts = contacts

    @property
    def batch_size(self) -> int:
        return self.policy.batch

    def __call__(self, rt: Runtime, payload: dict[str, Any]) -> None:
        self.run_batch(rt, [payload])

    def run_batch(self, rt: Runtime, payloads: Sequence[dict[str, Any]]) -> None:
        claimed = self._claim(rt, payloads)
        if not claimed:
            return
        budget = min(self.policy.batch_budget, rt.job_lease / 4).total_seconds()
        outcomes: list[tuple[dict[str, Any], Outcome]]
        started, outcomes = time.monotonic(), []
        for payload, message in claimed:  # the first is always sent: every job moves its batch on
            late = bool(outcomes) and time.monotonic() - started > budget
            outcomes.append((payload, self._put_back if late else self._send(message)))
        self._record(rt, outcomes)

    def _claim(self, rt: Runtime, payloads: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], OutgoingMessage]]:
        now = rt.clock.now()
        claimed, seen = [], set()
        with rt.db.transaction() as s:
            found = _locked(s, [p["notification_id"] for p in payloads])
            for payload in payloads:
                if payload["notification_id"] in seen:  # the same notice twice in one batch: sent once
                    outbox.mark_done(s, payload.get("outbox_id"), now)
                    continue
                seen.add(payload["notification_id"])
                message = self._claim_one(rt, s, found.get(payload["notification_id"]), payload, now)
                if message is not None:
                    claimed.append((payload, message))
        return claimed

    def _claim_one(self, rt: Runtime, s: Session, n: Notification | None, payload: dict[str, Any],
                   now: datetime) -> OutgoingMessage | None:
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

    def _send(self, message: OutgoingMessage) -> Outcome:
        provider = self.providers.get(message.channel)
        try:
            if message.channel == NO_CHANNEL:
                raise PermanentError("no channel to reach the recipient")
            if provider is None:
                raise PermanentError(f"no provider is configured for channel {message.channel}")
            result = provider.send(message)
        except RetriableError as exc:
            return partial(self._retry, exc=exc)
        except PermanentError as exc:
            return partial(fail, error=str(exc), quiet=self.policy.quiet)
        except Exception as exc:  # a bug or an unexpected answer: retry, then an incident shows it
            log.exception("notification provider failed unexpectedly", extra={"channel": message.channel})
            return partial(self._retry, exc=RetriableError(f"{type(exc).__name__}: {exc}"))
        return partial(_sent, result=result)

    def _record(self, rt: Runtime, outcomes: Sequence[tuple[dict[str, Any], Outcome]]) -> None:
        """One transaction for the batch's outcomes: each applied to its notification if that is still
        `sending` (else another delivery recorded first), and each job row marked done."""
        now = rt.clock.now()
        with rt.db.transaction() as s:
            found = _locked(s, [p["notification_id"] for p, _ in outcomes])
            for payload, outcome in outcomes:
                n = found.get(payload["notification_id"])
                if n is not None and n.status == "sending":
                    n.updated_at = now
                    outcome(s, n, now)
                outbox.mark_done(s, payload.get("outbox_id"), now)

    def _retry(self, s: Session, n: Notification, now: datetime, *, exc: RetriableError) -> None:
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
        _queue_again(s, n, now, at)

    @staticmethod
    def _put_back(s: Session, n: Notification, now: datetime) -> None:
        """The batch ran out of time before sending `n`: queued again at once, no attempt used."""
        n.status, n.attempts, n.lease_until = "queued", n.attempts - 1, None
        record(s, n, now, "queued", reason="its delivery job ran out of time before sending it")
        _queue_again(s, n, now, now)


def _sent(s: Session, n: Notification, now: datetime, *, result: SendResult) -> None:
    n.status, n.provider, n.provider_message_id = "sent", result.provider, result.provider_message_id
    n.last_error, n.lease_until = None, None
    record(s, n, now, "sent", provider=result.provider, provider_message_id=result.provider_message_id)


def _queue_again(s: Session, n: Notification, now: datetime, at: datetime) -> None:
    outbox.add(s, now, queue=QUEUE, job=DELIVER, payload={"notification_id": n.id, "attempt": n.attempts + 1},
               available_at=at)


def _locked(s: Session, ids: Sequence[str]) -> dict[str, Notification]:
    """The notifications of `ids` that exist, locked in id order (two batches never wait on each other
    in a circle)."""
    rows = s.scalars(select(Notification).where(Notification.id.in_(set(ids))).order_by(Notification.id)
                     .with_for_update())
    return {n.id: n for n in rows}


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
