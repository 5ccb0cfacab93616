"""Alarm intake: idempotent, deduplicated into open cases, routed, and filed as env_case instances."""

from datetime import timedelta

import pytest

from engine import instances
from tests.city import alarm, inside
from workflows.cases import UnknownCategory, file_alarm


def test_an_alarm_becomes_a_case_routed_to_the_unit_inspector(city, db, clock):
    rt, index = city
    unit, lon, lat = inside(db, index)
    intake = file_alarm(rt, index, alarm(clock, lon=lon, lat=lat), "system:monitoring")
    assert intake.outcome == "filed" and intake.case.grid_code == unit
    (review,) = instances.open_tasks(rt, intake.case.instance_id)
    assert (review.element_id, review.candidate_scope) == ("review", unit)
    assert instances.variables(rt, intake.case.instance_id)["inspector"] == f"insp-{unit}"


def test_the_same_alarm_twice_is_one_case(city, db, clock):
    rt, index = city
    _, lon, lat = inside(db, index)
    first = file_alarm(rt, index, alarm(clock, lon=lon, lat=lat), "s")
    again = file_alarm(rt, index, alarm(clock, lon=lon, lat=lat), "s")
    assert again.outcome == "repeat" and again.case.id == first.case.id
    assert again.case.instance_id == first.case.instance_id


def test_a_new_alarm_for_an_open_case_of_the_same_source_and_category_is_an_occurrence(city, db, clock):
    rt, index = city
    _, lon, lat = inside(db, index)
    first = file_alarm(rt, index, alarm(clock, "A-1", lon, lat), "s")
    clock.advance(timedelta(minutes=10))
    second = file_alarm(rt, index, alarm(clock, "A-2", lon, lat), "s")
    assert second.outcome == "occurrence" and second.case.id == first.case.id and second.case.occurrences == 2
    other = file_alarm(rt, index, alarm(clock, "A-3", lon, lat, category="water.exceedance"), "s")
    assert other.outcome == "filed" and other.case.id != first.case.id


@pytest.mark.parametrize("lon,lat,reason", [(None, None, "no location"), (100.0, 20.0, "outside every grid")])
def test_alarms_without_a_place_go_to_the_city_supervisors_with_the_reason(city, clock, lon, lat, reason):
    rt, index = city
    intake = file_alarm(rt, index, alarm(clock, lon=lon, lat=lat, source_ref=None), "s")
    assert intake.case.grid_code == "320700" and reason in intake.case.route_reason
    (review,) = instances.open_tasks(rt, intake.case.instance_id)
    assert review.candidate_scope == "320700"


def test_an_unknown_category_is_refused_and_nothing_is_filed(city, clock):
    rt, index = city
    with pytest.raises(UnknownCategory):
        file_alarm(rt, index, alarm(clock, category="no.such"), "s")
    assert instances.query(rt, instances.InstanceQuery(key="env_case"))[1] == 0


def test_an_alarm_after_the_case_has_closed_opens_a_new_case(city, db, clock):
    rt, index = city
    _, lon, lat = inside(db, index)
    first = file_alarm(rt, index, alarm(clock, "A-1", lon, lat), "s")
    instances.cancel(rt, first.case.instance_id, "admin", "closed for the test")
    later = file_alarm(rt, index, alarm(clock, "A-2", lon, lat), "s")
    assert later.outcome == "filed" and later.case.id != first.case.id
