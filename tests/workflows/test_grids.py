"""Grid import (validate everything, write all or nothing, versioned re-import) and point routing."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from engine.db import Database
from workflows.geojson_import import GridImportError, import_grids, validate_feature_collection
from workflows.grids import Grid, GridIndex

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
TENANT = "320600"
C, D1, D2 = "320600", "320602", "320612"
T1, T2 = "320602001", "320612100"
U1, U2, U3, U4 = "320602001000001", "320602001000002", "320612100000001", "320612100000002"

# code, level, parent, rect (min_lon, min_lat, max_lon, max_lat). The units tile the city:
#   lat 2 +-----+-----+-----------+
#         | U1  | U2  |    U4     |
#   lat 1 |     |     +-----------+
#         |     |     |    U3     |
#   lat 0 +-----+-----+-----------+
#       lon 0     1     2           4
GRIDS = [
    (C, "city", None, (0, 0, 4, 2)),
    (D1, "district", C, (0, 0, 2, 2)),
    (D2, "district", C, (2, 0, 4, 2)),
    (T1, "town", D1, (0, 0, 2, 2)),
    (T2, "town", D2, (2, 0, 4, 2)),
    (U1, "unit", T1, (0, 0, 1, 2)),
    (U2, "unit", T1, (1, 0, 2, 2)),
    (U3, "unit", T2, (2, 0, 4, 1)),
    (U4, "unit", T2, (2, 1, 4, 2)),
]
UNIT_RECTS = {code: rect for code, level, _, rect in GRIDS if level == "unit"}
INDEX = {code: i for i, (code, *_) in enumerate(GRIDS)}


def ring(rect: tuple[float, float, float, float]) -> list[list[float]]:
    x0, y0, x1, y1 = rect
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def collection() -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": code, "name": f"grid {code}", "level": level, "parent": parent},
         "geometry": {"type": "Polygon", "coordinates": [ring(rect)]}}
        for code, level, parent, rect in GRIDS]}


def feature(fc: dict[str, Any], code: str) -> dict[str, Any]:
    return fc["features"][INDEX[code]]


def snapshot(db: Database) -> list[tuple]:
    with db.session() as s:
        return [tuple(r) for r in s.execute(select(Grid.id, Grid.code, Grid.valid_from, Grid.valid_to,
                                                   Grid.geometry).order_by(Grid.id))]


def count(db: Database, *, current: bool = False) -> int:
    query = select(func.count()).select_from(Grid)
    if current:
        query = query.where(Grid.valid_to.is_(None))
    with db.session() as s:
        return s.scalar(query)


# --- import and locate --------------------------------------------------------------------------

def test_import_writes_every_grid_with_bbox_and_properties(db):
    fc = collection()
    feature(fc, U1)["properties"]["hotspot"] = True
    report = import_grids(db, T0, TENANT, fc)

    assert report.counts == {"city": 1, "district": 2, "town": 2, "unit": 4}
    assert report.added == sorted(code for code, *_ in GRIDS)
    assert (report.changed, report.retired, report.unchanged, report.warnings) == ([], [], 0, [])
    with db.session() as s:
        u3 = s.scalars(select(Grid).where(Grid.code == U3)).one()
        u1 = s.scalars(select(Grid).where(Grid.code == U1)).one()
    assert (u3.tenant, u3.level, u3.parent_code, u3.valid_from, u3.valid_to) == (TENANT, "unit", T2, T0, None)
    assert (u3.min_lon, u3.min_lat, u3.max_lon, u3.max_lat) == (2, 0, 4, 1)
    assert json.loads(u3.geometry) == {"type": "Polygon", "coordinates": [ring((2, 0, 4, 1))]}
    assert u1.properties == {"hotspot": True}


def test_locate_finds_the_unit_containing_a_point(db):
    import_grids(db, T0, TENANT, collection())
    index = GridIndex.load(db, TENANT)
    for code, (x0, y0, x1, y1) in UNIT_RECTS.items():
        assert index.locate((x0 + x1) / 2, (y0 + y1) / 2) == code
    assert index.locate(0.001, 1.999) == U1
    assert index.city_code == C


def test_points_on_borders_go_to_the_smallest_code(db):
    import_grids(db, T0, TENANT, collection())
    index = GridIndex.load(db, TENANT)
    assert index.locate(1, 1) == U1  # U1 | U2
    assert index.locate(3, 1) == U3  # U3 / U4
    assert index.locate(2, 1) == U2  # corner of U2, U3 and U4
    assert index.locate(2, 0.5) == U2  # town and district border
    assert index.locate(0, 1) == U1  # the city's outer border still belongs to the city
    assert index.locate(4, 2) == U4


@pytest.mark.parametrize("lon, lat", [(5, 5), (-0.0001, 1), (2, 2.0001), (math.nan, 1), (1, math.inf)])
def test_points_outside_every_grid_locate_to_none(db, lon, lat):
    import_grids(db, T0, TENANT, collection())
    assert GridIndex.load(db, TENANT).locate(lon, lat) is None


def test_a_tenant_without_grids_locates_nothing(db):
    index = GridIndex.load(db, "999900")
    assert (index.locate(1, 1), index.city_code) == (None, None)


def test_ancestors_walk_up_to_the_city(db):
    import_grids(db, T0, TENANT, collection())
    index = GridIndex.load(db, TENANT)
    assert index.ancestors(U3) == [U3, T2, D2, C]
    assert index.ancestors(T1) == [T1, D1, C]
    assert index.ancestors(C) == [C]
    with pytest.raises(KeyError):
        index.ancestors("320699000000001")


def test_random_points_locate_to_the_smallest_unit_covering_them(db):
    import_grids(db, T0, TENANT, collection())
    index = GridIndex.load(db, TENANT)

    @settings(max_examples=300, deadline=None)
    @given(st.floats(0, 4), st.floats(0, 2))
    def inside_the_city(lon: float, lat: float) -> None:
        covering = [c for c, (x0, y0, x1, y1) in UNIT_RECTS.items() if x0 <= lon <= x1 and y0 <= lat <= y1]
        assert index.locate(lon, lat) == min(covering)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(sorted(UNIT_RECTS)), st.floats(0.001, 0.999), st.floats(0.001, 0.999))
    def interior_of_a_unit(code: str, fx: float, fy: float) -> None:
        x0, y0, x1, y1 = UNIT_RECTS[code]
        assert index.locate(x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy) == code

    inside_the_city()
    interior_of_a_unit()


def test_validation_accepts_multipolygons_and_tiny_slivers_within_tolerance():
    fc = collection()
    feature(fc, U1)["geometry"]["coordinates"][0] = ring((-5e-8, 0, 1, 2))  # 0.5 cm outside its town
    feature(fc, U2)["geometry"] = {"type": "MultiPolygon",
                                   "coordinates": [[ring((1, 0, 2, 1))], [ring((1, 1.5, 2, 2))]]}
    grids, warnings = validate_feature_collection(TENANT, fc)
    assert len(grids) == len(GRIDS) and warnings == []


# --- refusals: every problem named, nothing written ----------------------------------------------

def _set(code: str, key: str, value: Any) -> Callable[[dict], None]:
    return lambda fc: feature(fc, code)["properties"].__setitem__(key, value)


def _geometry(code: str, coordinates: Any, kind: str = "Polygon") -> Callable[[dict], None]:
    return lambda fc: feature(fc, code).__setitem__("geometry", {"type": kind, "coordinates": coordinates})


def _append_copy(code: str) -> Callable[[dict], None]:
    return lambda fc: fc["features"].append(copy.deepcopy(feature(fc, code)))


BAD_INPUTS: dict[str, tuple[Callable[[dict], None], str | None, int | None, str]] = {
    "missing code": (lambda fc: feature(fc, U2)["properties"].pop("code"), None, INDEX[U2], "missing code"),
    "duplicate code": (_append_copy(U1), U1, len(GRIDS), "duplicate code (first at index 5)"),
    "unknown parent": (_set(U4, "parent", "320612999"), U4, INDEX[U4], "unknown parent '320612999'"),
    "bad level order": (_set(U3, "parent", D2), U3, INDEX[U3], "a unit's parent must be a town, but 320612 is a "),
    "unknown level": (_set(U3, "level", "village"), U3, INDEX[U3], "level 'village' is not one of"),
    "missing name": (_set(U3, "name", " "), U3, INDEX[U3], "missing name"),
    "city with a parent": (_set(C, "parent", "320000"), C, INDEX[C], "the city must have no parent"),
    "city code is not the tenant": (_set(C, "code", "320700"), "320700", INDEX[C], "differs from the tenant"),
    "unclosed ring": (_geometry(U2, [[*ring((1, 0, 2, 2))[:-1], [1, 0.5]]]), U2, INDEX[U2], "is not closed"),
    "too few positions": (_geometry(U2, [[[1, 0], [2, 0], [1, 0]]]), U2, INDEX[U2], "at least 4 positions"),
    "self-intersection": (_geometry(U2, [[[1, 0], [2, 2], [2, 0], [1, 2], [1, 0]]]), U2, INDEX[U2],
                          "invalid geometry: Self-intersection"),
    "longitude out of range": (_geometry(U1, [[[0, 0], [200, 0], [1, 2], [0, 0]]]), U1, INDEX[U1],
                               "out of lon/lat range"),
    "not a position": (_geometry(U1, [[[0, 0], ["1", 0], [1, 2], [0, 0]]]), U1, INDEX[U1], "is not [lon, lat]"),
    "not a polygon": (_geometry(U1, [0.5, 1], "Point"), U1, INDEX[U1], "'Point' is not Polygon or MultiPolygon"),
    "no geometry": (lambda fc: feature(fc, U1).pop("geometry"), U1, INDEX[U1], "geometry missing"),
    "siblings overlap": (_geometry(U2, [ring((0.5, 0, 2, 2))]), U2, INDEX[U2],
                         "overlaps its sibling 320602001000001 (index 5) by 1 deg²"),
    "child outside its parent": (_geometry(U4, [ring((2, 1, 4, 2.5))]), U4, INDEX[U4],
                                 "not inside its parent 320612100 (1 deg² outside)"),
    "not a feature": (lambda fc: fc["features"].__setitem__(INDEX[U4], ["U4"]), None, INDEX[U4],
                      "not a GeoJSON Feature"),
    "not a feature collection": (lambda fc: fc.__setitem__("type", "GeometryCollection"), None, None,
                                 "not a GeoJSON FeatureCollection"),
    "no city": (lambda fc: fc["features"].pop(0), None, None, "no city feature"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_feature_and_nothing_is_written(db, case):
    import_grids(db, T0, TENANT, collection())
    before = snapshot(db)
    mutate, code, index, text = BAD_INPUTS[case]
    fc = collection()
    mutate(fc)

    with pytest.raises(GridImportError) as refused:
        import_grids(db, T0 + timedelta(days=1), TENANT, fc)

    assert any(p["code"] == code and p["index"] == index and text in p["problem"]
               for p in refused.value.problems), refused.value.problems
    assert snapshot(db) == before


def test_every_problem_is_reported_at_once(db):
    fc = collection()
    BAD_INPUTS["unclosed ring"][0](fc)
    BAD_INPUTS["unknown parent"][0](fc)
    BAD_INPUTS["missing name"][0](fc)
    with pytest.raises(GridImportError) as refused:
        import_grids(db, T0, TENANT, fc)
    assert [(p["code"], p["index"]) for p in refused.value.problems] == [(U2, 6), (U3, 7), (U4, 8)]
    assert count(db) == 0


def test_a_code_held_by_another_tenant_is_refused(db):
    import_grids(db, T0, TENANT, collection())
    before = snapshot(db)
    other = collection()
    _set(C, "code", "320500")(other)
    for f in other["features"]:
        if f["properties"]["parent"] == C:
            f["properties"]["parent"] = "320500"

    with pytest.raises(GridImportError) as refused:
        import_grids(db, T0 + timedelta(days=1), "320500", other)

    assert {(p["code"], p["index"]) for p in refused.value.problems} == {
        (code, INDEX[code]) for code, *_ in GRIDS if code != C}
    assert all("current grid of tenant '320600'" in p["problem"] for p in refused.value.problems)
    assert snapshot(db) == before


def test_an_import_dated_before_the_current_grids_is_refused(db):
    import_grids(db, T0, TENANT, collection())
    with pytest.raises(GridImportError, match="before the current grids' valid_from"):
        import_grids(db, T0 - timedelta(seconds=1), TENANT, collection())
    assert count(db) == len(GRIDS)


# --- re-import -------------------------------------------------------------------------------------

def test_reimport_closes_changed_and_missing_rows_and_keeps_history(db):
    import_grids(db, T0, TENANT, collection())
    t1 = T0 + timedelta(days=30)
    fc = collection()
    fc["features"].pop(INDEX[U4])  # U4 retired: U3 now covers the whole town
    feature(fc, U3)["geometry"]["coordinates"] = [ring((2, 0, 4, 2))]
    feature(fc, T1)["properties"]["name"] = "renamed street"

    report = import_grids(db, t1, TENANT, fc)

    assert (report.added, report.changed, report.retired, report.unchanged) == ([], [T1, U3], [U4], 6)
    assert count(db) == len(GRIDS) + 2 and count(db, current=True) == len(GRIDS) - 1
    now, before = GridIndex.load(db, TENANT), GridIndex.load(db, TENANT, at=t1 - timedelta(seconds=1))
    assert (now.locate(3, 1.5), before.locate(3, 1.5)) == (U3, U4)
    assert (now.grids[T1].name, before.grids[T1].name) == ("renamed street", f"grid {T1}")
    assert GridIndex.load(db, TENANT, at=t1).locate(3, 1.5) == U3
    assert GridIndex.load(db, TENANT, at=T0 - timedelta(seconds=1)).locate(3, 1.5) is None
    with db.session() as s:
        unchanged = s.scalars(select(Grid).where(Grid.code == U1)).one()
        old_u4 = s.scalars(select(Grid).where(Grid.code == U4)).one()
    assert (unchanged.valid_from, unchanged.valid_to) == (T0, None)
    assert (old_u4.valid_from, old_u4.valid_to) == (T0, t1)


def test_reimporting_the_same_collection_changes_nothing(db):
    import_grids(db, T0, TENANT, collection())
    before = snapshot(db)
    report = import_grids(db, T0 + timedelta(days=1), TENANT, collection())
    assert (report.added, report.changed, report.retired, report.unchanged) == ([], [], [], len(GRIDS))
    assert snapshot(db) == before


def test_a_retired_code_can_come_back(db):
    import_grids(db, T0, TENANT, collection())
    smaller = collection()
    smaller["features"].pop(INDEX[U4])
    feature(smaller, U3)["geometry"]["coordinates"] = [ring((2, 0, 4, 2))]
    import_grids(db, T0 + timedelta(days=1), TENANT, smaller)
    report = import_grids(db, T0 + timedelta(days=2), TENANT, collection())
    assert (report.added, report.changed) == ([U4], [U3])
    assert GridIndex.load(db, TENANT).locate(3, 1.5) == U4


def test_the_database_allows_one_current_row_per_code(db):
    import_grids(db, T0, TENANT, collection())
    with db.session() as s:
        u1 = s.scalars(select(Grid).where(Grid.code == U1)).one()
    copy_of_u1 = {c.name: getattr(u1, c.key) for c in Grid.__table__.columns if c.name != "id"}
    with pytest.raises(IntegrityError), db.transaction() as s:
        s.execute(insert(Grid), [copy_of_u1])
    with db.transaction() as s:  # a closed version of the same code is fine
        s.execute(insert(Grid), [{**copy_of_u1, "valid_from": T0 - timedelta(days=9), "valid_to": T0}])
    assert count(db) == len(GRIDS) + 1
