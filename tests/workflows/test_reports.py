"""The rules of reports from outside: a citizen's report of a problem already reported nearby joins
its open case; a petition's limits (15 days to accept, 60 to finish, one extension of up to 30) in
natural days, their state as the case moves, and the extension's conditions."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine import instances, tasks
from engine.errors import Conflict, InvalidInput, NotFound
from tests.city import inside
from workflows import reports
from workflows.cases import Case, CaseAlarm
from workflows.reports import DuplicatePolicy, Petition, Report


def report(clock, request_id, lon=None, lat=None, category="solid_waste", **kw) -> Report:
    return Report(tenant="320700", request_id=request_id, category=category, received_at=clock.now(), lon=lon,
                  lat=lat, **kw)


def east(lon: float, lat: float, metres: float) -> tuple[float, float]:
    return lon + metres / (111_320.0 * math.cos(math.radians(lat))), lat


def count_cases(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Case))


def do(rt, iid, element, actor="sup", **variables):
    (task,) = [t for t in instances.open_tasks(rt, iid) if t.element_id == element]
    tasks.complete(rt, task.id, actor, variables)


# -- duplicates --------------------------------------------------------------------------------------

def test_distance_is_great_circle_metres():
    assert reports.distance_m(119.2, 34.6, 119.2, 34.6) == 0
    assert reports.distance_m(119.2, 34.6, 119.2, 34.601) == pytest.approx(111.2, abs=0.2)
    assert reports.distance_m(*east(119.2, 34.6, 100), 119.2, 34.6) == pytest.approx(100, abs=0.5)


def test_a_report_within_the_radius_joins_the_open_case_as_an_occurrence(city, db, clock):
    rt, index = city
    _unit, lon, lat = inside(db, index)
    first = reports.file_report(rt, index, report(clock, "R-1", lon, lat, reporter={"name": "甲"}), "app")
    clock.advance(timedelta(hours=5))
    second = reports.file_report(rt, index, report(clock, "R-2", *east(lon, lat, 90)), "app")
    assert (first.outcome, second.outcome) == ("filed", "occurrence")
    assert second.case.id == first.case.id and second.case.occurrences == 2
    with db.session() as s:
        case = s.get(Case, first.case.id)
        alarms = s.scalars(select(CaseAlarm).where(CaseAlarm.case_id == case.id).order_by(CaseAlarm.id)).all()
    assert case.last_seen == clock.now() and case.details["reporter"] == {"name": "甲"}
    assert [a.external_id for a in alarms] == ["R-1", "R-2"] and alarms[1].details["joined"] is True
    assert reports.file_report(rt, index, report(clock, "R-2", *east(lon, lat, 90)), "app").outcome == "repeat"
    assert count_cases(db) == 1


def test_the_nearest_open_case_is_joined_when_several_are_in_reach(city, db, clock):
    rt, index = city
    _unit, lon, lat = inside(db, index)
    west = reports.file_report(rt, index, report(clock, "R-W", *east(lon, lat, -70)), "app").case
    near = reports.file_report(rt, index, report(clock, "R-E", *east(lon, lat, 70)), "app").case
    assert west.id != near.id  # 140 m apart: two cases
    joined = reports.file_report(rt, index, report(clock, "R-3", *east(lon, lat, 50)), "app")
    assert joined.case.id == near.id


@pytest.mark.parametrize("change", ["far", "category", "stale", "closed", "no point"])
def test_what_does_not_join(city, db, clock, change):
    rt, index = city
    _unit, lon, lat = inside(db, index)
    first = reports.file_report(rt, index, report(clock, "R-1", lon, lat), "app").case
    second = report(clock, "R-2", lon, lat)
    if change == "far":
        second = report(clock, "R-2", *east(lon, lat, 101))
    elif change == "category":
        second = report(clock, "R-2", lon, lat, category="noise")
    elif change == "stale":
        clock.advance(timedelta(hours=24, seconds=1))
        second = report(clock, "R-2", lon, lat)
    elif change == "closed":
        do(rt, first.instance_id, "review", review_result="invalid", invalid_reason="误报")
    elif change == "no point":
        second = report(clock, "R-2", address="同一地点")
    assert reports.file_report(rt, index, second, "app").outcome == "filed"
    assert count_cases(db) == 2


def test_the_policy_sets_radius_and_window(city, db, clock):
    rt, index = city
    _unit, lon, lat = inside(db, index)
    reports.file_report(rt, index, report(clock, "R-1", lon, lat), "app")
    clock.advance(timedelta(hours=30))
    wide = DuplicatePolicy(radius_m=500, window=timedelta(hours=48))
    assert reports.file_report(rt, index, report(clock, "R-2", *east(lon, lat, 400)), "app", wide).outcome == \
        "occurrence"


def test_a_report_by_address_only_goes_to_the_city_with_the_reason(city, db, clock):
    rt, index = city
    intake = reports.file_report(rt, index, report(clock, "R-1", address="新浦区某小区门口"), "app")
    with db.session() as s:
        case = s.get(Case, intake.case.id)
    assert case.grid_code == "320700" and case.route_reason.startswith("reported by address only")
    assert case.details["report"]["address"] == "新浦区某小区门口"


def test_request_ids_are_distinct_and_dated_in_china_time():
    at = datetime(2026, 9, 29, 17, 0, tzinfo=UTC)  # 30 September, 01:00 in China
    ids = {reports.new_request_id(at) for _ in range(100)}
    assert len(ids) == 100 and all(i.startswith("R20260930-") and len(i) <= 36 for i in ids)


# -- petitions ---------------------------------------------------------------------------------------

def petition(clock, petition_id="XF-1", received_at=None, **kw) -> Petition:
    return Petition(tenant="320700", petition_id=petition_id, category="petition",
                    received_at=received_at or clock.now(), content="企业夜间偷排废水",
                    petitioner={"name": "李四", "phone": "13900000000"}, **kw)


def test_limits_are_natural_days_from_the_china_date_of_receipt():
    late_evening = datetime(2026, 9, 30, 15, 30, tzinfo=UTC)  # 23:30 on 30 September in China
    assert reports.petition_limits(late_evening) == {
        "received_on": "2026-09-30", "acceptance_due": "2026-10-15", "completion_due": "2026-11-29",
        "counted_in": "natural days"}  # the National Day holiday counts like any other day


def test_a_petition_is_a_case_with_its_limits_and_the_petitioner_to_tell(city, db, clock):
    rt, index = city
    unit, lon, lat = inside(db, index)
    intake = reports.file_petition(rt, index, petition(clock, lon=lon, lat=lat), "petition-system")
    case = intake.case
    assert (intake.outcome, case.source, case.external_id, case.grid_code) == ("filed", "petition", "XF-1", unit)
    assert case.details["petition"]["acceptance_due"] == "2026-10-14"  # received 29 September (China)
    assert case.details["reporter"] == {"name": "李四", "phone": "13900000000"}
    again = reports.file_petition(rt, index, petition(clock), "petition-system")
    assert (again.outcome, again.case.id) == ("repeat", case.id)
    with pytest.raises(InvalidInput):
        reports.file_petition(rt, index, petition(clock, "XF-2", clock.now() + timedelta(hours=1)), "x")


def test_acceptance_is_met_by_the_review_and_completion_by_the_case_closing(city, db, clock):
    rt, index = city
    unit, lon, lat = inside(db, index)
    case = reports.file_petition(rt, index, petition(clock, lon=lon, lat=lat), "x").case
    status = reports.petition_status(db, case, clock.now())
    assert (status["acceptance"].state, status["acceptance"].days_left) == ("pending", 15)
    assert (status["completion"].state, status["completion"].due) == ("pending", date(2026, 11, 28))
    clock.advance(timedelta(days=10))
    do(rt, case.instance_id, "review", review_result="valid")
    do(rt, case.instance_id, "dispatch")
    do(rt, case.instance_id, "sign_for", actor=f"insp-{unit}")
    do(rt, case.instance_id, "handle", actor=f"insp-{unit}", handle_result="done", finding_kind="rectified")
    clock.advance(timedelta(days=20))
    do(rt, case.instance_id, "verify", verified=True)
    case = reports.find_petition(db, "XF-1")
    status = reports.petition_status(db, case, clock.now())
    assert (status["acceptance"].state, status["acceptance"].done_at) == ("met", clock.now() - timedelta(days=20))
    assert (status["completion"].state, status["completion"].done_at) == ("met", clock.now())


def test_limits_turn_overdue_and_a_late_decision_is_late(city, db, clock):
    rt, index = city
    case = reports.file_petition(rt, index, petition(clock), "x").case
    clock.set(datetime(2026, 10, 14, 15, 59, tzinfo=UTC))  # 23:59 on the 15th day, China time
    assert reports.petition_status(db, case, clock.now())["acceptance"].state == "pending"
    clock.advance(timedelta(minutes=1))
    assert reports.petition_status(db, case, clock.now())["acceptance"].state == "overdue"
    do(rt, case.instance_id, "review", review_result="valid")
    status = reports.petition_status(db, reports.find_petition(db, "XF-1"), clock.now())
    assert status["acceptance"].state == "late" and status["completion"].state == "pending"
    clock.set(datetime(2026, 11, 28, 16, 0, tzinfo=UTC))  # 29 November in China: day 61
    assert reports.petition_status(db, case, clock.now())["completion"].state == "overdue"


def test_a_refusal_at_review_decides_acceptance_and_ends_the_petition(city, db, clock):
    rt, index = city
    case = reports.file_petition(rt, index, petition(clock), "x").case
    do(rt, case.instance_id, "review", review_result="invalid", invalid_reason="不属于本机关职责")
    status = reports.petition_status(db, reports.find_petition(db, "XF-1"), clock.now())
    assert (status["acceptance"].state, status["completion"].state) == ("met", "met")


def test_one_extension_of_at_most_30_days_before_the_limit(city, db, clock):
    rt, index = city
    case = reports.file_petition(rt, index, petition(clock), "x").case
    for days in (0, 31):
        with pytest.raises(InvalidInput):
            reports.extend_petition(rt, "XF-1", days, "情况复杂", "sup")
    with pytest.raises(NotFound):
        reports.extend_petition(rt, "XF-404", 10, "情况复杂", "sup")
    extended = reports.extend_petition(rt, "XF-1", 30, "情况复杂，需多部门会商", "sup")
    assert extended.details["petition"]["completion_due"] == "2026-12-28"
    assert extended.details["petition"]["extension"]["previous_due"] == "2026-11-28"
    assert reports.petition_status(db, extended, clock.now())["completion"].due == date(2026, 12, 28)
    with pytest.raises(Conflict, match="already"):
        reports.extend_petition(rt, "XF-1", 5, "再延", "sup")
    actions = [e.action for e in instances.history(rt, case.instance_id)]
    assert "petition.extended" in actions


def test_no_extension_after_the_limit_or_once_closed(city, db, clock):
    rt, index = city
    reports.file_petition(rt, index, petition(clock), "x")
    clock.set(datetime(2026, 11, 28, 16, 0, tzinfo=UTC))  # day 61
    with pytest.raises(Conflict, match="before it"):
        reports.extend_petition(rt, "XF-1", 10, "迟了", "sup")
    case = reports.file_petition(rt, index, petition(clock, "XF-2"), "x").case
    do(rt, case.instance_id, "review", review_result="invalid", invalid_reason="重复信访")
    with pytest.raises(Conflict, match="closed"):
        reports.extend_petition(rt, "XF-2", 10, "x", "sup")
