from datetime import timedelta

from workflows.demo_seed import seed_demo
from workflows.grids import GridIndex, point_inside
from workflows.routing import route


def test_the_demo_tenant_is_a_living_city_and_seeding_twice_changes_nothing(db, clock):
    first = seed_demo(db, clock.now())
    assert first.seeded and first.grids == 1 + 6 + 63 + 284
    assert first.inspectors == 284 + 63 and first.supervisors == 1 + 6 + 63
    again = seed_demo(db, clock.now())
    assert not again.seeded and (again.grids, again.inspectors) == (first.grids, first.inspectors)
    index = GridIndex.load(db, "320700")
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[0]
    with db.session() as s:
        lon, lat = point_inside(db, unit)
        r = route(s, city="320700", point=(lon, lat), category="air.exceedance", at=clock.now() + timedelta(hours=1),
                  locate=index.locate, ancestors=index.ancestors)
    assert (r.grid_code, r.assignees) == (unit, [f"insp-{unit}"])
