"""Every decision of the loop is typed and checked over HTTP: a wrong value or reference is a 422 naming
the field and leaves the case as it was (same task open, same status, nothing on its timeline); a valid
transfer moves the case, its scope and its escalation level together.

Fixtures and helpers are those of tests/api/test_closed_loop_http.py and test_loop_variants.py."""

from __future__ import annotations

import pytest

from api import accounts
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import Caller
from tests.api.test_closed_loop_http import login, point_in_first_unit
from tests.api.test_loop_variants import a_unit_elsewhere, complete, file_case, give_evidence, system_caller, task_of

world = full_loop.world


@pytest.fixture
def case(world, clock):
    """A case filed in the first unit, with the city's supervisor, the unit's inspector (with a login)
    and a supervisor and an inspector of another district."""
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    elsewhere = a_unit_elsewhere(rt, unit)
    people = {
        "sup": login(rt, client, clock, "city-sup", ["supervisor"], "3207"),
        "insp": login(rt, client, clock, f"insp-{unit}", ["inspector"], unit),
        "far_sup": login(rt, client, clock, f"sup-{elsewhere[:6]}", ["supervisor"], elsewhere[:6]),
        "far_insp": login(rt, client, clock, f"insp-{elsewhere}", ["inspector"], elsewhere),
    }
    filed = file_case(system, clock, "A-1", sourceRef="MN-1", lon=lon, lat=lat)
    return rt, filed, people, {"unit": unit, "lon": lon, "lat": lat, "elsewhere": elsewhere}


def refused(caller, iid: str, element: str, **variables) -> dict[str, list[str]]:
    """Complete `element` with wrong values: 422, and the task, the case and its timeline unchanged."""
    before = caller.get(f"/api/v1/process-instance/{iid}/history").get_json()
    task = task_of(caller, iid, element)
    r = caller.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables})
    assert r.status_code == 422, r.get_json()
    assert task_of(caller, iid, element)["id"] == task["id"]
    assert caller.get(f"/api/v1/process-instance/{iid}/history").get_json() == before
    return r.get_json()["error"]["fields"]


def test_review_takes_only_its_own_values(case):
    _rt, filed, p, _where = case
    iid = filed["processInstanceId"]
    assert list(refused(p["sup"], iid, "review", review_result="Valid")) == ["review_result"]
    assert list(refused(p["sup"], iid, "review", review_result=123)) == ["review_result"]
    assert list(refused(p["sup"], iid, "review", review_result="invalid")) == ["invalid_reason"]
    assert list(refused(p["sup"], iid, "review", review_result="valid", grid="320703")) == ["grid"]
    assert p["sup"].get(f"/api/v1/cases/{filed['id']}").get_json()["status"] == "open"


def test_a_merge_needs_another_open_case_of_the_city(case, clock):
    rt, filed, p, where = case
    iid = filed["processInstanceId"]
    fields = refused(p["sup"], iid, "review", review_result="merge", merge_into="C-DOES-NOT-EXIST")
    assert fields == {"merge_into": ["there is no open case 'C-DOES-NOT-EXIST' you may name"]}
    fields = refused(p["sup"], iid, "review", review_result="merge", merge_into=filed["id"])
    assert fields == {"merge_into": ["a case cannot be merged into itself"]}
    system = Caller(p["sup"].client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="monitoring-2",
                                                                           roles=["system"])}, "system")
    other = file_case(system, clock, "A-2", sourceRef="MN-2", lon=where["lon"], lat=where["lat"])
    complete(p["sup"], iid, "review", review_result="merge", merge_into=other["id"])
    closed = p["sup"].get(f"/api/v1/cases/{filed['id']}").get_json()
    assert (closed["status"], closed["outcome"]) == ("closed", "merged")


def test_a_transfer_moves_case_scope_and_escalation_level_together(case):
    _rt, filed, p, where = case
    iid, elsewhere = filed["processInstanceId"], where["elsewhere"]
    assert refused(p["sup"], iid, "review", review_result="transfer", transfer_grid="999999999") == {
        "transfer_grid": ["there is no grid '999999999'"]}
    assert p["far_sup"].get(f"/api/v1/cases/{filed['id']}").status_code == 404  # not theirs yet
    complete(p["sup"], iid, "review", review_result="transfer", transfer_grid=elsewhere)
    moved = p["far_sup"].get(f"/api/v1/cases/{filed['id']}")
    assert moved.status_code == 200 and moved.get_json()["grid"] == elsewhere
    assert "transferred" in moved.get_json()["routeReason"]
    assert task_of(p["far_sup"], iid, "review")["candidateScope"] == elsewhere
    v = p["sup"].get(f"/api/v1/process-instance/{iid}/variables").get_json()
    assert (v["grid"], v["transfers"]) == (elsewhere, 1) and elsewhere.startswith(v["escalation_scope"][:6])
    assert p["far_sup"].get(f"/api/v1/process-instance/{iid}").status_code == 200  # the instance moved too
    # the old grid's routed inspector is dropped: the new grid's supervisor dispatches
    complete(p["far_sup"], iid, "review", review_result="valid")
    complete(p["far_sup"], iid, "dispatch")
    sign = task_of(p["far_sup"], iid, "sign_for")
    assert (sign["assignee"], sign["candidateScope"]) == (None, elsewhere)
    assert p["insp"].get(f"/api/v1/task/{sign['id']}").status_code == 404


def test_dispatch_and_escalation_name_only_inspectors_who_may_work_there(case):
    _rt, filed, p, _where = case
    iid = filed["processInstanceId"]
    complete(p["sup"], iid, "review", review_result="valid")
    assert refused(p["sup"], iid, "dispatch", inspector="insp-typo-nobody") == {
        "inspector": ["'insp-typo-nobody' is not an active user"]}
    fields = refused(p["sup"], iid, "dispatch", inspector=p["far_insp"].name)
    assert list(fields) == ["inspector"] and "may not work on this" in fields["inspector"][0]
    assert list(refused(p["sup"], iid, "dispatch", inspector="city-sup")) == ["inspector"]  # not an inspector
    complete(p["sup"], iid, "dispatch", inspector=p["insp"].name)
    assert task_of(p["insp"], iid, "sign_for")["assignee"] == p["insp"].name
    # delegating shares the rule
    sign = task_of(p["insp"], iid, "sign_for")
    r = p["sup"].post(f"/api/v1/task/{sign['id']}/delegate", json={"userId": p["far_insp"].name})
    assert r.status_code == 422 and "may not work on this" in r.get_json()["error"]["fields"]["userId"][0]


def test_handling_and_verification_take_typed_values(case):
    _rt, filed, p, where = case
    iid = filed["processInstanceId"]
    complete(p["sup"], iid, "review", review_result="valid")
    complete(p["sup"], iid, "dispatch")
    complete(p["insp"], iid, "sign_for")
    handle = task_of(p["insp"], iid, "handle")
    give_evidence(p["insp"], handle["id"], where["lon"], where["lat"])
    assert list(refused(p["insp"], iid, "handle", handle_result="done", finding_kind="Violation")) == ["finding_kind"]
    assert list(refused(p["insp"], iid, "handle", handle_result="Done", finding_kind="violation")) == ["handle_result"]
    assert list(refused(p["insp"], iid, "handle", handle_result="done", finding_kind="violation")) == ["findings"]
    complete(p["insp"], iid, "handle", handle_result="done", finding_kind="rectified")
    assert list(refused(p["sup"], iid, "verify", verified="yes")) == ["verified"]
    assert list(refused(p["sup"], iid, "verify", verified=False, reply="已办结")) == ["reply"]
    complete(p["sup"], iid, "verify", verified=True, verify_note="内部意见", reply="已整改完毕")
    assert p["sup"].get(f"/api/v1/cases/{filed['id']}").get_json()["outcome"] == "closed"


def test_the_task_form_is_served_as_json_schema(case):
    _rt, filed, p, _where = case
    review = task_of(p["sup"], filed["processInstanceId"], "review")
    r = p["sup"].get(f"/api/v1/task/{review['id']}/form")
    assert r.status_code == 200
    schema = r.get_json()["schema"]
    assert schema["properties"]["review_result"]["enum"] == ["valid", "invalid", "merge", "transfer"]
    assert schema["required"] == ["review_result"] and schema["additionalProperties"] is False
    assert schema["properties"]["transfer_grid"]["x-reference"]["kind"] == "grid"
    assert p["far_sup"].get(f"/api/v1/task/{review['id']}/form").status_code == 404  # not their grid


def test_a_supervisor_starts_a_case_process_only_inside_their_own_grid(case, clock):
    _rt, _filed, p, where = case
    district = where["unit"][:6]
    sup = p["far_sup"]  # a district supervisor (scope = their district)

    def start(grid: str, scope: str):
        return sup.post("/api/v1/process-definition/key/env_case/start", json={
            "businessKey": f"M-{grid}", "scope": scope, "variables": {
                "case_id": f"M-{grid}", "category": "air.exceedance", "grid": grid, "escalation_scope": grid[:6],
                "sign_for_hours": 2, "handle_hours": 8}})

    r = start(where["unit"], where["elsewhere"][:6])  # their own scope, another district's grid
    assert r.status_code == 422 and "grid" in r.get_json()["error"]["fields"], r.get_json()
    # in their own grid, but a process is started only for a filed case that has none yet
    r = start(where["elsewhere"], where["elsewhere"][:6])
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {
        "case_id": [f"there is no open case 'M-{where['elsewhere']}' you may name"]}
    assert district != where["elsewhere"][:6]


def test_a_second_process_cannot_be_started_for_a_filed_case(case):
    _rt, filed, p, where = case
    r = p["sup"].post("/api/v1/process-definition/key/env_case/start", json={
        "businessKey": "again", "scope": "3207", "variables": {
            "case_id": filed["id"], "category": "air.exceedance", "grid": where["unit"],
            "escalation_scope": where["unit"][:9], "sign_for_hours": 2, "handle_hours": 8}})
    assert r.status_code == 422 and r.get_json()["error"]["fields"] == {
        "case_id": [f"case '{filed['id']}' has its process already"]}, r.get_json()


def test_the_start_form_is_served_for_a_version_and_for_the_latest(case):
    _rt, _filed, p, _where = case
    r = p["sup"].get("/api/v1/process-definition/key/env_case/form")
    assert r.status_code == 200
    body = r.get_json()
    assert body["key"] == "env_case" and body["schema"]["properties"]["grid"]["x-reference"] == {
        "kind": "grid", "inActorScope": "true"}
    assert {"case_id", "category", "grid", "sign_for_hours"} <= set(body["schema"]["required"])
    by_id = p["sup"].get(f"/api/v1/process-definition/{body['definitionId']}/form").get_json()
    assert by_id["schema"] == body["schema"]
    assert p["insp"].get("/api/v1/process-definition/key/env_case/form").status_code == 403


def test_a_returned_case_is_transferred_from_dispatch_to_the_grid_where_it_belongs(case):
    _rt, filed, p, where = case
    iid, elsewhere = filed["processInstanceId"], where["elsewhere"]
    complete(p["sup"], iid, "review", review_result="valid")
    complete(p["sup"], iid, "dispatch", inspector=p["insp"].name)
    complete(p["insp"], iid, "sign_for")
    complete(p["insp"], iid, "handle", handle_result="return", return_reason="企业在界外，属邻区")
    complete(p["sup"], iid, "approve_return", return_approved=True)
    assert list(refused(p["sup"], iid, "dispatch", dispatch_action="transfer")) == ["transfer_grid",
                                                                                  "transfer_reason"]
    assert list(refused(p["sup"], iid, "dispatch", dispatch_action="transfer", transfer_grid=elsewhere,
                        transfer_reason="属邻区", inspector=p["insp"].name)) == ["inspector"]
    complete(p["sup"], iid, "dispatch", dispatch_action="transfer", transfer_grid=elsewhere,
             transfer_reason="属邻区")
    moved = p["far_sup"].get(f"/api/v1/cases/{filed['id']}").get_json()
    assert moved["grid"] == elsewhere and [t["taskDefinitionKey"] for t in moved["openTasks"]] == ["review"]
    history = p["sup"].get(f"/api/v1/process-instance/{iid}/history").get_json()
    assert any(e["action"] == "task.completed" and e["details"]["after"]["variables"].get("transfer_reason")
               == "属邻区" for e in history)  # the reason is on the timeline
    complete(p["far_sup"], iid, "review", review_result="valid")
    complete(p["far_sup"], iid, "dispatch")  # the default action: dispatch in the (new) grid
    assert task_of(p["far_sup"], iid, "sign_for")["candidateScope"] == elsewhere
