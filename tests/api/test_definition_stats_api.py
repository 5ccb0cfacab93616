"""What the models page shows about each version: its instances counted by status (suspended, open
tasks, open incidents too), and per element the heat map (how often reached, how long its user tasks
took, where it failed) — each only over the instances the caller's grid scope sees."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import instances, suspension, timers
from tests.engine.builders import boundary_timer, end, process, seq, service, start, user
from tests.engine.support import complete, relay_and_run

KEY = "stats_test"


def _model(name: str) -> str:
    """start → handle (a supervisor's user task in 3207) → push (async, fails for n == 1) → end."""
    return process(KEY, start(), user("handle", "处置 Handle", candidateScope="'3207'"),
                   service("push", "stats.push", result="out", n="n"), end(), seq("start", "handle", "push", "end"),
                   lanes={"supervisor": ["handle"]}, name=name)


def _push(params, _call):
    if params["n"] == 1:
        raise RuntimeError("enforcement system down")
    return {"ok": True}


def _deploy(users, xml: str) -> int:
    r = users["admin"].post("/api/v1/process-definition", data=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _start(rt, n: int, scope: str, key: str = KEY) -> str:
    return instances.start(rt, actor="admin", key=key, scope=scope, variables={"n": n}).instance.id


@pytest.fixture
def versions(rt, clock, users):
    """v1: a completed after 10 min, b failed at push after 30 min (open incident), c cancelled, d in
    another grid suspended while waiting; v2: one waiting."""
    rt.registry.register("stats.push", _push, is_async=True, max_attempts=1)
    v1 = _deploy(users, _model("v1"))
    a, b, c = (_start(rt, n, "3207001") for n in (2, 1, 3))
    d = _start(rt, 4, "3203002")
    clock.advance(timedelta(minutes=10))
    complete(rt, a, "handle")
    clock.advance(timedelta(minutes=20))
    complete(rt, b, "handle")
    relay_and_run(rt)
    instances.cancel(rt, c, "admin", "a duplicate")
    suspension.suspend(rt, d, "admin", "wrong grid, looking into it")
    v2 = _deploy(users, _model("v2"))
    _start(rt, 5, "3207001")
    return v1, v2


def _by_version(rows: list[dict]) -> dict[int, dict]:
    return {r["version"]: r for r in rows}


def test_statistics_count_each_versions_instances_by_status(users, versions):
    v1, v2 = versions
    r = users["admin"].get(f"/api/v1/process-definition/statistics?key={KEY}")
    assert r.status_code == 200
    rows = _by_version(r.get_json())
    assert rows[1] == {"definitionId": v1, "key": KEY, "version": 1, "total": 4,
                       "counts": {"running": 2, "completed": 1, "cancelled": 1},
                       "suspended": 1, "openTasks": 1, "openIncidents": 1}
    assert rows[2] == {"definitionId": v2, "key": KEY, "version": 2, "total": 1,
                       "counts": {"running": 1, "completed": 0, "cancelled": 0},
                       "suspended": 0, "openTasks": 1, "openIncidents": 0}
    one = users["leader"].get(f"/api/v1/process-definition/{v1}/statistics")
    assert one.status_code == 200 and one.get_json() == rows[1]


def test_a_supervisor_counts_only_the_instances_of_their_grid(users, versions):
    v1, _ = versions
    row = users["sup"].get(f"/api/v1/process-definition/{v1}/statistics").get_json()
    # d (grid 3203, suspended, its task open) is not theirs
    assert (row["total"], row["counts"]["running"], row["suspended"], row["openTasks"], row["openIncidents"]) == (
        3, 1, 0, 0, 1)


def test_a_version_without_instances_counts_zeros_and_other_keys_are_left_out(users, rt):
    other = _deploy(users, process("quiet", start(), end(), seq("start", "end")))
    rows = users["admin"].get("/api/v1/process-definition/statistics?key=quiet").get_json()
    assert rows == [{"definitionId": other, "key": "quiet", "version": 1, "total": 0,
                     "counts": {"running": 0, "completed": 0, "cancelled": 0},
                     "suspended": 0, "openTasks": 0, "openIncidents": 0}]


def test_the_heatmap_tells_per_element_time_spent_and_failures(users, versions):
    v1, _ = versions
    r = users["admin"].get(f"/api/v1/process-definition/{v1}/heatmap")
    assert r.status_code == 200
    body = r.get_json()
    assert body["definitionId"] == v1 and body["instances"] == 4
    elements = {e["elementId"]: e for e in body["elements"]}
    # four task rows: a and b completed (10 and 30 minutes), c cancelled, d waiting
    assert elements["handle"] == {"elementId": "handle", "entered": 4, "completed": 2, "waiting": 1,
                                  "meanSeconds": 1200.0, "p90Seconds": 1800.0, "incidents": 0, "openIncidents": 0}
    # push: passed once (a), failed once (b, still open)
    assert elements["push"] == {"elementId": "push", "entered": 1, "completed": 1, "waiting": 0,
                                "meanSeconds": None, "p90Seconds": None, "incidents": 1, "openIncidents": 1}


def test_the_heatmap_of_a_supervisor_leaves_other_grids_out(users, versions):
    v1, _ = versions
    body = users["sup"].get(f"/api/v1/process-definition/{v1}/heatmap").get_json()
    handle = {e["elementId"]: e for e in body["elements"]}["handle"]
    assert body["instances"] == 3 and (handle["entered"], handle["waiting"]) == (3, 0)


def test_the_heatmap_counts_timers_that_fired(users, rt, clock):
    xml = process("timed", start(), user("wait", candidateScope="'3207'"), end(),
                  boundary_timer("late", "wait", "timeDuration", '"PT1H"'), end("late_end"),
                  seq("start", "wait", "end"), seq("late", "late_end"), lanes={"supervisor": ["wait"]})
    definition = _deploy(users, xml)
    _start(rt, 1, "3207001", key="timed")
    clock.advance(timedelta(hours=2))
    assert timers.fire_due(rt) == 1
    body = users["admin"].get(f"/api/v1/process-definition/{definition}/heatmap").get_json()
    elements = {e["elementId"]: e for e in body["elements"]}
    assert elements["late"]["entered"] == 1
    assert (elements["wait"]["entered"], elements["wait"]["completed"], elements["wait"]["waiting"]) == (1, 0, 0)


@pytest.mark.parametrize("who", ["insp", "system", "anonymous"])
def test_only_desk_roles_read_statistics_and_heatmaps(users, versions, who):
    v1, _ = versions
    for path in ("/statistics", f"/{v1}/statistics", f"/{v1}/heatmap"):
        assert users[who].get(f"/api/v1/process-definition{path}").status_code in (401, 403), path


def test_unknown_versions_and_bad_keys_are_refused(users):
    assert users["admin"].get("/api/v1/process-definition/999999/statistics").status_code == 404
    assert users["admin"].get("/api/v1/process-definition/999999/heatmap").status_code == 404
    r = users["admin"].get("/api/v1/process-definition/statistics?key=1%20bad")
    assert r.status_code == 422 and "key" in r.get_json()["error"]["fields"]
    assert users["admin"].get("/api/v1/process-definition/statistics?colour=red").status_code == 422
