"""The monitoring source register over HTTP: register, list, read, change, replace limits, bulk import;
the password never answered; refused requests change nothing; supervisors see their grid only; the
detail shows the rules' live state (an exceedance fed through the threshold rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api import accounts
from tests.api.conftest import PASSWORD, Caller
from workflows.demo_seed import seed_demo
from workflows.grids import Grid, point_inside
from workflows.monitoring_rules import check_offline, evaluate, seen
from workflows.sources import MonitoringSource, PollutantLimit

TENANT = "320700"
SECRET = "s3cret-PW"


@dataclass
class Demo:
    unit: str  # a basic unit in district 320706
    lon: float
    lat: float
    other_unit: str  # a basic unit in district 320703
    other_lon: float
    other_lat: float


@pytest.fixture
def demo(rt, db, clock) -> Demo:
    seed_demo(db, clock.now())
    with db.session() as s:
        units = list(s.scalars(select(Grid.code).where(Grid.tenant == TENANT, Grid.level == "unit",
                                                       Grid.valid_to.is_(None)).order_by(Grid.code)))
    unit = next(c for c in units if c.startswith("320706"))
    other = next(c for c in units if c.startswith("320703"))
    return Demo(unit, *point_inside(db, unit), other, *point_inside(db, other))


def source(mn="MN0001", **kw) -> dict:
    return {"mn": mn, "tenant": TENANT, "kind": "outlet", "name": "某电厂 1#排口", "enterprise": "某电厂",
            "password": SECRET, **kw}


def limit(pollutant="a21026", data_kind="hourly", value="100", **kw) -> dict:
    return {"pollutant": pollutant, "dataKind": data_kind, "limitValue": value, "unit": "mg/m3", **kw}


def call(caller: Caller, method: str, path: str, **kw):
    return caller.client.open(path, method=method, headers={**caller.headers, **kw.pop("headers", {})}, **kw)


def no_password(r) -> None:
    assert SECRET not in r.get_data(as_text=True)
    assert "password" not in r.get_data(as_text=True)


def count(db, model) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def stored(db, mn) -> MonitoringSource | None:
    with db.session() as s:
        return s.get(MonitoringSource, mn)


def test_register_locates_the_grid_lists_and_shows_it_without_the_password(users, demo, db):
    admin = users["admin"]
    r = admin.post("/api/v1/sources", json=source(lon=demo.lon, lat=demo.lat, offlineAfterS=1800))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    no_password(r)
    assert (body["mn"], body["grid"], body["offlineAfterS"], body["active"]) == ("MN0001", demo.unit, 1800, True)
    assert body["limits"] == [] and body["lastSeenAt"] is None
    assert (body["offline"], body["exceeding"], body["activeRules"]) == (False, False, [])
    r = admin.post("/api/v1/sources", json=source("ST-2", kind="station", grid="320703", enterprise=None))
    assert r.status_code == 201 and r.get_json()["grid"] == "320703" and r.get_json()["lon"] is None

    listed = admin.get(f"/api/v1/sources?tenant={TENANT}")
    no_password(listed)
    assert listed.get_json()["total"] == 2
    assert [s["mn"] for s in listed.get_json()["items"]] == ["MN0001", "ST-2"]
    assert [s["mn"] for s in admin.get(f"/api/v1/sources?tenant={TENANT}&kind=station").get_json()["items"]] == [
        "ST-2"]
    assert [s["mn"] for s in admin.get(f"/api/v1/sources?tenant={TENANT}&grid=320706").get_json()["items"]] == [
        "MN0001"]
    assert admin.get(f"/api/v1/sources?tenant={TENANT}&active=false").get_json()["total"] == 0
    assert admin.get("/api/v1/sources?tenant=310100").get_json()["total"] == 0
    detail = users["leader"].get("/api/v1/sources/MN0001")
    assert detail.status_code == 200 and detail.get_json()["enterprise"] == "某电厂"
    no_password(detail)
    assert stored(db, "MN0001").password == SECRET
    assert admin.get("/api/v1/sources/NOPE").status_code == 404
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True


@pytest.mark.parametrize(("body", "field"), [
    (source(mn="bad mn!"), "mn"),
    (source(mn=""), "mn"),
    (source(mn="M" * 65), "mn"),
    (source(mn="MN0001\n"), "mn"),  # `$` lets a final line break through; no logger would ever match it
    (source(password="s3cret-PW\n"), "password"),
    (source(kind="factory"), "kind"),
    (source(password=""), "password"),
    (source(password="x" * 65), "password"),
    (source(password="a;b"), "password"),
    (source(tenant="3207"), "tenant"),
    (source(lon=119.2), "lat"),
    (source(lat=34.6), "lon"),
    (source(lon=200.0, lat=34.6), "lon"),
    (source(grid="320799999"), "grid"),
    (source(lon=0.0, lat=0.0), "lon"),  # outside every grid, and no grid given
    (source(tenant="310100", grid="310101"), "tenant"),  # a tenant without grids
    (source(offlineAfterS=0), "offlineAfterS"),
    ({**source(), "colour": "red"}, "colour"),
])
def test_a_refused_registration_names_the_field_and_registers_nothing(users, demo, db, body, field):
    r = users["admin"].post("/api/v1/sources", json=body)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"], r.get_json()
    assert SECRET not in r.get_data(as_text=True)
    assert count(db, MonitoringSource) == 0


def test_a_registered_mn_is_409_and_unchanged(users, demo, db):
    admin = users["admin"]
    assert admin.post("/api/v1/sources", json=source(grid=demo.unit)).status_code == 201
    r = admin.post("/api/v1/sources", json=source(grid=demo.other_unit, name="another", password="other"))
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "conflict"
    row = stored(db, "MN0001")
    assert (row.grid_code, row.name, row.password) == (demo.unit, "某电厂 1#排口", SECRET)


def test_patch_changes_fields_and_relocates_the_grid(users, demo, db):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(lon=demo.lon, lat=demo.lat))
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json={"name": "2#排口", "password": "newpw1",
                                                               "active": False, "offlineAfterS": 600})
    assert r.status_code == 200, r.get_json()
    no_password(r)
    assert (r.get_json()["name"], r.get_json()["active"], r.get_json()["offlineAfterS"]) == ("2#排口", False, 600)
    assert stored(db, "MN0001").password == "newpw1"
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json={"lon": demo.other_lon, "lat": demo.other_lat})
    assert (r.get_json()["grid"], r.get_json()["lon"]) == (demo.other_unit, demo.other_lon)
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json={"grid": "320703"})
    assert r.get_json()["grid"] == "320703"
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json={"lon": None, "lat": None})
    assert (r.get_json()["lon"], r.get_json()["grid"]) == (None, "320703")  # the grid stays without a location
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json={"enterprise": None})
    assert r.get_json()["enterprise"] is None
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"lon": 119.2}, "lat"),
    ({"lon": 119.2, "lat": None}, "lat"),
    ({"grid": "320799999"}, "grid"),
    ({"lon": 0.0, "lat": 0.0}, "lon"),
    ({"password": ""}, "password"),
    ({"name": "x", "kind": "station"}, "kind"),  # kind and tenant are not changeable
    ({}, "_schema"),
])
def test_a_refused_patch_changes_nothing(users, demo, db, body, field):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(lon=demo.lon, lat=demo.lat))
    before = admin.get("/api/v1/sources/MN0001").get_json()
    r = call(admin, "PATCH", "/api/v1/sources/MN0001", json=body)
    assert r.status_code == 422 and field in r.get_json()["error"]["fields"], r.get_json()
    assert admin.get("/api/v1/sources/MN0001").get_json() == before
    assert call(admin, "PATCH", "/api/v1/sources/NOPE", json={"name": "x"}).status_code == 404


def test_put_limits_replaces_them_all(users, demo, db):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(grid=demo.unit))
    r = call(admin, "PUT", "/api/v1/sources/MN0001/limits",
             json=[limit(), limit("a21002", value=200.5, useConverted=True, hysteresis=0),
                   limit("a21026", "daily", "80.1234", basis="standard")])
    assert r.status_code == 200, r.get_json()
    assert [(x["pollutant"], x["dataKind"], x["limitValue"]) for x in r.get_json()] == [
        ("a21026", "hourly", "100"), ("a21002", "hourly", "200.5"), ("a21026", "daily", "80.1234")]
    detail = admin.get("/api/v1/sources/MN0001").get_json()
    assert {(x["pollutant"], x["dataKind"], x["useConverted"], x["basis"], x["hysteresis"])
            for x in detail["limits"]} == {
        ("a21026", "hourly", False, "permit", 0.1), ("a21002", "hourly", True, "permit", 0.0),
        ("a21026", "daily", False, "standard", 0.1)}
    r = call(admin, "PUT", "/api/v1/sources/MN0001/limits", json=[limit("w01018", "daily", "50", unit="mg/L")])
    assert r.status_code == 200
    with db.session() as s:
        rows = s.scalars(select(PollutantLimit)).all()
        assert [(x.pollutant, x.data_kind, x.limit_value, x.unit) for x in rows] == [
            ("w01018", "daily", Decimal("50"), "mg/L")]
    assert call(admin, "PUT", "/api/v1/sources/MN0001/limits", json=[]).get_json() == []
    assert count(db, PollutantLimit) == 0
    assert call(admin, "PUT", "/api/v1/sources/NOPE/limits", json=[limit()]).status_code == 404
    assert admin.get("/api/v1/audit/verify").get_json()["ok"] is True


@pytest.mark.parametrize(("items", "index", "field"), [
    ([limit(), limit("a21002"), limit()], "2", "pollutant"),  # (a21026, hourly) twice
    ([limit(), limit(value="-5")], "1", "limitValue"),
    ([limit(value="0")], "0", "limitValue"),
    ([limit(value="1.00001")], "0", "limitValue"),
    ([limit(value="NaN")], "0", "limitValue"),
    ([limit(hysteresis=1)], "0", "hysteresis"),
    ([limit(hysteresis=-0.1)], "0", "hysteresis"),
    ([limit(data_kind="weekly")], "0", "dataKind"),
    ([limit(pollutant="a2102 6")], "0", "pollutant"),
    ([limit(pollutant="a21026\n")], "0", "pollutant"),
    ([limit(basis="guess")], "0", "basis"),
    ([limit(unit="")], "0", "unit"),
])
def test_refused_limits_leave_the_old_ones(users, demo, db, items, index, field):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(grid=demo.unit))
    call(admin, "PUT", "/api/v1/sources/MN0001/limits", json=[limit("a34013", value="20")])
    r = call(admin, "PUT", "/api/v1/sources/MN0001/limits", json=items)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"][index], r.get_json()
    assert [x["pollutant"] for x in admin.get("/api/v1/sources/MN0001").get_json()["limits"]] == ["a34013"]


def test_limits_must_be_a_json_array(users, demo):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(grid=demo.unit))
    assert call(admin, "PUT", "/api/v1/sources/MN0001/limits", json={"limits": [limit()]}).status_code == 400
    assert call(admin, "PUT", "/api/v1/sources/MN0001/limits", data="[1",
                headers={"Content-Type": "application/json"}).status_code == 400


def test_import_registers_all(users, demo, db):
    items = [source(f"MN{i:04d}", lon=demo.lon, lat=demo.lat) for i in range(3)]
    items.append(source("ST-9", kind="station", grid="320703"))
    r = users["admin"].post("/api/v1/sources/import", json=items)
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"imported": 4, "mns": ["MN0000", "MN0001", "MN0002", "ST-9"]}
    no_password(r)
    assert {x.grid_code for x in _all(db)} == {demo.unit, "320703"}
    assert users["admin"].get("/api/v1/audit/verify").get_json()["ok"] is True


def _all(db) -> list[MonitoringSource]:
    with db.session() as s:
        return list(s.scalars(select(MonitoringSource)))


def test_a_refused_import_lists_every_problem_by_index_and_registers_nothing(users, demo, db):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source("TAKEN", grid=demo.unit))
    items = [source("OK-1", grid=demo.unit),
             source("bad mn"),
             source("OK-2", lon=demo.lon),
             source("OK-3", grid="320799999"),
             source("TAKEN", grid=demo.unit),
             source("OK-1", grid=demo.unit),
             source("OK-4", lon=0.0, lat=0.0)]
    r = admin.post("/api/v1/sources/import", json=items)
    assert r.status_code == 422, r.get_json()
    problems = r.get_json()["error"]["fields"]
    assert {k: sorted(v) for k, v in problems.items()} == {
        "1": ["mn"], "2": ["lat"], "3": ["grid"], "4": ["mn"], "5": ["mn"], "6": ["lon"]}
    assert SECRET not in r.get_data(as_text=True)
    assert [x.mn for x in _all(db)] == ["TAKEN"]


def test_an_import_refused_only_for_registered_mns_is_409(users, demo, db):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source("TAKEN", grid=demo.unit))
    r = admin.post("/api/v1/sources/import", json=[source("NEW", grid=demo.unit), source("TAKEN", grid=demo.unit)])
    assert r.status_code == 409 and list(r.get_json()["error"]["fields"]) == ["1"]
    assert [x.mn for x in _all(db)] == ["TAKEN"]


def test_an_import_is_at_most_5000_and_not_empty(users, demo, db):
    admin = users["admin"]
    assert admin.post("/api/v1/sources/import", json=[source(f"M{i}") for i in range(5001)]).status_code == 422
    assert admin.post("/api/v1/sources/import", json=[]).status_code == 422
    assert admin.post("/api/v1/sources/import", json=source()).status_code == 400  # an object, not a list
    assert count(db, MonitoringSource) == 0


def test_supervisors_see_their_grid_only_and_cannot_change_anything(rt, clock, users, demo):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source("IN-706", lon=demo.lon, lat=demo.lat))
    admin.post("/api/v1/sources", json=source("IN-703", lon=demo.other_lon, lat=demo.other_lat))
    admin.post("/api/v1/sources", json=source("CITY", grid="320700"))
    accounts.create_user(rt.db, clock.now(), username="sup706", password=PASSWORD, roles=["supervisor"],
                         scope="320706", hash_method="pbkdf2:sha256:1000")
    token = users["anonymous"].client.post("/api/v1/auth/token", json={"username": "sup706", "password": PASSWORD})
    sup706 = Caller(users["anonymous"].client, {"Authorization": f"Bearer {token.get_json()['access_token']}"}, "x")

    assert [s["mn"] for s in sup706.get(f"/api/v1/sources?tenant={TENANT}").get_json()["items"]] == ["IN-706"]
    assert sup706.get("/api/v1/sources/IN-706").status_code == 200
    assert sup706.get("/api/v1/sources/IN-703").status_code == 404
    assert sup706.get("/api/v1/sources/CITY").status_code == 404
    assert users["sup"].get(f"/api/v1/sources?tenant={TENANT}").get_json()["total"] == 3  # scope 3207: the city
    assert users["leader"].get(f"/api/v1/sources?tenant={TENANT}").get_json()["total"] == 3
    assert sup706.post("/api/v1/sources", json=source("NEW", grid=demo.unit)).status_code == 403
    assert call(sup706, "PATCH", "/api/v1/sources/IN-706", json={"name": "x"}).status_code == 403
    assert call(sup706, "PUT", "/api/v1/sources/IN-706/limits", json=[limit()]).status_code == 403
    assert sup706.post("/api/v1/sources/import", json=[source("NEW", grid=demo.unit)]).status_code == 403
    for path in (f"/api/v1/sources?tenant={TENANT}", "/api/v1/sources/IN-706"):
        assert users["insp"].get(path).status_code == 403
        assert users["system"].get(path).status_code == 403
    assert users["insp"].post("/api/v1/sources", json=source("NEW", grid=demo.unit)).status_code == 403


@dataclass
class Reading:
    pollutant: str
    value: float | None
    data_time: datetime
    flag: str | None = "N"
    cn: str = "2061"
    kind: str = "Avg"
    mn: str = "MN0001"


def test_the_detail_shows_an_active_exceedance_and_an_offline_source(users, demo, rt, clock):
    admin = users["admin"]
    admin.post("/api/v1/sources", json=source(lon=demo.lon, lat=demo.lat))
    call(admin, "PUT", "/api/v1/sources/MN0001/limits", json=[limit(value="100"), limit("a21002", value="100")])
    t0 = clock.now()
    with rt.db.transaction() as s:
        evaluate(s, clock.now(), [Reading("a21026", 180.5, t0), Reading("a21026", 150, t0 + timedelta(hours=1)),
                                  Reading("a21002", 50, t0)])
        seen(s, ["MN0001"], t0 + timedelta(hours=1))
    body = admin.get("/api/v1/sources/MN0001").get_json()
    assert (body["exceeding"], body["offline"], body["deviceFault"]) == (True, False, False)
    assert body["lastSeenAt"] is not None
    (rule,) = body["activeRules"]
    assert (rule["pollutant"], rule["rule"], rule["peak"], rule["count"]) == ("a21026", "exceedance", "180.5", 2)

    clock.advance(timedelta(hours=3))
    with rt.db.transaction() as s:
        assert check_offline(s, clock.now()) == 1
    body = admin.get("/api/v1/sources/MN0001").get_json()
    assert (body["exceeding"], body["offline"]) == (True, True)
    with rt.db.transaction() as s:  # back under limit × (1 − hysteresis): the episode ends
        evaluate(s, clock.now(), [Reading("a21026", 50, clock.now())])
        seen(s, ["MN0001"], clock.now())
    body = admin.get("/api/v1/sources/MN0001").get_json()
    assert (body["exceeding"], body["offline"], body["activeRules"]) == (False, False, [])


def test_the_openapi_document_describes_the_source_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths, components = spec["paths"], spec["components"]["schemas"]
    assert set(paths["/api/v1/sources"]) == {"get", "post"}
    assert set(paths["/api/v1/sources/{mn}"]) == {"get", "patch"}
    limits = paths["/api/v1/sources/{mn}/limits"]["put"]
    assert limits["requestBody"]["content"]["application/json"]["schema"]["type"] == "array"
    assert paths["/api/v1/sources/import"]["post"]["x-roles"] == ["admin"]
    assert "password" not in components["SourceDetailView"]["properties"]
    assert "password" not in components["SourceView"]["properties"]
    assert components["SourceIn"]["properties"]["password"]["writeOnly"] is True
