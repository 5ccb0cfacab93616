"""Time as the city counts it, over HTTP with a controlled clock: urgent work in natural time at any
hour, ordinary work in working time across weekends, holidays and swapped working days; review and
dispatch deadlines with their reminder and escalation; 缓办 (deferral) stopping the handling clock
and resuming it to the second; time rules per category changed from a date without touching running
cases; a case transferred from dispatch getting the new grid's review deadline.

Fixtures and helpers are those of the full-loop tests (tests/api/test_closed_loop_http.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from api import accounts
from engine.queues import ManualJobQueue
from engine.scheduler import Scheduler
from notifications.models import Notification
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import Caller
from tests.api.test_closed_loop_http import login, point_in_first_unit, run_jobs
from tests.api.test_loop_variants import (
    a_unit_elsewhere,
    complete,
    due,
    elements,
    fired_timers,
    give_evidence,
    open_tasks,
    task_of,
    variables,
)
from tests.api.test_loop_variants import file_case as file_alarm
from workflows.deferrals import CaseDeferral
from workflows.people import Person

world = full_loop.world

FRIDAY_2339 = datetime(2026, 10, 16, 15, 39, tzinfo=UTC)  # Friday 16 October 2026, 23:39 China time
HOLIDAY_EVE = datetime(2026, 9, 30, 15, 0, tzinfo=UTC)  # Wednesday 30 September 23:00, National Day next
MIN = timedelta(minutes=1)


def file_case(rt, client, clock, external_id: str, category: str = "air.exceedance") -> tuple[dict, str]:
    _unit, lon, lat = point_in_first_unit(rt)
    key = accounts.create_api_key(rt.db, clock.now(), name=f"feed-{external_id}", roles=["system"])
    case = file_alarm(Caller(client, {"X-API-Key": key}, "system"), clock, external_id, category=category,
                      lon=lon, lat=lat)
    return case, case["processInstanceId"]


def the_assignee(rt, client, clock, task: dict):
    """A login for whoever the task went to (routing decides: the unit's inspector, or the one on duty)."""
    with rt.db.session() as s:
        grid = s.scalar(select(Person.grid_code).where(Person.username == task["assignee"]))
    return login(rt, client, clock, task["assignee"], ["inspector"], grid)


def city(rt, client, clock):
    return login(rt, client, clock, "city-sup", ["supervisor"], "3207")


def take_to_handle(rt, client, clock, sup, iid: str):
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch")
    inspector = the_assignee(rt, client, clock, task_of(sup, iid, "sign_for"))
    complete(inspector, iid, "sign_for")
    return inspector


# -- natural time for urgent work ------------------------------------------------------------------------

def test_an_urgent_alarm_on_friday_night_counts_every_stage_around_the_clock(world, clock):
    rt, client, _fake = world
    clock.set(FRIDAY_2339)
    sup = city(rt, client, clock)
    case, iid = file_case(rt, client, clock, "F-1")
    review = task_of(sup, iid, "review")
    assert due(review) == FRIDAY_2339 + 10 * MIN  # 23:49, not Monday morning

    clock.advance(5 * MIN)
    complete(sup, iid, "review", review_result="valid")
    assert due(task_of(sup, iid, "dispatch")) == clock.now() + 10 * MIN
    clock.advance(3 * MIN)
    complete(sup, iid, "dispatch")
    sign = task_of(sup, iid, "sign_for")
    assert due(sign) == clock.now() + 30 * MIN  # 00:17 on Saturday
    inspector = the_assignee(rt, client, clock, sign)
    clock.advance(10 * MIN)
    complete(inspector, iid, "sign_for")
    assert due(task_of(inspector, iid, "handle")) == clock.now() + timedelta(hours=4)  # 04:27 on Saturday
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["limits"]["handle"] == {"limitMinutes": 240, "clock": "natural"}
    assert detail["limits"]["review"] == {"limitMinutes": 10, "clock": "natural"}


def test_an_urgent_alarm_on_the_eve_of_a_holiday_is_due_that_night(world, clock):
    rt, client, _fake = world
    clock.set(HOLIDAY_EVE)
    sup = city(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "E-1")
    assert due(task_of(sup, iid, "review")) == HOLIDAY_EVE + 10 * MIN
    inspector = take_to_handle(rt, client, clock, sup, iid)
    assert due(task_of(inspector, iid, "handle")) == HOLIDAY_EVE + timedelta(hours=4)  # 1 October, 03:00


# -- working time for ordinary work ----------------------------------------------------------------------

def test_an_ordinary_alarm_late_on_friday_is_reviewed_on_monday_or_on_a_swapped_saturday(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    clock.set(datetime(2026, 10, 16, 9, 20, tzinfo=UTC))  # Friday 16 October, 17:20 China time
    _case, iid = file_case(rt, client, clock, "W-1", category="noise")
    # 30 working minutes: 10 on Friday (to 17:30), the weekend off, 20 on Monday from 08:30
    assert due(task_of(sup, iid, "review")) == datetime(2026, 10, 19, 0, 50, tzinfo=UTC)

    clock.set(datetime(2026, 10, 9, 9, 20, tzinfo=UTC))  # Friday 9 October, 17:20: Saturday 10th is worked (调休)
    _case, iid = file_case(rt, client, clock, "W-2", category="noise")
    assert due(task_of(sup, iid, "review")) == datetime(2026, 10, 10, 0, 50, tzinfo=UTC)


# -- review: reminder, then escalation to the level above, then overdue on /home -------------------------

def test_a_review_nobody_does_is_reminded_then_escalated_and_shown_overdue(world, clock):
    rt, client, _fake = world
    with rt.db.transaction() as s:  # give the staff a phone, so that the notices have a channel
        s.execute(update(Person).values(phone="+8613800000000"))
    unit, _lon, _lat = point_in_first_unit(rt)
    town_sup = login(rt, client, clock, f"sup-{unit[:9]}", ["supervisor"], unit[:9])
    jobs = ManualJobQueue(rt)
    scheduler = Scheduler(rt, jobs, max_sleep=timedelta(days=1))
    t0 = clock.now()
    case, iid = file_case(rt, client, clock, "R-1")
    review = task_of(town_sup, iid, "review")
    assert due(review) == t0 + 10 * MIN

    clock.set(t0 + timedelta(minutes=7, seconds=31))  # 75 % of ten minutes, and a second
    assert scheduler.tick().fired == 1
    clock.set(due(review))
    assert scheduler.tick().fired == 0  # due is not yet overdue
    clock.set(due(review) + timedelta(seconds=1))
    assert scheduler.tick().fired == 1
    assert fired_timers(town_sup, iid) == [["review_reminder"], ["review_overdue"]]
    assert [t["id"] for t in open_tasks(town_sup, iid)] == [review["id"]]  # still there to be done
    run_jobs(rt)
    jobs.run_all()
    with rt.db.session() as s:
        kinds = s.execute(select(Notification.kind, Notification.data).where(Notification.case_id == case["id"])).all()
    assert {k for k, _ in kinds} == {"stage_reminder", "escalation"}
    assert any("甄别" in (data.get("stage") or "") for k, data in kinds if k == "stage_reminder")

    home = town_sup.get("/api/v1/home?tenant=320700").get_json()
    assert [i["task"] for i in home["overdue"]["items"]] == ["review"]
    complete(town_sup, iid, "review", review_result="invalid", invalid_reason="误报")
    stages = town_sup.get(f"/api/v1/cases/{case['id']}").get_json()["stages"]
    assert [s["onTime"] for s in stages if s["task"] == "review"] == [False]
    record = town_sup.get(f"/api/v1/cases/{case['id']}").get_json()["assessment"]
    assert record["reviewedOnTime"] is False and record["counts"]["escalations"] == 1
    assert record["counts"]["reminders"] == 1


def test_a_transfer_from_dispatch_gives_the_new_grid_a_review_deadline_of_its_own(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    case, iid = file_case(rt, client, clock, "T-1")
    complete(sup, iid, "review", review_result="valid")
    there = a_unit_elsewhere(rt, case["grid"])
    clock.advance(4 * MIN)
    complete(sup, iid, "dispatch", dispatch_action="transfer", transfer_grid=there, transfer_reason="企业在邻区")
    review = task_of(sup, iid, "review")
    assert review["candidateScope"] == there and due(review) == clock.now() + 10 * MIN
    assert sup.get(f"/api/v1/cases/{case['id']}").get_json()["grid"] == there


# -- 缓办: requested, approved by the level above, the clock stopped and resumed ---------------------------

def test_a_deferral_stops_the_handling_clock_and_resumes_it_to_the_second(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    case, iid = file_case(rt, client, clock, "D-1")  # urgent: natural time, 4 h to handle
    inspector = take_to_handle(rt, client, clock, sup, iid)
    handle_due = due(task_of(inspector, iid, "handle"))
    assert handle_due == clock.now() + timedelta(hours=4)

    clock.advance(timedelta(hours=1))
    late = (clock.now() - MIN).isoformat()
    r = inspector.post(f"/api/v1/task/{task_of(inspector, iid, 'handle')['id']}/complete", json={"variables": {
        "handle_result": "defer", "defer_reason": "待法院裁定", "defer_until": late}})
    assert r.status_code == 422 and "defer_until" in r.get_json()["error"]["fields"]
    until = clock.now() + timedelta(days=2)
    complete(inspector, iid, "handle", handle_result="defer", defer_reason="待法院裁定", defer_until=until.isoformat())
    approval = task_of(sup, iid, "approve_deferral")
    assert approval["candidateRole"] == "supervisor" and approval["candidateScope"] == case["grid"][:9]
    assert inspector.post(f"/api/v1/task/{approval['id']}/complete",
                          json={"variables": {"deferral_approved": True}}).status_code == 404
    clock.advance(30 * MIN)  # the clock runs while the request waits for approval
    complete(sup, iid, "approve_deferral", deferral_approved=True)
    left = handle_due - clock.now()
    assert left == timedelta(hours=2, minutes=30)

    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert datetime.fromisoformat(detail["deferredUntil"]) == until
    assert [d["endedAt"] for d in detail["deferrals"]] == [None]
    assert detail["deferrals"][0]["requestedBy"] == inspector.name and detail["deferrals"][0]["approvedBy"] == sup.name
    listed = sup.get("/api/v1/cases?tenant=320700&deferred=true").get_json()["items"]
    assert [c["id"] for c in listed] == [case["id"]]
    assert sup.get("/api/v1/cases?tenant=320700&deferred=false").get_json()["items"] == []
    home = sup.get("/api/v1/home?tenant=320700").get_json()
    assert home["deferred"]["count"] == 1 and home["deferred"]["items"][0]["deferredUntil"] == detail["deferredUntil"]
    assert elements(sup, iid) == ["deferred"]

    scheduler = Scheduler(rt, ManualJobQueue(rt), max_sleep=timedelta(days=3))
    clock.set(until + timedelta(hours=6))  # the scheduler was down: it fires late, the clock resumes now
    assert scheduler.tick().fired == 1
    handle = task_of(inspector, iid, "handle")
    assert due(handle) == clock.now() + left
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["deferredUntil"] is None and detail["deferrals"][0]["endedHow"] == "date"

    _unit, lon, lat = point_in_first_unit(rt)
    give_evidence(inspector, handle["id"], lon, lat)
    complete(inspector, iid, "handle", handle_result="done", finding_kind="rectified")
    complete(sup, iid, "verify", verified=True)
    record = sup.get(f"/api/v1/cases/{case['id']}").get_json()["assessment"]
    assert record["handledOnTime"] is True
    assert record["counts"]["deferrals"] == 1
    assert record["counts"]["deferredSeconds"] == round((clock.now() - (handle_due - left)).total_seconds())


def test_a_refused_deferral_leaves_the_deadline_and_a_released_one_resumes_in_working_time(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    case, iid = file_case(rt, client, clock, "D-2", category="noise")  # working time, 16 h to handle
    inspector = take_to_handle(rt, client, clock, sup, iid)
    handle = task_of(inspector, iid, "handle")
    assert due(handle) == datetime(2026, 10, 8, 2, 0, tzinfo=UTC)  # Tue 09:00 + 16 working hours

    until = datetime(2026, 10, 30, 0, 0, tzinfo=UTC)
    complete(inspector, iid, "handle", handle_result="defer", defer_reason="季节性停产", defer_until=until.isoformat())
    complete(sup, iid, "approve_deferral", deferral_approved=False, deferral_note="不符合缓办条件")
    again = task_of(inspector, iid, "handle")
    assert again["id"] != handle["id"] and due(again) == due(handle)
    assert sup.get(f"/api/v1/cases/{case['id']}").get_json()["deferrals"] == []

    clock.set(datetime(2026, 9, 29, 2, 0, tzinfo=UTC))  # Tuesday 10:00: 15 working hours left
    complete(inspector, iid, "handle", handle_result="defer", defer_reason="季节性停产", defer_until=until.isoformat())
    complete(sup, iid, "approve_deferral", deferral_approved=True)
    assert sup.get(f"/api/v1/cases/{case['id']}").get_json()["deferrals"][0]["remainingSeconds"] == 15 * 3600
    clock.set(datetime(2026, 9, 30, 1, 0, tzinfo=UTC))  # released on Wednesday 09:00
    held = task_of(sup, iid, "deferred")
    assert held["candidateRole"] == "supervisor" and held["assignee"] is None
    assert inspector.post(f"/api/v1/task/{held['id']}/complete", json={"variables": {}}).status_code == 404
    complete(sup, iid, "deferred", release_note="企业提前复产")  # the grid's supervisor releases it
    # 15 working hours from Wednesday 09:00: 7 on Wednesday, National Day, 7.5 on Thursday 8 October,
    # the last half hour on Friday 9 October: 08:30–09:00
    assert due(task_of(inspector, iid, "handle")) == datetime(2026, 10, 9, 1, 0, tzinfo=UTC)
    deferral = sup.get(f"/api/v1/cases/{case['id']}").get_json()["deferrals"][0]
    assert deferral["endedHow"] == "released"
    with rt.db.session() as s:
        assert s.scalar(select(CaseDeferral.ended_at).where(CaseDeferral.case_id == case["id"])) == clock.now()


def test_a_deferral_asked_from_the_case_by_a_supervisor_on_the_inspectors_behalf(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    case, iid = file_case(rt, client, clock, "D-3")
    until = (clock.now() + timedelta(days=3)).isoformat()
    ask = {"reason": "待监测报告", "until": until}
    assert sup.post(f"/api/v1/cases/{case['id']}/deferral", json=ask).status_code == 409  # still in review
    inspector = take_to_handle(rt, client, clock, sup, iid)
    other = login(rt, client, clock, "insp-stranger", ["inspector"], case["grid"])
    assert other.post(f"/api/v1/cases/{case['id']}/deferral", json=ask).status_code == 403  # not theirs
    r = sup.post(f"/api/v1/cases/{case['id']}/deferral", json={**ask, "until": clock.now().isoformat()})
    assert r.status_code == 422 and list(r.get_json()["error"]["fields"]) == ["until"]
    r = sup.post(f"/api/v1/cases/{case['id']}/deferral", json={"until": until})
    assert r.status_code == 422 and list(r.get_json()["error"]["fields"]) == ["reason"]
    r = sup.post(f"/api/v1/cases/{case['id']}/deferral", json=ask)
    assert r.status_code == 201 and r.get_json()["completedBy"] == sup.name
    assert sup.post(f"/api/v1/cases/{case['id']}/deferral", json=ask).status_code == 409  # asked already
    assert elements(sup, iid) == ["approve_deferral"] and open_tasks(inspector, iid) == []
    assert variables(sup, iid)["defer_reason"] == "待监测报告"
    r = sup.post(f"/api/v1/task/{task_of(sup, iid, 'approve_deferral')['id']}/complete",
                 json={"variables": {"deferral_approved": True}})
    assert r.status_code == 422 and "cannot approve it too" in r.get_json()["error"]["message"], r.get_json()
    assert elements(sup, iid) == ["approve_deferral"]  # nothing changed
    town = login(rt, client, clock, "town-sup", ["supervisor"], case["grid"][:9])
    complete(town, iid, "approve_deferral", deferral_approved=True)
    assert sup.get(f"/api/v1/cases/{case['id']}").get_json()["deferrals"][0]["approvedBy"] == "town-sup"


def test_a_case_cancelled_while_deferred_ends_its_deferral_and_counts_the_time(world, clock):
    rt, client, _fake = world
    sup = city(rt, client, clock)
    admin = login(rt, client, clock, "admin", ["admin"], "3207")
    case, iid = file_case(rt, client, clock, "D-4")
    inspector = take_to_handle(rt, client, clock, sup, iid)
    complete(inspector, iid, "handle", handle_result="defer", defer_reason="待鉴定",
             defer_until=(clock.now() + timedelta(days=5)).isoformat())
    complete(sup, iid, "approve_deferral", deferral_approved=True)
    clock.advance(timedelta(hours=3))
    assert admin.post(f"/api/v1/process-instance/{iid}/cancel", json={"reason": "重复立案"}).status_code == 200
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["status"] == "closed" and detail["deferredUntil"] is None
    assert detail["deferrals"][0]["endedHow"] == "closed"
    assert detail["assessment"]["counts"]["deferredSeconds"] == 3 * 3600


# -- time rules per category, effective from a date ------------------------------------------------------

def test_time_rules_change_later_cases_never_running_ones(world, clock):
    rt, client, _fake = world
    admin = login(rt, client, clock, "admin", ["admin"], "3207")
    sup = city(rt, client, clock)
    _case, running = file_case(rt, client, clock, "N-1", category="noise")
    assert due(task_of(sup, running, "review")) == clock.now() + 30 * MIN  # 09:00 + 30 working minutes

    body = {"stages": {"review": {"limitMinutes": 15, "clock": "natural"},
                       "handle": {"limitMinutes": 480, "clock": "natural"}}}
    assert sup.put("/api/v1/categories/noise/time-rules", json=body).status_code == 403
    past = {**body, "effectiveFrom": (clock.now() - MIN).isoformat()}
    r = admin.put("/api/v1/categories/noise/time-rules", json=past)
    assert r.status_code == 422 and "effectiveFrom" in r.get_json()["error"]["fields"]
    r = admin.put("/api/v1/categories/noise/time-rules", json={"stages": {"reveiw": {"limitMinutes": 5,
                                                                                      "clock": "natural"}}})
    assert r.status_code == 422 and "reveiw" in str(r.get_json()["error"]["fields"])
    r = admin.put("/api/v1/categories/noise/time-rules", json={"stages": {"review": {"limitMinutes": 0,
                                                                                      "clock": "sundial"}}})
    problems = str(r.get_json()["error"]["fields"])
    assert r.status_code == 422 and "limitMinutes" in problems and "clock" in problems
    assert admin.put("/api/v1/categories/nothing/time-rules", json=body).status_code == 404
    later = clock.now() + timedelta(hours=1)
    r = admin.put("/api/v1/categories/noise/time-rules", json={**body, "effectiveFrom": later.isoformat()})
    assert r.status_code == 200, r.get_json()
    rules = r.get_json()
    assert rules["current"]["review"] == {"limitMinutes": 30, "clock": "working"}  # not yet in force
    assert rules["sets"][0]["stages"]["handle"] == {"limitMinutes": 480, "clock": "natural"}

    _case, before = file_case(rt, client, clock, "N-2", category="noise")
    assert due(task_of(sup, before, "review")) == clock.now() + 30 * MIN
    clock.set(later)
    _case, after = file_case(rt, client, clock, "N-3", category="noise")
    assert due(task_of(sup, after, "review")) == later + 15 * MIN
    listed = {c["code"]: c for c in sup.get("/api/v1/categories?tenant=320700").get_json()}
    assert listed["noise"]["limits"]["review"] == {"limitMinutes": 15, "clock": "natural"}
    assert listed["noise"]["limits"]["sign_for"] == {"limitMinutes": 120, "clock": "working"}  # the default stays
    # the running case keeps the limits it was filed under
    assert due(task_of(sup, running, "review")) == datetime(2026, 9, 29, 1, 30, tzinfo=UTC)
    complete(sup, before, "review", review_result="valid")
    assert due(task_of(sup, before, "dispatch")) == clock.now() + 30 * MIN  # working time, as filed
