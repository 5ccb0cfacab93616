"""The demo city: real codes and names, synthetic shapes, a collection the importer accepts."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest
import shapely
from shapely.geometry import shape

from workflows.demo_city import DEMO_CITY_JSON, demo_feature_collection
from workflows.geojson_import import import_grids
from workflows.grids import GridIndex

DATA = json.loads(DEMO_CITY_JSON.read_text(encoding="utf-8"))
CITY = "320700"


@pytest.fixture(scope="module")
def demo() -> dict:
    return demo_feature_collection(DATA)


def by_level(fc: dict, level: str) -> list[dict]:
    return [f["properties"] for f in fc["features"] if f["properties"]["level"] == level]


def test_the_demo_city_has_the_real_districts_and_the_plans_counts(demo):
    assert Counter(f["properties"]["level"] for f in demo["features"]) == {
        "city": 1, "district": 6, "town": 63, "unit": 284}
    assert [(p["code"], p["name"]) for p in by_level(demo, "city")] == [(CITY, "连云港市")]
    assert [(p["code"], p["name"]) for p in by_level(demo, "district")] == [
        (d["code"], d["name"]) for d in DATA["districts"]]
    assert Counter(p["kind"] for p in by_level(demo, "town")) == {"street": 3, "town": 50, "township": 10}


def test_codes_follow_gbt_2260_and_10114(demo):
    districts = {p["code"] for p in by_level(demo, "district")}
    ranges = {"street": range(1, 100), "town": range(100, 200), "township": range(200, 400)}
    for town in by_level(demo, "town"):
        code = town["code"]
        assert len(code) == 9 and code[:6] == town["parent"] and town["parent"] in districts
        assert int(code[6:]) in ranges[town["kind"]]
    towns = {p["code"] for p in by_level(demo, "town")}
    for unit in by_level(demo, "unit"):
        assert len(unit["code"]) == 15 and unit["code"][:9] == unit["parent"] and unit["parent"] in towns
        assert unit["code"][9:12] == "000"
    assert len({f["properties"]["code"] for f in demo["features"]}) == len(demo["features"])


def test_the_shapes_say_they_are_synthetic_and_are_deterministic(demo):
    assert "synthetic" in demo["note"].lower()
    assert all(f["properties"]["synthetic"] is True for f in demo["features"])
    assert demo_feature_collection(DATA) == demo
    city = shape(demo["features"][0]["geometry"])
    assert city.contains(shapely.Point(119.2, 34.6))


def test_the_units_tile_the_city_without_gaps(demo):
    city = shape(demo["features"][0]["geometry"])
    units = shapely.union_all([shape(f["geometry"]) for f in demo["features"]
                               if f["properties"]["level"] == "unit"])
    assert units.symmetric_difference(city).area < 1e-12


def test_the_demo_city_imports_cleanly_and_every_unit_locates_to_itself(db, demo):
    report = import_grids(db, datetime(2025, 1, 1, tzinfo=UTC), CITY, demo)
    assert report.counts == {"city": 1, "district": 6, "town": 63, "unit": 284}
    assert report.warnings == [] and len(report.added) == 354

    index = GridIndex.load(db, CITY)
    for unit in demo["features"]:
        if unit["properties"]["level"] != "unit":
            continue
        centroid = shape(unit["geometry"]).centroid
        code = unit["properties"]["code"]
        assert index.locate(centroid.x, centroid.y) == code
        assert index.ancestors(code) == [code, code[:9], unit["properties"]["parent"][:6], CITY]
