"""SLA deadlines in working time on the statutory calendar, including 调休 (swapped working days)."""

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from workflows.working_time import (
    CHINA,
    CalendarDay,
    CalendarError,
    CalendarService,
    WorkCalendar,
    load_year,
    seed_from_package,
)


def at(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=CHINA)


@pytest.fixture
def cal(db, clock) -> WorkCalendar:
    seed_from_package(db, clock.now(), years=[2025, 2026])
    return CalendarService(db).calendar()


def test_working_hours_skip_lunch_and_night(cal):
    assert cal.add_working_hours(at(2026, 3, 2, 11, 0), 2) == at(2026, 3, 2, 14, 30)   # Mon: 1 h + 1 h after lunch
    assert cal.add_working_hours(at(2026, 3, 2, 17, 0), 1) == at(2026, 3, 3, 9, 0)     # into Tuesday morning
    assert cal.add_working_hours(at(2026, 3, 2, 7, 0), 0.5) == at(2026, 3, 2, 9, 0)    # before opening


def test_a_deadline_across_the_spring_festival_lands_on_the_swapped_saturday(cal):
    # 2026: Feb 14 (Sat) is a working day, Feb 15–23 are holidays.
    assert cal.is_working_day(date(2026, 2, 14)) and not cal.is_working_day(date(2026, 2, 16))
    assert cal.add_working_hours(at(2026, 2, 13, 17, 0), 1) == at(2026, 2, 14, 9, 0)
    assert cal.add_working_hours(at(2026, 2, 14, 17, 0), 1) == at(2026, 2, 24, 9, 0)


def test_working_days_across_national_day_count_the_swapped_saturday(cal):
    # 2026: Oct 1–7 holidays; Oct 10 (Sat) is a working day.
    assert cal.add_working_days(at(2026, 9, 30, 10, 0), 1) == at(2026, 10, 8, 17, 30)
    assert cal.add_working_days(at(2026, 9, 30, 10, 0), 3) == at(2026, 10, 10, 17, 30)


def test_working_hours_between_is_the_inverse_of_adding(cal):
    start = at(2026, 9, 30, 16, 0)
    end = cal.add_working_hours(start, 13.25)
    assert cal.working_hours_between(start, end) == pytest.approx(13.25)
    assert cal.working_hours_between(end, start) == pytest.approx(-13.25)


def test_a_year_without_data_counts_weekends_only_and_says_so(cal, caplog):
    assert 2027 not in cal.known_years
    with caplog.at_level("WARNING"):
        assert cal.is_working_day(date(2027, 1, 1))  # really a holiday, but nobody loaded 2027
    assert "no holiday data for 2027" in caplog.text
    assert not cal.is_working_day(date(2027, 1, 2))  # a Saturday


def test_health_warns_about_the_coming_year_from_the_first_of_december(db, clock):
    seed_from_package(db, clock.now(), years=[2026])
    assert CalendarService(db).warnings(date(2026, 11, 30)) == []  # not published yet, as a rule
    (warning,) = CalendarService(db).warnings(date(2026, 12, 1))
    assert warning.startswith("no holiday data for 2027: SLAs count weekends only")


def test_an_administrator_loads_a_new_year(db, clock):
    load_year(db, clock.now(), year=2027, source="国务院办公厅通知", actor="admin",
              holidays={date(2027, 1, 1): "元旦"}, workdays={date(2027, 2, 6): "春节调休"})
    cal = CalendarService(db).calendar()
    assert not cal.is_working_day(date(2027, 1, 1))
    assert cal.is_working_day(date(2027, 2, 6))  # a Saturday, swapped
    assert 2027 in cal.known_years


def test_loading_a_year_again_replaces_it(db, clock):
    load_year(db, clock.now(), year=2027, source="a", actor="admin", holidays={date(2027, 1, 1): "x"}, workdays={})
    load_year(db, clock.now(), year=2027, source="b", actor="admin", holidays={date(2027, 1, 4): "y"}, workdays={})
    cal = CalendarService(db).calendar()
    assert cal.is_working_day(date(2027, 1, 1)) and not cal.is_working_day(date(2027, 1, 4))


@pytest.mark.parametrize("holidays,workdays,message", [
    ({date(2026, 1, 1): "x"}, {}, "not in 2027"),
    ({}, {date(2027, 1, 5): "x"}, "must fall on a weekend"),
    ({date(2027, 1, 2): "x"}, {date(2027, 1, 2): "y"}, "both"),
])
def test_bad_calendar_data_is_refused_and_nothing_changes(db, clock, holidays, workdays, message):
    with pytest.raises(CalendarError, match=message):
        load_year(db, clock.now(), year=2027, source="x", actor="admin", holidays=holidays, workdays=workdays)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(CalendarDay)) == 0


def test_seeding_is_idempotent(db, clock):
    assert seed_from_package(db, clock.now(), years=[2026]) == [2026]
    assert seed_from_package(db, clock.now(), years=[2026]) == []


def test_sla_deadline_operation_uses_the_engine_clock(db, clock):
    from engine.operations import OperationContext, OperationRegistry
    from workflows.operations import register_operations

    seed_from_package(db, clock.now(), years=[2026])
    registry = OperationRegistry()
    register_operations(registry, calendar=CalendarService(db).calendar)
    ctx = OperationContext("i", "t", "e", now=at(2026, 9, 30, 16, 0))
    op = registry.get("sla.deadline").handler
    assert op({"hours": 2}, ctx) == at(2026, 10, 8, 9, 0).isoformat()  # 1.5 h on Sep 30, 0.5 h after the holiday
    assert op({"days": 1}, ctx) == at(2026, 10, 8, 17, 30).isoformat()
    with pytest.raises(ValueError):
        op({}, ctx)
    assert timedelta(0) < datetime.fromisoformat(op({"hours": 0.5}, ctx)) - ctx.now
