"""Working time on the Chinese statutory calendar: SLA deadlines in working hours or days.

A day is a working day unless it is a statutory holiday; a weekend day is a working day when it
is a swapped working day (调休). Holidays are data, not code: past years are seeded from the
`chinese-calendar` package (which stops at 2026) and administrators load each new year. A year
without data falls back to "weekends off" and says so loudly (log + health), never silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from time import monotonic as _monotonic
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Integer, String, delete, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, Database, UTCDateTime

log = logging.getLogger(__name__)

CHINA = ZoneInfo("Asia/Shanghai")


class CalendarDay(Base):
    """A day that differs from the weekday/weekend rule: a holiday, or a swapped working day."""

    __tablename__ = "calendar_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # holiday | workday
    name: Mapped[str | None] = mapped_column(String(100))


class CalendarYear(Base):
    """A year whose holidays are known (who loaded them, from where)."""

    __tablename__ = "calendar_year"

    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(50))
    loaded_by: Mapped[str] = mapped_column(String(200))
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class WorkSchedule:
    """Working periods of a working day, local time (default: 08:30–12:00 and 13:30–17:30)."""

    periods: tuple[tuple[time, time], ...] = ((time(8, 30), time(12, 0)), (time(13, 30), time(17, 30)))
    tz: ZoneInfo = CHINA

    @property
    def hours_per_day(self) -> float:
        return sum((_minutes(b) - _minutes(a)) for a, b in self.periods) / 60


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass
class WorkCalendar:
    holidays: dict[date, str | None] = field(default_factory=dict)  # day → its name (calendar_day.name)
    workdays: dict[date, str | None] = field(default_factory=dict)
    known_years: frozenset[int] = frozenset()
    schedule: WorkSchedule = field(default_factory=WorkSchedule)
    guessed_years: set[int] = field(default_factory=set)  # years asked about without data

    def is_working_day(self, d: date) -> bool:
        if d.year not in self.known_years and d.year not in self.guessed_years:
            self.guessed_years.add(d.year)
            log.warning("no holiday data for %s: counting weekends only; load the year's calendar", d.year,
                        extra={"year": d.year})
        if d in self.holidays:
            return False
        if d in self.workdays:
            return True
        return d.weekday() < 5

    def _periods_of(self, d: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(d):
            return []
        tz = self.schedule.tz
        return [(datetime.combine(d, a, tz), datetime.combine(d, b, tz)) for a, b in self.schedule.periods]

    def add_working_hours(self, start: datetime, hours: float) -> datetime:
        """The moment `hours` of working time after `start` (aware datetime; result in China time)."""
        if hours < 0:
            raise ValueError("hours must not be negative")
        remaining = timedelta(hours=hours)
        cursor = start.astimezone(self.schedule.tz)
        day = cursor.date()
        for _ in range(3700):  # ten years of days: a bound, not a limit anyone meets
            for begin, end in self._periods_of(day):
                if end <= cursor:
                    continue
                begin = max(begin, cursor)
                if begin + remaining <= end:
                    return begin + remaining
                remaining -= end - begin
            day += timedelta(days=1)
            cursor = datetime.combine(day, time(0), self.schedule.tz)
        raise ValueError("no working time found within ten years")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The end of the `days`-th working day after the day of `start` (e.g. 3 working days from a
        Friday afternoon before a holiday ends at 17:30 on the third working day after it)."""
        if days < 1:
            raise ValueError("days must be at least 1")
        day = start.astimezone(self.schedule.tz).date()
        counted = 0
        for _ in range(3700):
            day += timedelta(days=1)
            if self.is_working_day(day):
                counted += 1
                if counted == days:
                    return datetime.combine(day, self.schedule.periods[-1][1], self.schedule.tz)
        raise ValueError("no working day found within ten years")

    def working_hours_between(self, a: datetime, b: datetime) -> float:
        """Working hours from `a` to `b` (negative when b is before a): how late or early something was."""
        if b < a:
            return -self.working_hours_between(b, a)
        total = timedelta()
        day, last = a.astimezone(self.schedule.tz).date(), b.astimezone(self.schedule.tz).date()
        while day <= last:
            for begin, end in self._periods_of(day):
                lo, hi = max(begin, a), min(end, b)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total.total_seconds() / 3600


class CalendarError(ValueError):
    """A year refused; `fields` names the list each problem is about (holidays, workdays)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for messages in fields.values() for m in messages))
        self.fields = fields


def load_year(db: Database, now: datetime, *, year: int, holidays: dict[date, str], workdays: dict[date, str],
              source: str, actor: str) -> None:
    """Replace one year's holidays and swapped working days, atomically. CalendarError names the
    problems per list (the API and `gridloop calendar load` answer the same words)."""
    problems = {
        "holidays": [f"{d} is not in {year}" for d in sorted(holidays) if d.year != year]
        + [f"{d} is both a holiday and a working day" for d in sorted(set(holidays) & set(workdays))],
        "workdays": [f"{d} is not in {year}" for d in sorted(workdays) if d.year != year]
        + [f"{d} is a weekday: a swapped working day must fall on a weekend" for d in sorted(workdays)
           if d.weekday() < 5]}
    if any(problems.values()):
        raise CalendarError({name: messages for name, messages in problems.items() if messages})
    rows = [{"day": d, "kind": "holiday", "name": n} for d, n in sorted(holidays.items())]
    rows += [{"day": d, "kind": "workday", "name": n} for d, n in sorted(workdays.items())]
    with db.transaction() as s:
        s.execute(delete(CalendarDay).where(CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31)))
        if rows:
            s.execute(insert(CalendarDay), rows)
        s.execute(delete(CalendarYear).where(CalendarYear.year == year))
        s.add(CalendarYear(year=year, source=source, loaded_by=actor, loaded_at=now))


def seed_from_package(db: Database, now: datetime, years: Iterable[int] | None = None) -> list[int]:
    """Load the years the `chinese-calendar` package knows and the database does not have yet."""
    import chinese_calendar

    with db.session() as s:
        present = set(s.scalars(select(CalendarYear.year)))
    available = sorted({d.year for d in chinese_calendar.holidays})
    wanted = [y for y in (years or available) if y in available and y not in present]
    for year in wanted:
        load_year(db, now, year=year, source=f"chinese-calendar {chinese_calendar.__version__}", actor="system:seed",
                  holidays={d: n for d, n in chinese_calendar.holidays.items() if d.year == year},
                  workdays={d: n for d, n in chinese_calendar.workdays.items() if d.year == year})
    return wanted


class CalendarService:
    """The calendar as the process sees it: read from the database and cached; a load through this
    process invalidates it at once, one through another process is seen within `max_age`."""

    def __init__(self, db: Database, schedule: WorkSchedule | None = None, max_age: float = 300.0) -> None:
        self._db = db
        self._schedule = schedule or WorkSchedule()
        self._max_age = max_age
        self._calendar: WorkCalendar | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def calendar(self) -> WorkCalendar:
        with self._lock:
            if self._calendar is None or _monotonic() - self._read_at > self._max_age:
                self._calendar, self._read_at = self._read(), _monotonic()
            return self._calendar

    def invalidate(self) -> None:
        with self._lock:
            self._calendar = None

    def _read(self) -> WorkCalendar:
        with self._db.session() as s:
            days = s.execute(select(CalendarDay.day, CalendarDay.kind, CalendarDay.name)).all()
            years = frozenset(s.scalars(select(CalendarYear.year)))
        return WorkCalendar(holidays={d: n for d, k, n in days if k == "holiday"},
                            workdays={d: n for d, k, n in days if k == "workday"},
                            known_years=years, schedule=self._schedule)

    def warnings(self, today: date) -> list[str]:
        """For the health endpoint, `today` being the date in China: years without holiday data that
        are in use — this one, any a deadline was counted in, and the next one from 1 December (the
        State Council publishes it in November or December; earlier, nobody could load it yet)."""
        cal = self.calendar()
        years = {today.year, *cal.guessed_years} | ({today.year + 1} if today.month == 12 else set())
        return [f"no holiday data for {y}: SLAs count weekends only; load it (PUT /api/v1/calendar/{y} or "
                "`gridloop calendar load FILE`)" for y in sorted(years) if y not in cal.known_years]
