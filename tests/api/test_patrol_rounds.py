"""Patrol (网格巡查) over HTTP on a controlled clock, PostgreSQL and SQLite: the daily round opens each
slot's visits once with two schedulers; a check-in counts only near the target; coverage and 漏报
hand-computed; plans refused by field; roles.

30 September 2026 is a Wednesday; every-two-days slots count from 2026-01-01, so 30 Sep – 1 Oct is one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from api import accounts
from engine import definitions, start_timers
from engine.queues import ManualJobQueue
from engine.scheduler import Scheduler
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import Caller
from tests.api.images import JPEG
from tests.api.test_closed_loop_http import login, point_in_first_unit
from tests.api.test_loop_variants import file_case
from tests.engine.support import other_process, run_together
from workflows.install import install
from workflows.patrol_rounds import PatrolTask
from workflows.people import Person
from workflows.working_time import CalendarService

world = full_loop.world
BPMN = full_loop.MODEL.parent
MIDNIGHT_SEP30 = datetime(2026, 9, 29, 16, 0, tzinfo=UTC)  # 30 Sep 00:00 China time
SEC = timedelta(seconds=1)


def setup_patrol(rt, client, clock, plans=None):
    for name in ("patrol_visit.bpmn", "patrol_round.bpmn"):
        definitions.deploy(rt, (BPMN / name).read_bytes(), "admin")
    admin = login(rt, client, clock, "padmin", ["admin"], None)
    unit, lon, lat = point_in_first_unit(rt)
    if plans is not None:
        r = admin.put("/api/v1/patrol/plans", json={"tenant": "320700", "plans": plans})
        assert r.status_code == 200, r.get_json()
    r = admin.post("/api/v1/patrol/targets", json={"tenant": "320700", "code": "E-1", "name": "某化工厂",
                                                    "targetClass": "key", "lon": lon, "lat": lat})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["grid"] == unit
    return admin, r.get_json()


UNIT_ONLY = [{"gridLevel": "unit", "targetClass": "key", "cadence": "every_2_days"}]


def visits(rt):
    with rt.db.session() as s:
        return list(s.scalars(select(PatrolTask).order_by(PatrolTask.slot_start, PatrolTask.grid_level)))


def inspector_of(rt, client, clock, task: PatrolTask) -> Caller:
    with rt.db.session() as s:
        grid = s.scalar(select(Person.grid_code).where(Person.username == task.inspector))
    return login(rt, client, clock, task.inspector, ["inspector"], grid)


def the_visit_task(caller: Caller, task: PatrolTask) -> dict:
    r = caller.get(f"/api/v1/task?processInstanceId={task.instance_id}")
    (ht,) = r.get_json()["items"]
    return ht


def test_the_default_plans_open_each_slot_once_with_two_schedulers(world, clock):
    rt, client, _ = world
    setup_patrol(rt, client, clock)
    clock.set(MIDNIGHT_SEP30 + SEC)
    with other_process(rt) as other:
        install(other, calendar=CalendarService(other.db).calendar)
        a, b = Scheduler(rt, ManualJobQueue(rt)), Scheduler(other, ManualJobQueue(other))
        results = run_together([a.tick, b.tick])
        assert [k for k, _ in results] == ["ok", "ok"], results
        assert sorted(r.started for _, r in results) == [0, 1]
    # a key target: the district weekly, the town twice weekly and at night monthly, the unit every 2 days
    assert sorted((v.grid_level, v.cadence, v.night) for v in visits(rt)) == [
        ("district", "week", False), ("town", "month", True), ("town", "week", False),
        ("unit", "every_2_days", False)]
    assert start_timers.fire_due(rt)[0] == 0  # the same day again: nothing
    clock.set(MIDNIGHT_SEP30 + timedelta(days=1) + SEC)  # Thursday 1 October: a new half-week and month
    assert start_timers.fire_due(rt)[0] == 1
    new = [v for v in visits(rt) if v.slot_start >= MIDNIGHT_SEP30 + timedelta(days=1)]
    assert sorted((v.grid_level, v.cadence, v.night) for v in new) == [("town", "month", True),
                                                                        ("town", "week", False)]
    assert len(visits(rt)) == 6


def test_a_visit_checked_in_at_the_target_is_on_time_and_covered(world, clock):
    rt, client, _ = world
    admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    assert start_timers.fire_due(rt)[0] == 1
    (task,) = visits(rt)
    assert task.slot_end == MIDNIGHT_SEP30 + timedelta(days=2) and task.inspector
    me = inspector_of(rt, client, clock, task)
    ht = the_visit_task(me, task)
    assert ht["assignee"] == task.inspector and ht["taskDefinitionKey"] == "visit"
    clock.advance(timedelta(hours=10))
    r = me.post(f"/api/v1/task/{ht['id']}/complete", json={"variables": {"finding": "none"}})
    assert r.status_code == 422 and "check-in" in str(r.get_json())
    far = me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"] + 0.002, "lat": target["lat"]})
    assert far.status_code == 422 and "lon" in far.get_json()["error"]["fields"]  # ~190 m away
    near = me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"] + 0.0003, "lat": target["lat"]})
    assert near.status_code == 201, near.get_json()
    r = me.post(f"/api/v1/task/{ht['id']}/complete", json={"variables": {"finding": "none", "note": "正常"}})
    assert r.status_code == 200, r.get_json()
    (task,) = visits(rt)
    assert (task.status, task.on_time, task.visited_at) == ("visited", True, clock.now())
    # October: the visit due 2 Oct 00:00 (China) counts there; the next slot (2–3 Oct) is not open yet
    cov = admin.get("/api/v1/patrol/coverage?tenant=320700&period=2026-10").get_json()
    assert cov["rows"] == [{"inspector": task.inspector, "grid": task.grid_code, "due": 1, "onTime": 1, "late": 0,
                            "missed": 0, "open": 0, "overdue": 0, "coverageRate": 100.0}]
    mine = me.get("/api/v1/patrol/coverage?tenant=320700&period=2026-10").get_json()["rows"]
    assert [r["inspector"] for r in mine] == [task.inspector]


def test_an_unvisited_slot_is_late_then_missed(world, clock):
    rt, client, _ = world
    admin, _target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (first,) = visits(rt)
    clock.set(first.close_at + SEC)  # 2 days of grace after the slot's end
    Scheduler(rt, ManualJobQueue(rt)).tick()
    statuses = {v.slot_start: v.status for v in visits(rt)}
    assert statuses[first.slot_start] == "missed"
    cov = admin.get("/api/v1/patrol/coverage?tenant=320700&period=2026-10").get_json()["rows"]
    mine = [r for r in cov if r["grid"] == first.grid_code and r["inspector"] == first.inspector]
    assert mine[0]["due"] >= 1 and mine[0]["missed"] == 1 and mine[0]["onTime"] == 0


def test_a_citizen_case_at_the_target_is_missed_unless_the_inspector_reported_first(world, clock):
    rt, client, _ = world
    admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (task,) = visits(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="feed",
                                                                   roles=["system"])}, "system")
    clock.advance(timedelta(hours=2))
    other = file_case(system, clock, "M-1", lon=target["lon"] + 0.001, lat=target["lat"])  # ~95 m away
    clock.advance(timedelta(hours=1))
    file_case(system, clock, "M-far", lon=target["lon"] + 0.01, lat=target["lat"])  # ~950 m: not at the target
    misses = admin.get("/api/v1/patrol/misses?tenant=320700&period=2026-09").get_json()["items"]
    assert misses == [{"caseId": other["id"], "inspectors": [task.inspector]}]
    with rt.db.session() as s:  # the inspector's own report of the place, earlier in the slot, clears it
        from workflows.cases import Case
        case = s.get(Case, other["id"])
        s.add(Case(**{**{c.key: getattr(case, c.key) for c in Case.__table__.c}, "id": "PATROL-1",
                      "source": "patrol", "external_id": "P-1", "details": {"reporter": task.inspector},
                      "created_at": case.created_at - timedelta(minutes=30), "instance_id": None}))
        s.commit()
    assert admin.get("/api/v1/patrol/misses?tenant=320700&period=2026-09").get_json()["items"] == []


def test_bad_plans_are_refused_by_field_and_roles_are_kept(world, clock):
    rt, client, _ = world
    admin, _t = setup_patrol(rt, client, clock)
    bad = admin.put("/api/v1/patrol/plans", json={"tenant": "320700", "plans": [
        {"gridLevel": "unit", "targetClass": "key", "cadence": "fortnightly"},
        {"gridLevel": "town", "targetClass": "key", "cadence": "every_2_days", "times": 3},
        {"gridLevel": "city", "targetClass": "key", "cadence": "week"}]})
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["fields"]["plans"]
    assert set(fields) == {"0", "1", "2"} and "cadence" in fields["0"] and "times" in fields["1"] \
        and "gridLevel" in fields["2"]
    dup = admin.put("/api/v1/patrol/plans", json={"tenant": "320700", "plans": UNIT_ONLY * 2})
    assert dup.status_code == 422 and "1" in dup.get_json()["error"]["fields"]["plans"]
    got = admin.get("/api/v1/patrol/plans?tenant=320700").get_json()
    assert got["defaults"] is True and len(got["plans"]) == 9  # nothing stored
    ok = admin.put("/api/v1/patrol/plans", json={"tenant": "320700", "plans": UNIT_ONLY})
    assert ok.status_code == 200 and ok.get_json()["defaults"] is False
    with rt.db.session() as s:
        from engine.models import AuditEvent
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "patrol.plans_replaced")).all()
    assert event.actor == "padmin" and event.details["plans"][0]["cadence"] == "every_2_days"
    sup = login(rt, client, clock, "psup", ["supervisor"], "3207")
    assert sup.get("/api/v1/patrol/plans?tenant=320700").status_code == 200
    assert sup.put("/api/v1/patrol/plans", json={"tenant": "320700", "plans": []}).status_code == 403
    unit, lon, lat = point_in_first_unit(rt)
    insp = login(rt, client, clock, "pinsp", ["inspector"], unit)
    assert insp.get("/api/v1/patrol/plans?tenant=320700").status_code == 403
    assert insp.post("/api/v1/patrol/targets", json={"tenant": "320700", "code": "X", "name": "x",
                                                     "targetClass": "key", "lon": lon, "lat": lat}).status_code == 403
    dup_target = admin.post("/api/v1/patrol/targets", json={"tenant": "320700", "code": "E-1", "name": "x",
                                                             "targetClass": "key", "lon": lon, "lat": lat})
    assert dup_target.status_code == 409
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(PatrolTask)) == 0


def test_a_problem_found_on_a_visit_is_filed_through_the_patrol_intake_and_linked(world, clock):
    from tests.api.test_patrol_reports import multipart
    from workflows.patrol_rounds import PatrolFinding

    rt, client, _ = world
    _admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (task,) = visits(rt)
    me = inspector_of(rt, client, clock, task)
    ht = the_visit_task(me, task)
    clock.advance(timedelta(hours=9))
    assert me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"], "lat": target["lat"]}
                   ).status_code == 201
    early = me.post(f"/api/v1/task/{ht['id']}/complete", json={"variables": {"finding": "problem"}})
    assert early.status_code == 422 and "filed" in str(early.get_json())  # nothing filed yet

    def finding(caller, patrol_task_id):
        body, ctype = multipart({"tenant": "320700", "category": "solid_waste", "lon": str(target["lon"]),
                                 "lat": str(target["lat"]), "description": "厂区外堆放危废"},
                                [(JPEG, "image/jpeg")])
        return caller.post(f"/api/v1/patrol/tasks/{patrol_task_id}/findings", data=body, content_type=ctype)

    sup = login(rt, client, clock, "psup2", ["supervisor"], "3207")
    assert finding(sup, task.id).status_code == 403  # inspectors report from patrol
    assert finding(me, "0" * 32).status_code == 404
    r = finding(me, task.id)
    assert r.status_code == 201, r.get_json()
    case = r.get_json()
    assert (case["source"], case["outcome"], case["patrolTaskId"]) == ("patrol", "filed", task.id)
    done = me.post(f"/api/v1/task/{ht['id']}/complete", json={"variables": {"finding": "problem"}})
    assert done.status_code == 200, done.get_json()
    with rt.db.session() as s:
        links = s.scalars(select(PatrolFinding)).all()
    assert [(f.patrol_task_id, f.case_id) for f in links] == [(task.id, case["id"])]
    (task,) = visits(rt)
    assert (task.status, task.finding) == ("visited", "problem")
    assert finding(me, task.id).status_code == 422  # the visit is over


def test_a_night_check_is_checked_in_at_night_only(world, clock):
    rt, client, _ = world
    _admin, target = setup_patrol(rt, client, clock, [{"gridLevel": "unit", "targetClass": "key",
                                                       "cadence": "month", "night": True}])
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (task,) = visits(rt)
    assert task.night and task.slot_end == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)  # September's end
    me = inspector_of(rt, client, clock, task)
    ht = the_visit_task(me, task)
    clock.set(datetime(2026, 9, 30, 4, 0, tzinfo=UTC))  # 12:00 China time
    day = me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"], "lat": target["lat"]})
    assert day.status_code == 422 and "task" in day.get_json()["error"]["fields"]
    clock.set(datetime(2026, 9, 30, 13, 0, tzinfo=UTC))  # 21:00
    assert me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"], "lat": target["lat"]}
                   ).status_code == 201
    assert me.post(f"/api/v1/task/{ht['id']}/complete", json={"variables": {"finding": "none"}}).status_code == 200
    (task,) = visits(rt)
    assert (task.status, task.on_time) == ("visited", True)


def test_a_valid_case_missed_on_patrol_counts_in_the_inspectors_missed_rate(world, clock):
    from tests.api.test_loop_variants import complete

    rt, client, _ = world
    admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (task,) = visits(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="feed2",
                                                                   roles=["system"])}, "system")
    clock.advance(timedelta(hours=3))
    case = file_case(system, clock, "M-2", lon=target["lon"], lat=target["lat"])
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    url = "/api/v1/assessment/indicators?tenant=320700&period=2026-09&by=post:inspector"

    def row_of(who):
        groups = admin.get(url).get_json()["groups"]
        return next((g for g in groups if g["key"]["post:inspector"] == who), None)

    assert row_of(task.inspector) is None  # not yet 立案: it is still in review
    clock.advance(timedelta(minutes=5))
    complete(sup, case["processInstanceId"], "review", review_result="valid")
    row = row_of(task.inspector)
    assert row["counts"]["missed"] == 1 and row["counts"]["valid_reports"] == 0
    assert row["rates"]["missed_rate"] == 100.0 and row["components"]["not_missed_rate"] == 0.0


def test_a_problem_reported_at_the_target_from_the_phone_page_completes_the_visit(world, clock):
    from tests.api.test_patrol_reports import report

    rt, client, _ = world
    _admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    (task,) = visits(rt)
    me = inspector_of(rt, client, clock, task)
    ht = the_visit_task(me, task)
    clock.advance(timedelta(hours=9))
    me.post(f"/api/v1/task/{ht['id']}/checkin", json={"lon": target["lon"], "lat": target["lat"]})
    far = report(me, target["lon"] + 0.0045, target["lat"])  # ~430 m away, still in the unit: not at the target
    assert far.status_code == 201, far.get_json()
    assert me.post(f"/api/v1/task/{ht['id']}/complete",
                   json={"variables": {"finding": "problem"}}).status_code == 422
    assert report(me, target["lon"], target["lat"], category="air.exceedance").status_code == 201
    assert me.post(f"/api/v1/task/{ht['id']}/complete",
                   json={"variables": {"finding": "problem"}}).status_code == 200


def test_targets_import_all_or_nothing_and_move_with_their_point(world, clock):
    rt, client, _ = world
    admin, target = setup_patrol(rt, client, clock, UNIT_ONLY)
    item = {"code": "E-2", "name": "某印染厂", "targetClass": "complained", "lon": target["lon"], "lat": target["lat"]}
    bad = admin.post("/api/v1/patrol/targets/import", json={"tenant": "320700", "items": [
        item, {**item, "code": "E-3", "lon": 100.0, "lat": 20.0}, {**item, "code": "E-1"}]})
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["fields"]
    assert "items.1.lon" in fields and "items.2.code" in fields
    listed = admin.get("/api/v1/patrol/targets?tenant=320700").get_json()
    assert listed["total"] == 1  # nothing imported
    ok = admin.post("/api/v1/patrol/targets/import", json={"tenant": "320700", "items": [item]})
    assert ok.status_code == 201 and [t["code"] for t in ok.get_json()] == ["E-2"]
    moved = admin._call("patch", f"/api/v1/patrol/targets/{target['id']}", json={"lon": 100.0, "lat": 20.0})
    assert moved.status_code == 422 and "lon" in moved.get_json()["error"]["fields"]
    off = admin._call("patch", f"/api/v1/patrol/targets/{target['id']}", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    clock.set(MIDNIGHT_SEP30 + SEC)
    start_timers.fire_due(rt)
    assert [v.target_id for v in visits(rt)] == []  # E-1 inactive; E-2 complained: no plan for it here


def test_the_demo_city_gets_targets_and_every_visit_of_its_first_round_an_inspector(world, clock):
    from workflows.demo_patrol import seed_demo_targets
    from workflows.grids import Grid

    rt, _client, _ = world
    for name in ("patrol_visit.bpmn", "patrol_round.bpmn"):
        definitions.deploy(rt, (BPMN / name).read_bytes(), "admin")
    with rt.db.session() as s:
        towns = s.scalar(select(func.count(func.distinct(Grid.parent_code))).where(Grid.level == "unit"))
    added = seed_demo_targets(rt, "320700")
    assert towns <= added <= 2 * towns
    assert seed_demo_targets(rt, "320700") == 0  # idempotent
    clock.set(MIDNIGHT_SEP30 + SEC)
    assert start_timers.fire_due(rt)[0] == 1
    opened = visits(rt)
    complained = added - towns  # a key enterprise in every town, a complained-about place where it has 2 units
    # by the default plans a key target is visited by the district, the town (and at night) and the unit,
    # a complained-about place by the district, the town and the unit
    assert len(opened) == 4 * towns + 3 * complained
    assert all(v.inspector for v in opened)  # at night: the district's duty inspector, else the grid's own
