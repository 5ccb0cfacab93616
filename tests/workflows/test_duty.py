"""Duty roster use cases on PostgreSQL with real concurrency: two requests rostering the same person
for overlapping watches at once cannot both succeed."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from engine.clock import ManualClock
from engine.errors import Conflict
from engine.runtime import Runtime
from workflows import duty
from workflows.duty import NewShift
from workflows.grids import Grid
from workflows.people import DutyShift, Person, staff_viewer

NOW = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)


def test_two_overlapping_shifts_for_one_person_at_once_one_wins_the_other_is_409(pg):
    rt = Runtime(db=pg, clock=ManualClock(NOW))
    with pg.transaction() as s:
        s.add_all(Grid(tenant="320700", code=c, name=c, level=lv, parent_code=p, valid_from=NOW - timedelta(days=1),
                       geometry="{}", min_lon=0, min_lat=0, max_lon=1, max_lat=1)
                  for c, lv, p in (("320700", "city", None), ("320706", "district", "320700")))
        person = Person(tenant="320700", username="li", name="li", post="inspector", grid_code="320706")
        s.add(person)
        s.flush()
        pid = person.id
    admin = staff_viewer("admin", frozenset({"admin"}), None)
    barrier, outcomes = threading.Barrier(2), []

    def add(hours: int) -> None:
        barrier.wait()
        try:
            duty.add_shifts(rt, admin, [NewShift(pid, "320706", NOW + timedelta(hours=hours),
                                                 NOW + timedelta(hours=hours + 8), "night")])
            outcomes.append("added")
        except Conflict as exc:
            outcomes.append("409" if "overlaps duty shift" in exc.fields["startsAt"][0] else repr(exc))

    threads = [threading.Thread(target=add, args=(h,)) for h in (1, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409", "added"]
    with pg.session() as s:
        assert s.scalar(select(func.count()).select_from(DutyShift)) == 1
