"""Petitions (信访) over HTTP, as the petition system and a supervisor use them: registering one
(idempotent by its id), its limits and their state, the one extension, and bad input.

Fixtures are those of the full-loop test (tests/api/test_closed_loop_http.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api import accounts
from engine import instances, tasks
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import Caller
from tests.api.test_closed_loop_http import login, point_in_first_unit
from workflows.cases import Case

world = full_loop.world  # the demo city 320700 (clock: 29 September 2026, 09:00 China time), env_case, an app


@pytest.fixture
def callers(world, clock):
    rt, client, _fake = world
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="xinfang",
                                                                   roles=["system"])}, "system:xinfang")
    return rt, system, login(rt, client, clock, "city-sup", ["supervisor"], "3207")


def body(clock, petition_id="XF-2026-0001", **extra) -> dict:
    return {"petitionId": petition_id, "tenant": "320700", "petitioner": {"name": "王五", "phone": "13700000000"},
            "content": "化工厂夜间排放刺激性气味", "address": "连云区某化工园区东门",
            "receivedAt": clock.now().isoformat(), **extra}


def test_a_petition_is_registered_once_with_its_limits(callers, clock):
    rt, system, _sup = callers
    r = system.post("/api/v1/petitions", json=body(clock))
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert (created["petitionId"], created["intake"], created["status"], created["grid"]) == (
        "XF-2026-0001", "filed", "open", "320700")  # no point: the city
    assert created["countedIn"] == "natural days" and created["extension"] is None
    assert created["limits"] == {
        "acceptance": {"due": "2026-10-14", "doneAt": None, "state": "pending", "daysLeft": 15},
        "completion": {"due": "2026-11-28", "doneAt": None, "state": "pending", "daysLeft": 60}}
    again = system.post("/api/v1/petitions", json=body(clock))
    assert again.status_code == 200 and again.get_json()["intake"] == "repeat"
    assert again.get_json()["caseId"] == created["caseId"]
    with rt.db.session() as s:
        case = s.get(Case, created["caseId"])
        assert s.scalar(select(func.count()).select_from(Case)) == 1
    assert (case.source, case.category, case.description) == ("petition", "petition", "化工厂夜间排放刺激性气味")
    assert case.details["reporter"] == {"name": "王五", "phone": "13700000000"}  # told when the case closes
    assert case.details["address"] == "连云区某化工园区东门"


def test_a_petition_with_a_point_goes_to_its_grid(callers, clock):
    rt, system, _sup = callers
    unit, lon, lat = point_in_first_unit(rt)
    r = system.post("/api/v1/petitions", json=body(clock, lon=lon, lat=lat, category="noise"))
    assert r.status_code == 201 and (r.get_json()["grid"], r.get_json()["category"]) == (unit, "noise")


def test_the_limits_show_met_and_overdue_as_the_case_moves(callers, clock):
    rt, system, sup = callers
    created = system.post("/api/v1/petitions", json=body(clock)).get_json()
    clock.advance(timedelta(days=16))
    limits = sup.get("/api/v1/petitions/XF-2026-0001").get_json()["limits"]
    assert limits["acceptance"]["state"] == "overdue" and limits["completion"]["daysLeft"] == 44
    iid = created["processInstanceId"]
    (review,) = [t for t in instances.open_tasks(rt, iid) if t.element_id == "review"]
    tasks.complete(rt, review.id, "city-sup", {"review_result": "valid"})
    limits = system.get("/api/v1/petitions/XF-2026-0001").get_json()["limits"]
    assert limits["acceptance"]["state"] == "late" and limits["acceptance"]["doneAt"] == clock.now().isoformat()


def test_one_extension_by_a_supervisor_with_a_reason(callers, clock):
    _rt, system, sup = callers
    system.post("/api/v1/petitions", json=body(clock))
    r = sup.post("/api/v1/petitions/XF-2026-0001/extend", json={"days": 20, "reason": "需多部门联合调查"})
    assert r.status_code == 200, r.get_json()
    extended = r.get_json()
    assert extended["limits"]["completion"]["due"] == "2026-12-18"
    assert extended["extension"]["days"] == 20 and extended["extension"]["by"] == "city-sup"
    assert extended["extension"]["previousDue"] == "2026-11-28"
    again = sup.post("/api/v1/petitions/XF-2026-0001/extend", json={"days": 5, "reason": "再延"})
    assert again.status_code == 409 and "already" in again.get_json()["error"]["message"]
    detail = sup.get(f"/api/v1/cases/{extended['caseId']}").get_json()
    assert "petition.extended" in [e["action"] for e in detail["timeline"]]


@pytest.mark.parametrize("extension", [{"days": 31, "reason": "x"}, {"days": 0, "reason": "x"}, {"days": 10},
                                       {"days": 10, "reason": ""}])
def test_an_extension_is_1_to_30_days_with_a_reason(callers, clock, extension):
    _rt, system, sup = callers
    system.post("/api/v1/petitions", json=body(clock))
    assert sup.post("/api/v1/petitions/XF-2026-0001/extend", json=extension).status_code == 422


def test_no_extension_once_the_limit_has_passed(callers, clock):
    _rt, system, sup = callers
    system.post("/api/v1/petitions", json=body(clock))
    clock.advance(timedelta(days=61))
    r = sup.post("/api/v1/petitions/XF-2026-0001/extend", json={"days": 10, "reason": "迟了"})
    assert r.status_code == 409
    assert sup.get("/api/v1/petitions/XF-2026-0001").get_json()["limits"]["completion"]["state"] == "overdue"


def test_a_supervisor_elsewhere_neither_sees_nor_extends_it(callers, clock):
    rt, system, _sup = callers
    system.post("/api/v1/petitions", json=body(clock))
    elsewhere = login(rt, system.client, clock, "sh-sup", ["supervisor"], "3101")
    assert elsewhere.get("/api/v1/petitions/XF-2026-0001").status_code == 404
    assert elsewhere.post("/api/v1/petitions/XF-2026-0001/extend",
                          json={"days": 10, "reason": "x"}).status_code == 404
    assert system.get("/api/v1/petitions/XF-404").status_code == 404


@pytest.mark.parametrize("change, field", [
    ({"petitionId": ""}, "petitionId"),
    ({"petitioner": {"phone": "13700000000"}}, "petitioner"),
    ({"lon": 119.2}, "lon"),
    ({"receivedAt": "2026-09-29T09:00:00"}, "receivedAt"),  # no offset
    ({"content": "长" * 2001}, "content"),
    ({"tenant": "32070"}, "tenant"),
    ({"unexpected": 1}, "unexpected"),
])
def test_bad_petitions_are_422_naming_the_field(callers, clock, change, field):
    rt, system, _sup = callers
    r = system.post("/api/v1/petitions", json={**body(clock), **change})
    assert r.status_code == 422 and field in r.get_json()["error"]["fields"], r.get_json()
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_a_future_receipt_or_an_unknown_category_is_422(callers, clock):
    _rt, system, _sup = callers
    tomorrow = (clock.now() + timedelta(days=1)).isoformat()
    future = system.post("/api/v1/petitions", json=body(clock, receivedAt=tomorrow))
    assert future.status_code == 422 and "future" in future.get_json()["error"]["fields"]["receivedAt"][0]
    unknown = system.post("/api/v1/petitions", json=body(clock, category="graffiti"))
    assert unknown.status_code == 422 and list(unknown.get_json()["error"]["fields"]) == ["category"]


def test_a_petition_received_long_ago_is_registered_already_late(callers, clock):
    _rt, system, _sup = callers
    r = system.post("/api/v1/petitions", json=body(clock, receivedAt=(clock.now() - timedelta(days=20)).isoformat()))
    assert r.status_code == 201 and r.get_json()["limits"]["acceptance"]["state"] == "overdue"


def test_an_alarm_id_is_not_a_petition(callers, clock):
    _rt, system, _sup = callers
    system.post("/api/v1/alarms", json={"tenant": "320700", "source": "petition", "externalId": "XF-9",
                                        "category": "petition", "occurredAt": clock.now().isoformat()})
    assert system.get("/api/v1/petitions/XF-9").status_code == 404
    assert system.post("/api/v1/petitions", json=body(clock, "XF-9")).status_code == 409
