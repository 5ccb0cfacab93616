"""Migration and suspension over REST, as an administrator does it: plan between two versions, a
refused plan naming the element (nothing changes), the move of a batch, the instance list filtered by
version; suspend and activate an instance, a supervisor refused, completion answering 409."""

from __future__ import annotations

from datetime import timedelta

from engine import instances, timers
from tests.engine import migration_models as mm

XML = {"Content-Type": "application/xml"}


def _deploy(users, xml: str) -> int:
    r = users["admin"].post("/api/v1/process-definition", data=xml, headers=XML)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_an_administrator_plans_and_moves_instances_and_lists_them_by_version(rt, users):
    v1 = _deploy(users, mm.model())
    ids = mm.start_many(rt, v1, 3)
    v2 = _deploy(users, mm.model(review="review2", extra=True))
    rt.registry.register("mig.noop", lambda params, ctx: {})
    unsafe = _deploy(users, mm.model(review_kind="service"))
    deadlines = {i: instances.get(rt, i).next_wakeup_at for i in ids}

    r = users["admin"].get(f"/api/v1/migration/plan?sourceDefinitionId={v1}&targetDefinitionId={v2}")
    assert r.status_code == 200
    plan = r.get_json()
    assert plan["valid"] is False and plan["problems"]["review"][0].startswith("it has no target")
    body = {"sourceDefinitionId": v1, "targetDefinitionId": v2, "mapping": {"review": "review2"}}
    plan = users["admin"].post("/api/v1/migration/plan", json=body).get_json()
    assert plan["valid"] is True and plan["sourceVersion"] == 1 and plan["targetVersion"] == 2
    review = next(e for e in plan["elements"] if e["sourceElementId"] == "review")
    assert review == {"sourceElementId": "review", "targetElementId": "review2", "type": "userTask",
                      "targetType": "userTask", "waiting": 3, "problems": [], "notes": []}

    before = users["admin"].get(f"/api/v1/process-instance?definitionId={v1}").get_json()
    r = users["admin"].post("/api/v1/migration/execute", json={"sourceDefinitionId": v1, "targetDefinitionId": unsafe})
    assert r.status_code == 422
    assert "its type changes (userTask → serviceTask)" in r.get_json()["error"]["fields"]["review"]
    assert users["admin"].get(f"/api/v1/process-instance?definitionId={v1}").get_json() == before
    assert users["sup"].post("/api/v1/migration/execute", json=body).status_code == 403
    r = users["admin"].post("/api/v1/migration/execute", json={**body, "limit": 0})
    assert r.status_code == 422 and "limit" in r.get_json()["error"]["fields"]

    r = users["admin"].post("/api/v1/migration/execute", json={**body, "businessKeys": ["B-0", "B-2"]})
    assert r.status_code == 200, r.get_json()
    done = r.get_json()
    assert sorted(done["migrated"]) == sorted([ids[0], ids[2]]) and done["failed"] == [] and done["remaining"] == 0
    listed = users["admin"].get(f"/api/v1/process-instance?key={mm.KEY}&version=2").get_json()
    assert sorted(i["id"] for i in listed["items"]) == sorted([ids[0], ids[2]])
    assert {i["nextWakeupAt"] for i in listed["items"]} == {deadlines[ids[0]].isoformat(),
                                                          deadlines[ids[2]].isoformat()}
    assert users["admin"].get("/api/v1/process-instance?version=2").status_code == 422  # a version needs its key
    history = users["admin"].get(f"/api/v1/process-instance/{ids[0]}/history").get_json()
    moved = [e for e in history if e["action"] == "instance.migrated"]
    assert moved[0]["actor"] == "admin" and moved[0]["details"]["after"]["version"] == 2


def test_a_suspended_instance_answers_409_to_completion_and_its_timer_waits_until_activation(rt, users):
    v1 = _deploy(users, mm.model())
    (iid,) = mm.start_many(rt, v1, 1)
    task = instances.open_tasks(rt, iid)[0]
    assert users["sup"].post(f"/api/v1/process-instance/{iid}/suspend", json={"reason": "x"}).status_code == 403
    r = users["admin"].post(f"/api/v1/process-instance/{iid}/suspend", json={})
    assert r.status_code == 422 and "reason" in r.get_json()["error"]["fields"]
    r = users["admin"].post(f"/api/v1/process-instance/{iid}/suspend", json={"reason": "site closed"})
    assert r.status_code == 200 and r.get_json()["suspended"] is True
    assert users["admin"].post(f"/api/v1/process-instance/{iid}/suspend", json={"reason": "again"}).status_code == 409
    r = users["admin"].post(f"/api/v1/task/{task.id}/complete", json={"variables": {}})
    assert r.status_code == 409 and "suspended" in r.get_json()["error"]["message"]
    rt.clock.advance(timedelta(hours=5))
    assert timers.fire_due(rt) == 0
    listed = users["admin"].get("/api/v1/process-instance?suspended=true").get_json()
    assert [i["id"] for i in listed["items"]] == [iid]
    r = users["admin"].post(f"/api/v1/process-instance/{iid}/activate", json={"reason": "reopened"})
    assert r.status_code == 200 and r.get_json()["suspended"] is False
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["esc"]  # the overdue timer fired
    history = [e["action"] for e in users["admin"].get(f"/api/v1/process-instance/{iid}/history").get_json()]
    assert history[-3:] == ["instance.suspended", "instance.activated", "timer.fired"]
