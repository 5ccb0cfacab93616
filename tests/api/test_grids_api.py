import json

from sqlalchemy import func, select

from workflows.demo_city import DEMO_CITY_JSON, demo_feature_collection
from workflows.grids import Grid


def collection():
    return demo_feature_collection(json.loads(DEMO_CITY_JSON.read_text(encoding="utf-8")))


def post(caller, body, **query):
    qs = "&".join(f"{k}={v}" for k, v in {"tenant": "320700", **query}.items())
    return caller.post(f"/api/v1/grids/import?{qs}", data=body if isinstance(body, str) else json.dumps(body),
                       headers={"Content-Type": "application/geo+json"})


def count(rt):
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(Grid))


def test_import_then_locate_a_point(rt, users):
    assert post(users["admin"], collection(), dryRun="true").get_json()["valid"] is True
    assert count(rt) == 0
    r = post(users["admin"], collection())
    assert r.status_code == 200 and r.get_json()["counts"]["unit"] == 284
    units = users["insp"].get("/api/v1/grids?tenant=320700&level=unit").get_json()
    assert len(units) == 284
    found = users["insp"].get("/api/v1/grids/locate?tenant=320700&lon=119.2&lat=34.6").get_json()
    assert [g["level"] for g in found["chain"]] == ["unit", "town", "district", "city"]
    outside = users["system"].get("/api/v1/grids/locate?tenant=320700&lon=100&lat=20").get_json()
    assert outside["unit"] is None and "outside" in outside["reason"]


def test_bad_geojson_is_refused_with_every_problem_and_nothing_imported(rt, users):
    bad = collection()
    bad["features"][10]["geometry"]["coordinates"][0].pop()  # an unclosed ring
    bad["features"][20]["properties"]["parent"] = "999999"  # an unknown parent
    r = post(users["admin"], bad)
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "invalid_geojson"
    assert {p["index"] for p in r.get_json()["error"]["details"]["problems"]} >= {10, 20}
    assert count(rt) == 0
    assert post(users["admin"], "{not json").status_code == 400
    assert post(users["admin"], {"type": "Point"}).status_code == 422
    assert users["admin"].post("/api/v1/grids/import?tenant=320700", data="x",
                               headers={"Content-Type": "text/plain"}).status_code == 415
    assert post(users["admin"], collection(), tenant="32070").status_code == 422
    assert users["insp"].get("/api/v1/grids/locate?tenant=320700&lon=500&lat=1").status_code == 422
