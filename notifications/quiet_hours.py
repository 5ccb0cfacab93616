"""Quiet hours: non-urgent notices wait for the morning; urgent ones never wait."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone

CHINA = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class QuietHours:
    start: time | None = time(22, 0)  # None: no quiet hours
    end: time = time(7, 0)
    tz: timezone = CHINA

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """"22:00-07:00" (local time), or "" / "off" for none."""
        text = text.strip()
        if text.lower() in ("", "off", "none"):
            return cls(start=None)
        try:
            start, end = (time.fromisoformat(part.strip()) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"quiet hours must look like 22:00-07:00, not {text!r}") from None
        return cls(start=start, end=end)

    def release(self, at: datetime) -> datetime:
        """When a non-urgent notice made at `at` may go out: `at` itself, or the end of the quiet hours."""
        if self.start is None or self.start == self.end:
            return at
        local = at.astimezone(self.tz)
        now = local.time()
        wraps = self.start > self.end  # 22:00-07:00 spans midnight
        quiet = (now >= self.start or now < self.end) if wraps else (self.start <= now < self.end)
        if not quiet:
            return at
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.astimezone(at.tzinfo)
