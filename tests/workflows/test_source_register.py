"""The source register's use cases called directly (the HTTP answers: tests/api/test_sources_api.py):
each commits its rows and its audit event together, and a refusal names the fields, in words, and
leaves the register and the audit trail as they were."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import AuditEvent
from workflows import source_register as register
from workflows.demo_seed import seed_demo
from workflows.grids import Grid, GridIndexCache, point_inside
from workflows.items import Items
from workflows.source_register import NewSource
from workflows.sources import MonitoringSource, PollutantLimit

TENANT = "320700"


@pytest.fixture
def unit(db, clock) -> str:
    seed_demo(db, clock.now())
    with db.session() as s:
        return s.scalar(select(Grid.code).where(Grid.tenant == TENANT, Grid.level == "unit",
                                                Grid.valid_to.is_(None), Grid.code.startswith("320706"))
                        .order_by(Grid.code).limit(1))


def new(mn: str = "MN1", **kw) -> NewSource:
    return NewSource(**{"mn": mn, "tenant": TENANT, "kind": "outlet", "name": "1#排口", "password": "pw", **kw})


def lim(pollutant: str = "a21026", data_kind: str = "hourly", value: str = "100") -> dict:
    return {"pollutant": pollutant, "data_kind": data_kind, "limit_value": Decimal(value), "unit": "mg/m3",
            "basis": "permit", "use_converted": False, "hysteresis": 0.1}


def items(*loaded, refused=None) -> Items:
    return Items(list(enumerate(loaded)), refused or {}, len(loaded) + len(refused or {}))


def audit_actions(db) -> list[tuple[str, str]]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id))]


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_register_places_the_source_and_audits_it_in_one_transaction(rt, db, unit):
    lon, lat = point_inside(db, unit)
    found = register.register(rt, "ops", new(lon=lon, lat=lat), GridIndexCache(db))
    assert (found.source.grid_code, found.limits, found.active_rules) == (unit, [], [])
    assert audit_actions(db) == [("source.registered", "ops")]


@pytest.mark.parametrize(("kw", "field", "words"), [
    ({"grid": "320799999"}, "grid", "not a current grid of tenant 320700"),
    ({"lon": 0.0, "lat": 0.0}, "lon", "outside every grid"),
    ({"tenant": "310100", "grid": "310101"}, "tenant", "has no grids"),
])
def test_a_source_that_cannot_be_placed_is_refused_naming_the_field(rt, db, unit, kw, field, words):
    with pytest.raises(InvalidInput) as refused:
        register.register(rt, "ops", new(**kw), GridIndexCache(db))
    assert list(refused.value.fields) == [field] and words in refused.value.fields[field][0]
    assert words in refused.value.message
    assert (count(db, MonitoringSource), audit_actions(db)) == (0, [])


def test_a_registered_mn_is_a_conflict_and_the_first_stays(rt, db, unit):
    register.register(rt, "ops", new(grid=unit), GridIndexCache(db))
    with pytest.raises(Conflict, match="MN1 is already registered"):
        register.register(rt, "ops", new(grid=unit, name="other"), GridIndexCache(db))
    assert audit_actions(db) == [("source.registered", "ops")]


def test_a_change_that_cannot_be_placed_changes_nothing(rt, db, unit):
    register.register(rt, "ops", new(grid=unit), GridIndexCache(db))
    with pytest.raises(InvalidInput) as refused:
        register.change(rt, "ops", "MN1", {"name": "renamed", "lon": 0.0, "lat": 0.0}, GridIndexCache(db))
    assert list(refused.value.fields) == ["lon"]
    with db.session() as s:
        assert (s.get(MonitoringSource, "MN1").name, s.get(MonitoringSource, "MN1").lon) == ("1#排口", None)
    with pytest.raises(NotFound):
        register.change(rt, "ops", "NOPE", {"name": "x"}, GridIndexCache(db))
    changed = register.change(rt, "ops", "MN1", {"grid": None}, GridIndexCache(db))
    assert changed.source.grid_code is None  # no location to place it by: the grid is cleared
    assert [a for a, _ in audit_actions(db)] == ["source.registered", "source.changed"]


def test_limits_are_refused_by_item_index_and_the_old_ones_stay(rt, db, unit):
    register.register(rt, "ops", new(grid=unit), GridIndexCache(db))
    register.replace_limits(rt, "ops", "MN1", items(lim("a34013")))
    with pytest.raises(NotFound):  # before any item's problems
        register.replace_limits(rt, "ops", "NOPE", items(lim(), lim()))
    with pytest.raises(InvalidInput) as refused:
        register.replace_limits(rt, "ops", "MN1", items(lim(), lim("a21002"), lim(),
                                                        refused={3: {"unit": ["too long"]}}))
    assert refused.value.fields == {"2": {"pollutant": ["a21026 (hourly) is already limited by item 0"]},
                                    "3": {"unit": ["too long"]}}
    with db.session() as s:
        assert list(s.scalars(select(PollutantLimit.pollutant))) == ["a34013"]
    assert [a for a, _ in audit_actions(db)] == ["source.registered", "source.limits_replaced"]


def test_an_import_is_all_or_nothing_and_a_conflict_only_when_every_problem_is_a_taken_mn(rt, db, unit):
    grids = GridIndexCache(db)
    register.register(rt, "ops", new("TAKEN", grid=unit), grids)
    with pytest.raises(Conflict) as taken:
        register.import_sources(rt, "ops", items(new("A", grid=unit), new("TAKEN", grid=unit), new("A", grid=unit)),
                                grids)
    assert taken.value.fields == {"1": {"mn": ["source TAKEN is already registered"]},
                                  "2": {"mn": ["the MN of item 0 again"]}}
    with pytest.raises(InvalidInput) as mixed:
        register.import_sources(rt, "ops", items(new("TAKEN", grid=unit), new("B", grid="320799999")), grids)
    assert set(mixed.value.fields) == {"0", "1"} and "nothing was changed" in mixed.value.message
    with pytest.raises(InvalidInput, match="give at least one source"):
        register.import_sources(rt, "ops", items(), grids)
    assert count(db, MonitoringSource) == 1
    assert register.import_sources(rt, "ops", items(new("A", grid=unit), new("B", grid=unit)), grids) == ["A", "B"]
    assert audit_actions(db)[-1] == ("source.imported", "ops")
