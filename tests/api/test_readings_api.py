"""Readings over HTTP: systems without HJ 212 post JSON through the same intake as the TCP listener
(validated, bounded, unknown MN a field error, a repeat stored once, hooks called); staff read them
back by source, pollutant and time window within their grid."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from workflows.readings import ReadingsIntake, StoredReading
from workflows.sources import MonitoringSource

MN, MN_ELSEWHERE, MN_OFF = "320706-OUTLET-1", "320300-OUTLET-9", "320706-OUTLET-OFF"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def hooked(app, rt):
    """The app's intake without the threshold rules, with a hook that records what it is given."""
    seen = []
    app.extensions["gridloop.readings"] = ReadingsIntake(rt.db, rt.clock, hooks=[lambda s, rows: seen.extend(rows)])
    return seen


@pytest.fixture
def sources(rt):
    with rt.db.transaction() as s:
        for mn, grid, active in ((MN, "320706001000001", True), (MN_ELSEWHERE, "320300001000001", True),
                                 (MN_OFF, "320706001000002", False)):
            s.add(MonitoringSource(mn=mn, tenant="320700", kind="outlet", name=mn, grid_code=grid, password="123456",
                                   active=active, created_at=rt.clock.now()))


def body(mn=MN, at=T0, **overrides):
    return {"mn": mn, "cn": "2061", "dataTime": at.isoformat(),
            "readings": [{"pollutant": "w01018", "kind": "Avg", "value": "49.20", "flag": "N"},
                         {"pollutant": "w21003", "kind": "Avg", "value": 3.5, "flag": "D"},
                         {"pollutant": "w00000", "kind": "Cou", "value": 1200}], **overrides}


def stored(rt) -> list[StoredReading]:
    with rt.db.session() as s:
        return list(s.scalars(select(StoredReading).order_by(StoredReading.pollutant)))


def test_post_stores_through_the_intake(users, rt, sources, hooked):
    r = users["system"].post("/api/v1/readings", json=body())
    assert r.status_code == 201, r.get_json()
    assert r.get_json() == {"mn": MN, "accepted": 3}
    rows = stored(rt)
    assert [(x.pollutant, x.kind, x.value, x.flag, x.cn) for x in rows] == [
        ("w00000", "Cou", Decimal("1200"), None, "2061"), ("w01018", "Avg", Decimal("49.20"), "N", "2061"),
        ("w21003", "Avg", Decimal("3.5"), "D", "2061")]
    assert all(x.data_time == T0 and x.received_at == rt.clock.now() for x in rows)
    assert sorted(x.pollutant for x in hooked) == ["w00000", "w01018", "w21003"]
    with rt.db.session() as s:
        assert s.get(MonitoringSource, MN).last_seen_at == rt.clock.now()


def test_posting_again_stores_nothing_twice(users, rt, sources, hooked):
    assert users["system"].post("/api/v1/readings", json=body()).status_code == 201
    assert users["system"].post("/api/v1/readings", json=body()).status_code == 201
    assert len(stored(rt)) == 3


@pytest.mark.parametrize("mn", ["NO-SUCH-MN", MN_OFF])
def test_unknown_or_inactive_mn_is_a_field_error(users, rt, sources, hooked, mn):
    r = users["system"].post("/api/v1/readings", json=body(mn=mn))
    assert r.status_code == 422
    assert r.get_json()["error"]["fields"] == {"mn": ["no active monitoring source has this MN"]}
    assert stored(rt) == [] and hooked == []


@pytest.mark.parametrize("change, field", [
    ({"readings": []}, "readings"),
    ({"readings": [{"pollutant": f"a{i:05d}", "kind": "Rtd", "value": 1} for i in range(501)]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": 1}] * 2}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Mean", "value": 1}]}, "readings"),
    ({"readings": [{"pollutant": "a21026;x", "kind": "Avg", "value": 1}]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": "1e400"}]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": "0.0000000000001"}]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": True}]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": 1, "flag": "X"}]}, "readings"),
    ({"readings": [{"pollutant": "a21026", "kind": "Avg", "value": 1, "unit": "mg"}]}, "readings"),
    ({"cn": "9014"}, "cn"),
    ({"dataTime": "2026-03-01T08:00:00"}, "dataTime"),
    ({"mn": ""}, "mn"),
    ({"extra": 1}, "extra"),
])
def test_bad_bodies_are_refused_with_the_field(users, rt, sources, hooked, change, field):
    r = users["system"].post("/api/v1/readings", json=body(**change))
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"]
    assert stored(rt) == []


def test_not_json_and_nan_are_bad_requests(users, sources, hooked):
    assert users["system"].post("/api/v1/readings", data="mn=x").status_code == 415
    r = users["system"].post("/api/v1/readings", data='{"mn": "x", "value": NaN}',
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 400


def test_the_wired_intake_is_used_when_none_is_installed(app, users, rt, sources):
    r = users["system"].post("/api/v1/readings", json=body())
    assert r.status_code == 201, r.get_json()
    assert len(stored(rt)) == 3
    intake = app.extensions["gridloop.readings"]
    try:
        from workflows.monitoring_rules import evaluate  # noqa: F401
    except ImportError:
        assert intake.hooks == []
    else:
        assert [h.__name__ for h in intake.hooks] == ["monitoring_rules.evaluate"]


def post_series(users):
    for hours in range(3):
        for mn in (MN, MN_ELSEWHERE):
            r = users["system"].post("/api/v1/readings", json=body(mn=mn, at=T0 + timedelta(hours=hours)))
            assert r.status_code == 201


def test_list_filters_and_pages(users, sources, hooked):
    post_series(users)
    page = users["admin"].get("/api/v1/readings?limit=4").get_json()
    assert page["total"] == 18 and len(page["items"]) == 4 and page["offset"] == 0
    newest = page["items"][0]
    assert newest["dataTime"] == "2026-03-01T10:00:00+00:00" and "receivedAt" in newest
    only = users["admin"].get(f"/api/v1/readings?mn={MN}&pollutant=w01018").get_json()
    assert [i["value"] for i in only["items"]] == ["49.2"] * 3
    cou = users["admin"].get(f"/api/v1/readings?mn={MN}&pollutant=w00000&limit=1").get_json()["items"]
    assert cou[0]["value"] == "1200"
    assert {(i["mn"], i["pollutant"], i["kind"], i["cn"], i["flag"]) for i in only["items"]} == {
        (MN, "w01018", "Avg", "2061", "N")}
    window = users["leader"].get("/api/v1/readings", query_string={
        "mn": MN, "from": (T0 + timedelta(hours=1)).isoformat(), "to": (T0 + timedelta(hours=2)).isoformat()})
    assert window.get_json()["total"] == 3
    second = users["admin"].get("/api/v1/readings?offset=16&limit=4").get_json()
    assert second["total"] == 18 and len(second["items"]) == 2


def test_supervisors_see_the_sources_of_their_grid(users, sources, hooked):
    post_series(users)
    page = users["sup"].get("/api/v1/readings").get_json()  # scope 3207: not the 3203 outlet
    assert page["total"] == 9 and {i["mn"] for i in page["items"]} == {MN}
    assert users["sup"].get(f"/api/v1/readings?mn={MN_ELSEWHERE}").get_json()["total"] == 0


def test_list_arguments_are_validated(users):
    assert users["insp"].get("/api/v1/readings").status_code == 403
    r = users["admin"].get("/api/v1/readings", query_string={"from": T0.isoformat(), "to": T0.isoformat()})
    assert r.status_code == 422 and "to" in r.get_json()["error"]["fields"]
    assert users["admin"].get("/api/v1/readings?from=yesterday").status_code == 422
    assert users["admin"].get("/api/v1/readings?limit=501").status_code == 422
