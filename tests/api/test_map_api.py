"""The map (网格一张图) over HTTP: grid borders as GeoJSON simplified per zoom and cut by bbox, open
cases by stage and overdue, sources by state, inspectors' latest check-ins — each in the caller's
grids only, and every bad parameter refused with a 4xx naming it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import select

from api import accounts
from engine import definitions, instances
from tests.api.conftest import PASSWORD, Caller
from workflows.cases import Case
from workflows.demo_cases import seed_demo_cases
from workflows.demo_city import DEMO_CITY_JSON, demo_feature_collection
from workflows.demo_seed import seed_demo
from workflows.evidence import Place, check_in
from workflows.grids import Grid, point_inside
from workflows.monitoring_rules import evaluate, seen

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "env_case.bpmn"
TENANT = "320700"


@pytest.fixture
def city(rt, clock, tmp_path):
    """The demo city with its demo cases (one in each stage, two of them checked in on site)."""
    from integrations.enforcement import EnforcementClient
    from workflows.install import install
    from workflows.working_time import CalendarService, seed_from_package

    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(rt.db, clock.now(), years=[2026])
    seed_demo(rt.db, clock.now() - timedelta(hours=1))
    install(rt, calendar=CalendarService(rt.db).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    assert seed_demo_cases(rt, TENANT, tmp_path) == 7
    return rt


def staff(client, rt, name: str, role: str, scope: str | None) -> Caller:
    accounts.create_user(rt.db, rt.clock.now(), username=name, password=PASSWORD, roles=[role], scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, name)


def geojson(caller: Caller, path: str, **query) -> dict:
    r = caller.get(path, query_string={"tenant": TENANT, **query})
    assert r.status_code == 200, r.get_json()
    assert r.mimetype == "application/geo+json"
    body = r.get_json()
    assert body["type"] == "FeatureCollection"
    return body


def vertices(features: list[dict]) -> int:
    return sum(shapely.get_num_coordinates(shape(f["geometry"])) for f in features)


def bbox_of(code: str, rt) -> tuple[float, float, float, float]:
    with rt.db.session() as s:
        g = s.scalar(select(Grid).where(Grid.code == code, Grid.valid_to.is_(None)))
        return g.min_lon, g.min_lat, g.max_lon, g.max_lat


def box(*numbers: float) -> str:
    return ",".join(str(n) for n in numbers)


def error_fields(r) -> set[str]:
    return set(r.get_json()["error"].get("fields") or {})


# -- grids -----------------------------------------------------------------------------------------

def with_saw_teeth(collection: dict, code: str, depth: float, teeth: int = 40) -> dict:
    """The demo city with one unit's southern border a saw of `teeth` teeth `depth` degrees deep,
    cut inward (so it stays inside its town and overlaps no neighbour): a border with detail."""
    (feature,) = [f for f in collection["features"] if f["properties"]["code"] == code]
    ring = feature["geometry"]["coordinates"][0]
    xs, ys = [x for x, _ in ring], [y for _, y in ring]
    west, south, east, north = min(xs), min(ys), max(xs), max(ys)
    step = (east - west) / (2 * teeth)
    saw = [[west + i * step, south + (depth if i % 2 else 0)] for i in range(2 * teeth + 1)]
    feature["geometry"]["coordinates"] = [[*saw, [east, north], [west, north], [west, south]]]
    return collection


def test_grid_borders_are_simplified_for_the_zoom_and_cut_by_the_bbox(users, rt, app):
    admin = users["admin"]
    collection = demo_feature_collection(json.loads(DEMO_CITY_JSON.read_text(encoding="utf-8")))
    toothed = sorted(f["properties"]["code"] for f in collection["features"] if f["properties"]["level"] == "unit")[9]
    r = admin.post(f"/api/v1/grids/import?tenant={TENANT}", data=json.dumps(with_saw_teeth(collection, toothed, 2e-4)),
                   headers={"Content-Type": "application/geo+json"})
    assert r.status_code == 200, r.get_json()
    full = geojson(admin, "/api/v1/grids/geojson", level="unit")["features"]
    assert len(full) == 284 and {f["properties"]["level"] for f in full} == {"unit"}
    assert all(f["id"] == f["properties"]["code"] for f in full)
    coarse = geojson(admin, "/api/v1/grids/geojson", level="unit", zoom=9)["features"]
    fine = geojson(admin, "/api/v1/grids/geojson", level="unit", zoom=15)["features"]
    assert [f["id"] for f in coarse] == [f["id"] for f in full]
    assert vertices(coarse) < vertices(fine) <= vertices(full)
    teeth = {name: vertices([f for f in got if f["id"] == toothed]) for name, got in
             (("coarse", coarse), ("fine", fine), ("full", full))}
    assert teeth["coarse"] <= 6 < teeth["fine"] == teeth["full"] == 84  # 2e-4° ≈ 4 px at zoom 15, ⅒ px at 9
    for f in coarse:  # preserve_topology: a simplified border is still a valid polygon
        border = shape(f["geometry"])
        assert border.is_valid and not border.is_empty, f["id"]

    shapes = app.extensions["gridloop.grid_shapes"]
    hits = shapes.hits
    assert geojson(admin, "/api/v1/grids/geojson", level="unit", zoom=9)["features"] == coarse
    assert shapes.hits >= hits + 284  # the second answer came from the cache, and is the same

    code = full[40]["id"]
    west, south, east, north = bbox_of(code, rt)
    cx, cy = (west + east) / 2, (south + north) / 2
    near = geojson(admin, "/api/v1/grids/geojson", level="unit", bbox=box(cx, cy, cx + 1e-6, cy + 1e-6))["features"]
    assert code in {f["id"] for f in near} and len(near) < 20
    for f in near:  # each one's bounding box overlaps the box asked for
        minx, miny, maxx, maxy = shape(f["geometry"]).bounds
        assert minx <= cx + 1e-6 and maxx >= cx and miny <= cy + 1e-6 and maxy >= cy
    assert geojson(admin, "/api/v1/grids/geojson", bbox=box(0, 0, 1, 1))["features"] == []
    levels = {f["properties"]["level"] for f in geojson(admin, "/api/v1/grids/geojson", zoom=8)["features"]}
    assert levels == {"city", "district", "town", "unit"}


def test_each_caller_sees_the_grids_of_their_scope(users, rt, clock, client):
    seed_demo(rt.db, clock.now())
    mine = geojson(users["insp"], "/api/v1/grids/geojson", zoom=12)["features"]  # scope 320706001
    assert mine and all(f["id"].startswith("320706001") for f in mine)
    sup706 = staff(client, rt, "sup706", "supervisor", "320706")
    district = geojson(sup706, "/api/v1/grids/geojson", level="unit", zoom=12)["features"]
    assert district and all(f["id"].startswith("320706") for f in district)
    assert len(district) < len(geojson(users["sup"], "/api/v1/grids/geojson", level="unit", zoom=12)["features"])
    assert len(geojson(users["leader"], "/api/v1/grids/geojson", level="unit")["features"]) == 284


def test_bad_map_parameters_are_refused_naming_the_field(users, rt, clock, client):
    seed_demo(rt.db, clock.now())
    admin = users["admin"]
    for path in ("/api/v1/grids/geojson", "/api/v1/map/cases", "/api/v1/map/sources", "/api/v1/map/checkins"):
        for bad in ("1,2,3", "a,b,c,d", "1,2,3,4,5", "10,30,5,31", "119,35,120,34", "200,0,201,1", "0,-91,1,1",
                    "nan,0,1,1", "inf,0,1,1", ""):
            r = admin.get(path, query_string={"tenant": TENANT, "bbox": bad})
            assert r.status_code == 422 and error_fields(r) == {"bbox"}, (path, bad, r.get_json())
        r = admin.get(path, query_string={"tenant": "32070"})
        assert r.status_code == 422 and error_fields(r) == {"tenant"}
        r = admin.get(path)
        assert r.status_code == 422 and error_fields(r) == {"tenant"}
        r = admin.get(path, query_string={"tenant": "110100"})  # a city without grids
        assert r.status_code == 404 and error_fields(r) == {"tenant"}
        r = users["sup"].get(path, query_string={"tenant": "110100"})  # sup works in 3207 only
        assert r.status_code == 403 and error_fields(r) == {"tenant"}
        r = admin.get(path, query_string={"tenant": TENANT, "color": "red"})
        assert r.status_code == 422 and error_fields(r) == {"color"}
        assert users["system"].get(path, query_string={"tenant": TENANT}).status_code == 403
        assert users["anonymous"].get(path, query_string={"tenant": TENANT}).status_code == 401
    for zoom in ("-1", "23", "x", "1.5"):
        r = admin.get("/api/v1/grids/geojson", query_string={"tenant": TENANT, "zoom": zoom})
        assert r.status_code == 422 and error_fields(r) == {"zoom"}, zoom
    r = admin.get("/api/v1/grids/geojson", query_string={"tenant": TENANT, "level": "village"})
    assert r.status_code == 422 and error_fields(r) == {"level"}
    r = admin.get("/api/v1/map/sources", query_string={"tenant": TENANT, "state": "asleep"})
    assert r.status_code == 422 and error_fields(r) == {"state"}
    for days in ("0", "91", "x"):
        r = admin.get("/api/v1/map/checkins", query_string={"tenant": TENANT, "days": days})
        assert r.status_code == 422 and error_fields(r) == {"days"}
    for path in ("/api/v1/map/cases", "/api/v1/map/sources", "/api/v1/map/checkins"):  # the desk's layers
        assert users["insp"].get(path, query_string={"tenant": TENANT}).status_code == 403
    insp_nowhere = staff(client, rt, "nowhere", "inspector", None)  # no scope: works in no city
    r = insp_nowhere.get("/api/v1/grids/geojson", query_string={"tenant": TENANT})
    assert r.status_code == 403 and error_fields(r) == {"tenant"}


# -- cases -----------------------------------------------------------------------------------------

def _case_ids(rt) -> dict[str, Case]:
    with rt.db.session() as s:
        return {c.external_id: c for c in s.scalars(select(Case))}


def test_open_cases_are_points_at_their_stage_overdue_once_past_due(users, city, clock, client):
    rt = city
    cases = _case_ids(rt)
    body = geojson(users["sup"], "/api/v1/map/cases")
    by_id = {f["id"]: f for f in body["features"]}
    stages = {ext: by_id[c.id]["properties"]["stage"] for ext, c in cases.items() if c.id in by_id}
    assert stages == {"DEMO-1": "review", "DEMO-2": "review", "DEMO-3": "sign_for", "DEMO-4": "handle",
                      "DEMO-5": "verify"}  # DEMO-6 and DEMO-7 are closed
    assert body["unplaced"] == 0 and body["truncated"] is False
    one = by_id[cases["DEMO-4"].id]
    assert one["geometry"]["coordinates"] == [cases["DEMO-4"].lon, cases["DEMO-4"].lat]
    assert one["properties"]["overdue"] is False and one["properties"]["due"] is not None
    assert one["properties"]["grid"] == cases["DEMO-4"].grid_code

    clock.advance(timedelta(days=30))  # every open task is past its due date now
    late = geojson(users["sup"], "/api/v1/map/cases")["features"]
    assert late and all(f["properties"]["overdue"] for f in late)

    r = users["system"].post("/api/v1/alarms", json={
        "tenant": TENANT, "source": "citizen", "externalId": "NOWHERE-1", "category": "citizen.report",
        "occurredAt": clock.now().isoformat()})  # no location: routed to the city, not drawn
    assert r.status_code == 201, r.get_json()
    assert geojson(users["admin"], "/api/v1/map/cases")["unplaced"] == 1

    c4 = cases["DEMO-4"]
    tight = geojson(users["sup"], "/api/v1/map/cases", bbox=box(c4.lon, c4.lat, c4.lon, c4.lat))["features"]
    assert [f["id"] for f in tight] == [c4.id]
    district = c4.grid_code[:6]
    other = staff(client, rt, "sup-other", "supervisor", "320799")  # a district of the city without cases
    assert geojson(other, "/api/v1/map/cases")["features"] == []
    local = staff(client, rt, "sup-local", "supervisor", district)
    assert {f["properties"]["grid"][:6] for f in geojson(local, "/api/v1/map/cases")["features"]} == {district}


# -- sources ---------------------------------------------------------------------------------------

@dataclass
class Reading:
    pollutant: str
    value: Decimal
    data_time: datetime
    mn: str
    flag: str | None = "N"
    cn: str = "2061"
    kind: str = "Avg"


def test_sources_are_points_online_offline_or_exceeding(users, rt, clock):
    seed_demo(rt.db, clock.now())
    admin = users["admin"]
    units = sorted(f["id"] for f in geojson(admin, "/api/v1/grids/geojson", level="unit")["features"])
    for n, mn in enumerate(("MN-QUIET", "MN-FINE", "MN-OVER")):
        lon, lat = point_inside(rt.db, units[n * 50])
        r = admin.post("/api/v1/sources", json={"mn": mn, "tenant": TENANT, "kind": "outlet", "name": mn,
                                                "password": "pw-1", "lon": lon, "lat": lat})
        assert r.status_code == 201, r.get_json()
        limits = [{"pollutant": "a21026", "dataKind": "hourly", "limitValue": "100", "unit": "mg/m3"}]
        assert admin.put(f"/api/v1/sources/{mn}/limits", json=limits).status_code == 200
    now = clock.now()
    with rt.db.transaction() as s:
        evaluate(s, now, [Reading("a21026", Decimal(50), now, "MN-FINE"),
                          Reading("a21026", Decimal(180), now, "MN-OVER")])
        seen(s, ["MN-FINE", "MN-OVER"], now)
    states = {f["id"]: f["properties"]["state"] for f in geojson(users["sup"], "/api/v1/map/sources")["features"]}
    assert states == {"MN-QUIET": "offline", "MN-FINE": "online", "MN-OVER": "exceeding"}  # never heard: offline
    only = geojson(users["sup"], "/api/v1/map/sources", state="exceeding")["features"]
    assert [f["id"] for f in only] == ["MN-OVER"] and only[0]["properties"]["exceeding"] is True

    clock.advance(timedelta(hours=2))  # silent past offlineAfterS (1 h): offline, whatever it exceeded before
    states = {f["id"]: f["properties"]["state"] for f in geojson(users["leader"], "/api/v1/map/sources")["features"]}
    assert states == {"MN-QUIET": "offline", "MN-FINE": "offline", "MN-OVER": "offline"}
    assert geojson(users["sup"], "/api/v1/map/sources", bbox=box(0, 0, 1, 1))["features"] == []


# -- check-ins -------------------------------------------------------------------------------------

def test_each_inspectors_latest_checkin_is_one_point(users, city, clock, client):
    rt = city
    cases = _case_ids(rt)
    first = geojson(users["sup"], "/api/v1/map/checkins")["features"]
    by_case = {f["properties"]["caseId"]: f for f in first}
    assert set(by_case) == {cases["DEMO-5"].id, cases["DEMO-6"].id}  # the two handled on site
    who = by_case[cases["DEMO-5"].id]["properties"]["inspector"]

    c4 = cases["DEMO-4"]  # on site now: its inspector checks in there
    (handle,) = [t for t in instances.open_tasks(rt, c4.instance_id) if t.element_id == "handle"]
    clock.advance(timedelta(minutes=5))
    check_in(rt.db, clock.now(), Place(handle.id, c4.instance_id, c4.grid_code), who, c4.lon, c4.lat, tolerance_m=0)
    latest = [f for f in geojson(users["sup"], "/api/v1/map/checkins")["features"]
              if f["properties"]["inspector"] == who]
    assert len(latest) == 1
    assert latest[0]["properties"]["caseId"] == c4.id and latest[0]["geometry"]["coordinates"] == [c4.lon, c4.lat]
    assert latest[0]["properties"]["at"] == clock.now().isoformat()

    clock.advance(timedelta(days=8))
    assert geojson(users["sup"], "/api/v1/map/checkins")["features"] == []  # the last 7 days by default
    assert len(geojson(users["sup"], "/api/v1/map/checkins", days=30)["features"]) >= 1
    other = staff(client, rt, "sup-far", "supervisor", "320799")
    assert geojson(other, "/api/v1/map/checkins", days=30)["features"] == []


# -- base tiles ------------------------------------------------------------------------------------

def test_the_base_tiles_are_configured_told_to_the_console_and_allowed_by_its_policy(rt, users, client):
    from api import create_app
    from api.settings import Settings

    me = users["sup"].get("/api/v1/me").get_json()
    assert me["map"] == {"tilesUrl": None, "tilesAttribution": None, "tilesSubdomains": "abc"}  # no base layer
    assert "img-src 'self' blob: data:;" in client.get("/").headers["Content-Security-Policy"]

    template = "https://t{s}.tiles.example.cn/vec_w/wmts?l={z}&x={x}&y={y}&tk=demo"
    settings = Settings(database_url=rt.db.url, secret_key="test-secret", deploy_bundled=False,
                        map_tiles_url=template, map_tiles_attribution="© 示例测绘", map_tiles_subdomains="01234567")
    tiled = create_app(settings, runtime=rt).test_client()
    policy = tiled.get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' blob: data: https://*.tiles.example.cn;" in policy
    assert "connect-src 'self';" in policy and "script-src 'self';" in policy  # images only
    token = tiled.post("/api/v1/auth/token", json={"username": "sup", "password": PASSWORD}).get_json()
    me = tiled.get("/api/v1/me", headers={"Authorization": f"Bearer {token['access_token']}"}).get_json()
    assert me["map"] == {"tilesUrl": template, "tilesAttribution": "© 示例测绘", "tilesSubdomains": "01234567"}
    for bad in ("ftp://tiles.example.cn/{z}/{x}/{y}", "https://tiles.example.cn/{z}/{x}", "tiles/{z}/{x}/{y}",
                "https://ev{il}.example.cn/{z}/{x}/{y}"):
        with pytest.raises(ValueError, match="GRIDLOOP_MAP_TILES_URL"):
            Settings(map_tiles_url=bad)
    for bad in ("", "a b", "a" * 17):
        with pytest.raises(ValueError, match="GRIDLOOP_MAP_TILES_SUBDOMAINS"):
            Settings(map_tiles_subdomains=bad)
