"""The closed loop's variants over HTTP, each from the outside: rework after a failed verification,
sign-for timeout escalated to the level above by the scheduler, alarms routed to the city, duplicate
alarms, 回退 (return) and 延期 (extension) with their approvals, SLA deadlines across a holiday and
a swapped working day (调休), and grid isolation between inspectors.

Fixtures and helpers are those of the full-loop test (tests/api/test_closed_loop_http.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from api import accounts
from engine.queues import ManualJobQueue
from engine.scheduler import Scheduler
from engine.timers import WAKE_SLACK
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import PASSWORD, Caller
from tests.api.test_closed_loop_http import JPEG, login, point_in_first_unit, run_jobs, signed, to_enforcement
from workflows.grids import Grid

world = full_loop.world  # the fixture: the demo city, the env_case model, a fake enforcement system, an app

T0 = datetime(2026, 9, 29, 1, 0, tzinfo=UTC)  # the world's clock: Tuesday 29 September 2026, 09:00 China time


# -- small helpers over the HTTP API -------------------------------------------------------------------

def system_caller(rt, client, clock) -> Caller:
    key = accounts.create_api_key(rt.db, clock.now(), name="monitoring", roles=["system"])
    return Caller(client, {"X-API-Key": key}, "system")


def existing(client, username: str) -> Caller:
    """A caller for a user created earlier (by a helper that did not hand the caller back)."""
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


def post_alarm(system: Caller, clock, external_id: str, **over):
    body = {"tenant": "320700", "source": "monitoring", "externalId": external_id,
            "category": "air.exceedance", "occurredAt": clock.now().isoformat(), **over}
    return system.post("/api/v1/alarms", json=body)


def file_case(system: Caller, clock, external_id: str, **over) -> dict:
    r = post_alarm(system, clock, external_id, **over)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def open_tasks(caller: Caller, iid: str) -> list[dict]:
    r = caller.get(f"/api/v1/task?processInstanceId={iid}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def elements(caller: Caller, iid: str) -> list[str]:
    return sorted(t["taskDefinitionKey"] for t in open_tasks(caller, iid))


def task_of(caller: Caller, iid: str, element: str) -> dict:
    (task,) = [t for t in open_tasks(caller, iid) if t["taskDefinitionKey"] == element]
    return task


def complete(caller: Caller, iid: str, element: str, **variables) -> dict:
    task = task_of(caller, iid, element)
    r = caller.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables})
    assert r.status_code == 200, r.get_json()
    return task


def variables(caller: Caller, iid: str) -> dict:
    r = caller.get(f"/api/v1/process-instance/{iid}/variables")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def counters(caller: Caller, iid: str) -> dict[str, int]:
    v = variables(caller, iid)
    return {k: v[k] for k in ("escalations", "extensions", "returns", "reworks")}


def fired_timers(caller: Caller, iid: str) -> list[list[str]]:
    """The timer elements each scheduler firing ran, from the instance's audit trail."""
    history = caller.get(f"/api/v1/process-instance/{iid}/history").get_json()
    return [e["details"]["elements"] for e in history if e["action"] == "timer.fired"]


def due(task: dict) -> datetime:
    return datetime.fromisoformat(task["due"])


def give_evidence(inspector: Caller, task_id: str, lon: float, lat: float) -> None:
    assert inspector.post(f"/api/v1/task/{task_id}/checkin", json={"lon": lon, "lat": lat}).status_code == 201
    photo = inspector.post(f"/api/v1/task/{task_id}/photos", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(JPEG), "site.jpg", "image/jpeg")})
    assert photo.status_code == 201


def a_unit_elsewhere(rt, than: str) -> str:
    """The first basic unit of another district than the unit `than`."""
    with rt.db.session() as s:
        return s.scalar(select(Grid.code).where(Grid.level == "unit", Grid.code.not_like(f"{than[:6]}%"))
                        .order_by(Grid.code).limit(1))


def to_handle(rt, client, clock, category: str = "air.exceedance"):
    """File an alarm in the first unit and take it, over HTTP, to the routed inspector's `handle`."""
    unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    case = file_case(system, clock, "H-1", category=category, lon=lon, lat=lat)
    iid = case["processInstanceId"]
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch")
    complete(inspector, iid, "sign_for")
    return case, iid, sup, inspector


# -- 1. 返工: a failed verification sends the case back to handling ------------------------------------

def test_a_failed_verification_sends_the_case_back_to_handling_then_it_closes(world, clock):
    rt, client, _fake = world
    case, sup, act = to_enforcement(rt, client, clock)
    iid = case["processInstanceId"]
    run_jobs(rt)
    assert signed(client, {"caseId": case["id"], "result": "rectified"}, "cb-rework").status_code == 200
    act(sup, "verify", verified=False, verify_note="整改不到位")
    unit, lon, lat = point_in_first_unit(rt)
    inspector = existing(client, f"insp-{unit}")
    assert elements(sup, iid) == ["handle"]
    handle = task_of(sup, iid, "handle")
    assert handle["assignee"] == f"insp-{unit}"  # back to the inspector who handled it
    assert counters(sup, iid)["reworks"] == 1
    # a new handling needs its own evidence: that of the first round does not count
    r = inspector.post(f"/api/v1/task/{handle['id']}/complete", json={"variables": {
        "handle_result": "done", "finding_kind": "rectified"}})
    assert r.status_code == 422 and "evidence" in r.get_json()["error"]["fields"]
    give_evidence(inspector, handle["id"], lon, lat)
    complete(inspector, iid, "handle", handle_result="done", finding_kind="rectified", findings="已整改")
    assert elements(sup, iid) == ["verify"]  # rectified: no second push to enforcement
    complete(sup, iid, "verify", verified=True)
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["processStatus"] == "completed" and detail["openTasks"] == []
    assert counters(sup, iid)["reworks"] == 1
    assert [e["element"] for e in detail["timeline"] if e["action"] == "task.completed"].count("handle") == 2
    assert open_tasks(inspector, iid) == []


# -- 2. 签收超时: reminder, then escalation to the level above, by the scheduler --------------------------

def test_sign_for_timeout_is_escalated_to_the_upper_level_by_the_scheduler(world, clock):
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    town = unit[:9]
    other_district = a_unit_elsewhere(rt, unit)[:6]
    system = system_caller(rt, client, clock)
    city_sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    town_sup = login(rt, client, clock, f"sup-{town}", ["supervisor"], town)
    elsewhere_sup = login(rt, client, clock, f"sup-{other_district}", ["supervisor"], other_district)
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    stand_in = login(rt, client, clock, f"insp-{town}", ["inspector"], town)
    scheduler = Scheduler(rt, ManualJobQueue(rt), max_sleep=timedelta(days=1))

    case = file_case(system, clock, "S-1", lon=lon, lat=lat)  # air.exceedance: sign for within 0.5 working h
    iid = case["processInstanceId"]
    complete(city_sup, iid, "review", review_result="valid")
    complete(city_sup, iid, "dispatch")
    sign = task_of(inspector, iid, "sign_for")
    assert due(sign) == datetime(2026, 9, 29, 1, 30, tzinfo=UTC)  # 09:30 China time
    remind_at = datetime(2026, 9, 29, 1, 22, 30, tzinfo=UTC)  # 75 % of the half hour
    instance = city_sup.get(f"/api/v1/process-instance/{iid}").get_json()
    assert datetime.fromisoformat(instance["nextWakeupAt"]) == remind_at
    first = scheduler.tick()
    assert first.fired == 0 and first.next_run == remind_at + WAKE_SLACK  # it sleeps until the reminder

    clock.set(remind_at + timedelta(seconds=1))
    reminded = scheduler.tick()
    assert reminded.fired == 1 and reminded.next_run == due(sign) + WAKE_SLACK
    assert [t["id"] for t in open_tasks(inspector, iid)] == [sign["id"]]  # the reminder does not interrupt
    assert fired_timers(city_sup, iid) == [["sign_reminder"]]

    clock.set(due(sign))
    assert scheduler.tick().fired == 0  # a deadline is passed only once it is strictly in the past
    clock.set(due(sign) + timedelta(seconds=1))
    assert scheduler.tick().fired == 1
    assert fired_timers(city_sup, iid) == [["sign_reminder"], ["sign_overdue"]]
    assert open_tasks(inspector, iid) == []  # the inspector's sign-for is gone
    escalation = task_of(town_sup, iid, "escalate_sign")
    assert escalation["candidateScope"] == town and escalation["candidateRole"] == "supervisor"
    assert elements(city_sup, iid) == ["escalate_sign"]  # the city sees all under it
    assert open_tasks(elsewhere_sup, iid) == []  # a supervisor of another district does not
    assert elsewhere_sup.get(f"/api/v1/task/{escalation['id']}").status_code == 404
    r = elsewhere_sup.post(f"/api/v1/task/{escalation['id']}/complete", json={"variables": {"inspector": "x"}})
    assert r.status_code == 404
    assert inspector.post(f"/api/v1/task/{escalation['id']}/complete",
                          json={"variables": {"inspector": stand_in.name}}).status_code == 404
    detail = town_sup.get(f"/api/v1/cases/{case['id']}")
    assert detail.status_code == 200 and "timer.fired" in [e["action"] for e in detail.get_json()["timeline"]]

    complete(town_sup, iid, "escalate_sign", inspector=stand_in.name)
    resign = task_of(stand_in, iid, "sign_for")
    assert resign["id"] != sign["id"] and resign["assignee"] == stand_in.name
    assert due(resign) == datetime(2026, 9, 29, 2, 0, 1, tzinfo=UTC)  # half a working hour after escalation
    assert [t for t in open_tasks(inspector, iid) if t["assignee"] == inspector.name] == []
    r = inspector.post(f"/api/v1/task/{resign['id']}/complete", json={"variables": {}})
    assert r.status_code == 403, r.get_json()  # the one it was taken from may not sign for it any more
    v = counters(city_sup, iid)
    assert (v["escalations"], v["extensions"], v["returns"], v["reworks"]) == (1, 0, 0, 0)
    complete(stand_in, iid, "sign_for")
    assert task_of(stand_in, iid, "handle")["assignee"] == stand_in.name


def test_a_sign_for_reminder_is_counted(world, clock):
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    case = file_case(system, clock, "R-1", lon=lon, lat=lat)
    iid = case["processInstanceId"]
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch")
    clock.set(datetime(2026, 9, 29, 1, 22, 31, tzinfo=UTC))  # just past the reminder, before the deadline
    assert Scheduler(rt, ManualJobQueue(rt)).tick().fired == 1
    complete(inspector, iid, "sign_for")
    assert fired_timers(sup, iid) == [["sign_reminder"]]
    handle = task_of(inspector, iid, "handle")
    give_evidence(inspector, handle["id"], lon, lat)
    complete(inspector, iid, "handle", handle_result="done", finding_kind="rectified")
    complete(sup, iid, "verify", verified=True)
    # The reminder's branch ends on its own and its data never reaches the process's: the case's
    # assessment counts reminders from the audit trail instead.
    record = sup.get(f"/api/v1/cases/{case['id']}").get_json()["assessment"]
    assert record["counts"]["reminders"] == 1 and record["signedOnTime"] is True


# -- 3. alarms without a usable location go to the city ------------------------------------------------

def test_alarms_without_location_or_outside_every_grid_go_to_the_city(world, clock):
    rt, client, _fake = world
    unit, _lon, _lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    city_sup = login(rt, client, clock, "city-sup", ["supervisor"], "320700")
    district_sup = login(rt, client, clock, "district-sup", ["supervisor"], unit[:6])

    nowhere = file_case(system, clock, "N-1", category="noise")
    outside = file_case(system, clock, "O-1", category="noise", lon=100.0, lat=20.0)  # far from 连云港
    assert (nowhere["grid"], nowhere["routeReason"]) == ("320700", "the alarm has no location")
    assert outside["grid"] == "320700" and "outside every grid" in outside["routeReason"]
    listed = city_sup.get("/api/v1/cases?tenant=320700").get_json()
    assert listed["total"] == 2 and {c["id"] for c in listed["items"]} == {nowhere["id"], outside["id"]}
    for case in (nowhere, outside):
        review = task_of(city_sup, case["processInstanceId"], "review")
        assert review["candidateScope"] == "320700"
        detail = city_sup.get(f"/api/v1/cases/{case['id']}").get_json()
        assert detail["routeReason"] == case["routeReason"] and detail["processStatus"] == "running"
        assert district_sup.get(f"/api/v1/cases/{case['id']}").status_code == 404  # the city's, not a district's
    page = city_sup.get("/api/v1/home?tenant=320700").get_json()
    assert page["alarms"]["count"] == 2


# -- 4. a repeated alarm from the same source joins the open case ---------------------------------------

def test_a_repeated_alarm_of_an_open_case_is_an_occurrence_and_the_same_alarm_a_repeat(world, clock):
    rt, client, _fake = world
    _unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    case = file_case(system, clock, "A-1", sourceRef="MN-7", lon=lon, lat=lat)
    assert case["occurrences"] == 1

    clock.advance(timedelta(minutes=10))
    again = post_alarm(system, clock, "A-2", sourceRef="MN-7", lon=lon, lat=lat)
    assert again.status_code == 200, again.get_json()
    body = again.get_json()
    assert body["outcome"] == "occurrence" and body["id"] == case["id"] and body["occurrences"] == 2
    assert datetime.fromisoformat(body["lastSeen"]) == clock.now()

    repeat = post_alarm(system, clock, "A-1", sourceRef="MN-7", lon=lon, lat=lat)
    assert repeat.status_code == 200 and repeat.get_json()["outcome"] == "repeat"
    assert repeat.get_json()["id"] == case["id"] and repeat.get_json()["occurrences"] == 2

    other = post_alarm(system, clock, "A-3", sourceRef="MN-7", category="water.exceedance", lon=lon, lat=lat)
    assert other.status_code == 201 and other.get_json()["outcome"] == "filed"  # another category: a new case
    cases = sup.get("/api/v1/cases?tenant=320700").get_json()
    assert cases["total"] == 2
    assert {c["id"]: c["occurrences"] for c in cases["items"]}[case["id"]] == 2
    instances = sup.get("/api/v1/process-instance?key=env_case").get_json()
    assert instances["total"] == 2


def test_the_same_occurrence_delivered_twice_is_counted_once(world, clock):
    rt, client, _fake = world
    _unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    case = file_case(system, clock, "A-1", sourceRef="MN-7", lon=lon, lat=lat)
    assert post_alarm(system, clock, "A-2", sourceRef="MN-7", lon=lon, lat=lat).get_json()["outcome"] == "occurrence"
    redelivered = post_alarm(system, clock, "A-2", sourceRef="MN-7", lon=lon, lat=lat).get_json()
    assert redelivered["id"] == case["id"]
    assert (redelivered["outcome"], redelivered["occurrences"]) == ("repeat", 2)


# -- 5. 回退: the inspector returns a case that is not theirs -------------------------------------------

def test_a_return_needs_approval_approved_goes_back_to_dispatch_rejected_back_to_handling(world, clock):
    rt, client, _fake = world
    _case, iid, sup, inspector = to_handle(rt, client, clock)
    first = complete(inspector, iid, "handle", handle_result="return", return_reason="不属本网格：企业在界外")
    assert open_tasks(inspector, iid) == []
    approval = task_of(sup, iid, "approve_return")
    assert approval["candidateRole"] == "supervisor"
    # offered to supervisors: not even shown to the inspector
    assert inspector.post(f"/api/v1/task/{approval['id']}/complete",
                          json={"variables": {"return_approved": True}}).status_code == 404
    assert variables(sup, iid)["return_reason"] == "不属本网格：企业在界外"

    complete(sup, iid, "approve_return", return_approved=False)
    again = task_of(inspector, iid, "handle")
    assert again["id"] != first["id"] and again["due"] == first["due"]  # same deadline, no new SLA
    assert counters(sup, iid)["returns"] == 0

    complete(inspector, iid, "handle", handle_result="return", return_reason="确不属本网格")
    complete(sup, iid, "approve_return", return_approved=True)
    assert elements(sup, iid) == ["dispatch"] and open_tasks(inspector, iid) == []
    assert counters(sup, iid)["returns"] == 1


# -- 6. 延期: an extension moves the deadline in working time -------------------------------------------

def test_an_extension_needs_approval_and_moves_the_deadline_in_working_time(world, clock):
    rt, client, _fake = world
    # noise is not urgent: its limits count in working time (urgent categories count around the clock)
    _case, iid, sup, inspector = to_handle(rt, client, clock, category="noise")
    handle = task_of(inspector, iid, "handle")
    # signed for on Tuesday 29 September at 09:00 China time; 16 working hours: 7 on Tuesday, 7.5 on
    # Wednesday, then 1–7 October are National Day, so the last 1.5 on Thursday 8 October: 08:30–10:00
    old_due = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
    assert due(handle) == old_due

    complete(inspector, iid, "handle", handle_result="extension", extension_reason="需第三方检测")
    assert elements(sup, iid) == ["approve_extension"]
    complete(sup, iid, "approve_extension", extension_approved=False)
    refused = task_of(inspector, iid, "handle")
    assert refused["id"] != handle["id"] and due(refused) == old_due
    assert counters(sup, iid)["extensions"] == 0

    complete(inspector, iid, "handle", handle_result="extension", extension_reason="需第三方检测")
    complete(sup, iid, "approve_extension", extension_approved=True, approved_hours=12)
    extended = task_of(inspector, iid, "handle")
    # 12 working hours after the old deadline (Thu 8 October 10:00): 6 h on Thursday, then Friday
    # 08:30–12:00 and 13:30–16:00
    assert due(extended) == datetime(2026, 10, 9, 8, 0, tzinfo=UTC)
    assert counters(sup, iid)["extensions"] == 1
    assert variables(sup, iid)["extension_reason"] == "需第三方检测"


# -- 7. SLA deadlines over a holiday and a swapped working day ------------------------------------------

def test_deadlines_skip_national_day_and_count_the_swapped_saturday(world, clock):
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    system = system_caller(rt, client, clock)
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)

    clock.set(datetime(2026, 9, 30, 8, 30, tzinfo=UTC))  # Wednesday 16:30 China time, the eve of the holiday
    case = file_case(system, clock, "D-1", category="device.fault", lon=lon, lat=lat)  # sign 2 h, handle 24 h
    iid = case["processInstanceId"]
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch")
    sign = task_of(inspector, iid, "sign_for")
    # 1 h on Wednesday (16:30–17:30); 1–7 October are holidays; the second hour is 08:30–09:30 on Thursday 8th
    assert due(sign) == datetime(2026, 10, 8, 1, 30, tzinfo=UTC)

    clock.set(datetime(2026, 10, 8, 1, 0, tzinfo=UTC))  # signed for on Thursday 8 October 09:00
    complete(inspector, iid, "sign_for")
    handle = task_of(inspector, iid, "handle")
    # 24 working hours: Thu 8th 7 h (09:00–12:00, 13:30–17:30), Fri 9th 7.5 h, Sat 10th 7.5 h (a swapped
    # working day), Sun 11th off, Mon 12th 2 h (08:30–10:30)
    assert due(handle) == datetime(2026, 10, 12, 2, 30, tzinfo=UTC)

    clock.set(datetime(2026, 10, 9, 9, 0, tzinfo=UTC))  # Friday 9 October 17:00 China time
    late = file_case(system, clock, "D-2", category="noise", lon=lon, lat=lat)  # sign for within 2 h
    complete(sup, late["processInstanceId"], "review", review_result="valid")
    complete(sup, late["processInstanceId"], "dispatch")
    # half an hour on Friday, then the swapped Saturday 10 October counts: 08:30–10:00
    assert due(task_of(inspector, late["processInstanceId"], "sign_for")) == datetime(2026, 10, 10, 2, 0,
                                                                                       tzinfo=UTC)


# -- 8. an inspector sees nothing of another grid's case ------------------------------------------------

@pytest.mark.parametrize("where", ["sibling unit", "other district"])
def test_an_inspector_of_another_grid_cannot_see_or_act_on_the_case(world, clock, where):
    rt, client, _fake = world
    case, iid, sup, inspector = to_handle(rt, client, clock)
    unit = inspector.name.removeprefix("insp-")
    other_unit = unit[:-3] + f"{int(unit[-3:]) + 1:03d}" if where == "sibling unit" else a_unit_elsewhere(rt, unit)
    with rt.db.session() as s:
        assert s.scalar(select(Grid.code).where(Grid.code == other_unit)) == other_unit
    stranger = login(rt, client, clock, f"insp-{other_unit}", ["inspector"], other_unit)
    handle = task_of(inspector, iid, "handle")
    url = f"/api/v1/task/{handle['id']}"
    _unit, lon, lat = point_in_first_unit(rt)

    assert stranger.get(f"/api/v1/cases/{case['id']}").status_code == 404
    assert stranger.get("/api/v1/cases?tenant=320700").get_json()["total"] == 0
    assert open_tasks(stranger, iid) == []
    assert stranger.get(url).status_code == 404
    assert stranger.get(f"{url}/variables").status_code == 404
    assert stranger.get(f"{url}/evidence").status_code == 404
    assert stranger.post(f"{url}/claim").status_code == 404
    assert stranger.post(f"{url}/checkin", json={"lon": lon, "lat": lat}).status_code == 404
    assert stranger.post(f"{url}/complete", json={"variables": {"handle_result": "return",
                                                                "return_reason": "x"}}).status_code == 404
    assert stranger.post(f"{url}/delegate", json={"userId": stranger.name}).status_code == 404
    assert stranger.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "快"}).status_code == 403
    # nothing changed: the task is still the inspector's
    assert [t["id"] for t in open_tasks(inspector, iid)] == [handle["id"]]
    assert sup.get(f"/api/v1/cases/{case['id']}").get_json()["openTasks"][0]["assignee"] == inspector.name
