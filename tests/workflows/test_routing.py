"""Routing: unit → on-duty inspectors → parent levels → city supervisors; nothing dropped."""

from datetime import timedelta

import pytest

from workflows.people import DutyShift, Person
from workflows.routing import route

CITY, DISTRICT, TOWN, UNIT = "320700", "320706", "320706001", "320706001000001"
CHAIN = {UNIT: [UNIT, TOWN, DISTRICT, CITY]}


def locate(lon, lat):
    return UNIT if (lon, lat) == (119.2, 34.6) else None


def ancestors(code):
    return CHAIN[code]


@pytest.fixture
def people(db, clock):
    now = clock.now()
    staff = [("wang", "inspector", UNIT), ("li", "inspector", TOWN), ("zhao", "supervisor", CITY),
             ("off", "inspector", UNIT)]
    with db.transaction() as s:
        rows = {name: Person(tenant=CITY, username=name, name=name, post=post, grid_code=grid)
                for name, post, grid in staff}
        s.add_all(rows.values())
        s.flush()
        s.add_all([
            DutyShift(person_id=rows["wang"].id, grid_code=UNIT, category="air", starts_at=now,
                      ends_at=now + timedelta(hours=8)),
            DutyShift(person_id=rows["li"].id, grid_code=TOWN, category=None, starts_at=now,
                      ends_at=now + timedelta(hours=8)),
            DutyShift(person_id=rows["zhao"].id, grid_code=CITY, category=None, starts_at=now - timedelta(days=1),
                      ends_at=now + timedelta(days=1)),
            DutyShift(person_id=rows["off"].id, grid_code=UNIT, category=None, starts_at=now - timedelta(hours=9),
                      ends_at=now - timedelta(hours=1)),  # shift already over
        ])
    return now


def go(db, now, point, category="air"):
    with db.session() as s:
        return route(s, city=CITY, point=point, category=category, at=now, locate=locate, ancestors=ancestors)


def test_the_inspector_on_duty_in_the_unit_gets_it(db, people):
    r = go(db, people, (119.2, 34.6))
    assert (r.grid_code, r.handled_at, r.assignees, r.role) == (UNIT, UNIT, ["wang"], "inspector")


def test_a_category_nobody_covers_in_the_unit_falls_back_to_the_town(db, people):
    r = go(db, people, (119.2, 34.6), category="water")
    assert (r.grid_code, r.handled_at, r.assignees) == (UNIT, TOWN, ["li"])
    assert "fell back" in r.reason


def test_after_the_shifts_end_it_goes_to_the_city_supervisors(db, people):
    r = go(db, people + timedelta(hours=9), (119.2, 34.6))
    assert (r.handled_at, r.assignees, r.role) == (CITY, ["zhao"], "supervisor")


def test_an_alarm_outside_every_grid_goes_to_the_city_with_the_reason(db, people):
    r = go(db, people, (100.0, 20.0))
    assert (r.grid_code, r.role, r.assignees) == (CITY, "supervisor", ["zhao"])
    assert "outside every grid" in r.reason


def test_an_alarm_without_location_goes_to_the_city(db, people):
    r = go(db, people, None)
    assert r.grid_code == CITY and r.reason == "the alarm has no location"


def test_inactive_people_are_not_routed_to(db, people):
    from sqlalchemy import update

    with db.transaction() as s:
        s.execute(update(Person).where(Person.username == "wang").values(active=False))
    assert go(db, people, (119.2, 34.6)).assignees == ["li"]
