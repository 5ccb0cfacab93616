"""marshmallow fields for times clients send. A time must be storable (convertible to UTC, inside
years 1..9999 once converted) and, when it says when something happened, plausible: not before
2000 and not ahead of the server's clock by more than FUTURE_TOLERANCE (a device with a wrong clock
would otherwise pin its case to the top of every newest-first list, or crash the jobs that read it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from marshmallow import fields

FUTURE_TOLERANCE = timedelta(minutes=10)  # clock skew allowed between a sender and the server
EARLIEST_YEAR = 2000


def _server_now() -> datetime:
    """The runtime's clock (tests drive a manual one); the system clock outside a request."""
    if has_app_context() and "gridloop" in current_app.extensions:
        return current_app.extensions["gridloop"].clock.now()
    return datetime.now(UTC)


class UtcTime(fields.AwareDateTime):
    """An ISO 8601 time with an offset that converts to UTC without overflowing (it is stored in
    UTC). Query filters use it: any storable time is a fair bound."""

    default_error_messages = {"out_of_range": "is out of range once converted to UTC"}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.make_error("out_of_range") from None
        return parsed


class EventTime(UtcTime):
    """When something happened, as its sender saw it: year 2000 up to the server's clock plus
    FUTURE_TOLERANCE."""

    default_error_messages = {
        "too_early": f"must not be before the year {EARLIEST_YEAR}",
        "in_future": "is in the future: {ahead} ahead of the server's clock ({now}); at most "
                     f"{int(FUTURE_TOLERANCE.total_seconds() // 60)} minutes ahead is accepted "
                     "(check the sender's clock)",
    }

    def _deserialize(self, value: Any, attr, data, **kwargs) -> datetime:
        at = super()._deserialize(value, attr, data, **kwargs)
        if at.year < EARLIEST_YEAR:
            raise self.make_error("too_early")
        now = _server_now()
        if at > now + FUTURE_TOLERANCE:
            raise self.make_error("in_future", ahead=_span(at - now), now=now.isoformat(timespec="seconds"))
        return at


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"
