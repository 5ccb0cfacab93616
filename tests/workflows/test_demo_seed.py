from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from workflows.demo_seed import seed_demo
from workflows.duty import MAX_SHIFT
from workflows.grids import GridIndex, point_inside
from workflows.people import DutyShift, Person
from workflows.routing import route
from workflows.working_time import seed_from_package


def test_the_demo_tenant_is_a_living_city_and_seeding_twice_changes_nothing(db, clock):
    first = seed_demo(db, clock.now())
    assert first.seeded and first.grids == 1 + 6 + 63 + 284
    assert first.inspectors == 284 + 63 + 7 and first.supervisors == 1 + 6 + 63 + 7  # + the centres' duty teams
    again = seed_demo(db, clock.now())
    assert not again.seeded and (again.grids, again.inspectors) == (first.grids, first.inspectors)
    index = GridIndex.load(db, "320700")
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[0]
    with db.session() as s:
        lon, lat = point_inside(db, unit)
        r = route(s, city="320700", point=(lon, lat), category="air.exceedance", at=clock.now() + timedelta(hours=1),
                  locate=index.locate, ancestors=index.ancestors)
    assert (r.grid_code, r.assignees) == (unit, [f"insp-{unit}"])


CHINA = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize("when, expected", [
    (datetime(2026, 10, 16, 10, 0), "unit"),  # a Friday morning: the unit's own inspector
    (datetime(2026, 10, 16, 23, 39), "district"),  # Friday night: the district centre's night duty
    (datetime(2026, 10, 17, 15, 0), "district"),  # Saturday: holiday duty
    (datetime(2026, 10, 5, 3, 0), "district"),  # National Day, before dawn
    (datetime(2026, 10, 10, 9, 0), "unit"),  # the swapped working Saturday
    (datetime(2026, 10, 19, 8, 29), "district"),  # Monday, a minute before the day shift
    (datetime(2026, 10, 19, 8, 30), "unit"),
])
def test_the_demo_roster_routes_at_any_hour_by_day_to_the_unit_else_to_the_district_centre(db, when, expected):
    seed_from_package(db, datetime(2026, 9, 1, tzinfo=UTC), years=[2026])
    seed_demo(db, datetime(2026, 9, 29, 0, 0, tzinfo=UTC))
    index = GridIndex.load(db, "320700")
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[0]
    district = index.ancestors(unit)[2]
    with db.session() as s:
        r = route(s, city="320700", point=point_inside(db, unit), category="noise",
                  at=when.replace(tzinfo=CHINA), locate=index.locate, ancestors=index.ancestors)
    assert r.role == "inspector"
    assert r.assignees == ([f"insp-{unit}"] if expected == "unit" else [f"duty-insp-{district}"])


def test_the_demo_roster_never_overlaps_nor_leaves_a_centre_unwatched(db):
    seed_from_package(db, datetime(2026, 9, 1, tzinfo=UTC), years=[2026])
    start = datetime(2026, 9, 29, 0, 0, tzinfo=UTC)
    seed_demo(db, start, days_on_duty=30)
    with db.session() as s:
        shifts = s.execute(select(Person.username, DutyShift.kind, DutyShift.starts_at, DutyShift.ends_at)
                           .join(Person, Person.id == DutyShift.person_id)
                           .where(Person.username == "duty-sup-320700").order_by(DutyShift.starts_at)).all()
        kinds = set(s.scalars(select(DutyShift.kind).distinct()))
        longest = max(e - b for b, e in s.execute(select(DutyShift.starts_at, DutyShift.ends_at)).all())
    assert kinds == {"day", "night", "holiday"} and longest <= MAX_SHIFT
    # the city centre's duty supervisor: every night and every day off, back to back with the day shifts
    for (_, _, _, end), (_, _, begin, _) in pairwise(shifts):
        local = begin.astimezone(CHINA)
        assert begin >= end
        if begin > end:  # a gap: the working day's day shift, 08:30 to 17:30
            assert (end.astimezone(CHINA).time(), local.time()) == (time(8, 30), time(17, 30))
