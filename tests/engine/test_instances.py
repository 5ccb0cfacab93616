"""Process instances: start, business-key idempotence, cancel, variables, history, queries."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, instances, tasks, timers
from engine.errors import Conflict, InvalidInput, NotFound
from engine.instances import InstanceQuery
from engine.models import HumanTask, ProcessInstance
from engine.runtime import Runtime
from tests.conftest import reference_operations
from tests.engine.builders import two_step
from tests.engine.support import (
    actions,
    complete,
    count,
    open_task,
    run_together,
    start_reference,
    to_feedback,
    to_handle,
)


def test_start_by_key_runs_the_latest_version_up_to_the_first_task(rt):
    definitions.deploy(rt, two_step(), "admin")
    v2, _ = definitions.deploy(rt, two_step(second="other"), "admin")
    started = instances.start(rt, actor="ann", key="two_step")
    row = instances.get(rt, started.instance.id)
    assert started.created
    assert (row.definition_id, row.process_key, row.status, row.started_by) == (v2.id, "two_step", "running", "ann")
    assert [t.element_id for t in instances.open_tasks(rt, row.id)] == ["first"]


def test_start_by_definition_id_uses_exactly_that_definition(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    definitions.deploy(rt, two_step(second="other"), "admin")
    row = instances.start(rt, actor="ann", definition_id=v1.id).instance
    assert row.definition_id == v1.id and instances.definition_of(rt, row).version == 1


def test_start_needs_exactly_one_of_key_and_definition_id(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    with pytest.raises(InvalidInput):
        instances.start(rt, actor="ann")
    with pytest.raises(InvalidInput):
        instances.start(rt, actor="ann", key="two_step", definition_id=v1.id)
    with pytest.raises(NotFound):
        instances.start(rt, actor="ann", key="no_such_process")
    assert count(rt, ProcessInstance) == 0


def test_repeated_business_key_returns_the_same_instance(rt):
    first = start_reference(rt, business_key="C-1")
    again = instances.start(rt, actor="other", key="reference_loop", business_key="C-1",
                            variables={"case_id": "C-1", "value": 1, "grid": "g2", "handle_due": "x"})
    assert again.created is False and again.instance.id == first
    assert count(rt, ProcessInstance) == 1 and count(rt, HumanTask) == 1
    assert actions(rt, first) == ["instance.started"]


def test_business_key_is_unique_per_process_key_only(rt):
    definitions.deploy(rt, two_step(), "admin")
    a = instances.start(rt, actor="u", key="two_step", business_key="K")
    b = start_reference(rt, business_key="K")
    assert a.created and b != a.instance.id and count(rt, ProcessInstance) == 2


def test_cancel_cancels_open_tasks_and_clears_the_wakeup(rt, clock):
    iid = start_reference(rt)
    to_handle(rt, iid)
    handle = open_task(rt, iid, "handle")
    assert instances.get(rt, iid).next_wakeup_at is not None
    cancelled = instances.cancel(rt, iid, "admin", reason="duplicate alarm")
    row = instances.get(rt, iid)
    assert cancelled.status == row.status == "cancelled" and row.ended_at == clock.now()
    assert row.next_wakeup_at is None
    assert tasks.get(rt, handle.id).status == "cancelled" and instances.open_tasks(rt, iid) == []
    clock.advance(timedelta(days=1))
    assert timers.due_instances(rt, clock.now()) == [] and timers.fire_due(rt) == 0
    with pytest.raises(Conflict):
        tasks.complete(rt, handle.id, "insp")


def test_cancel_removes_message_subscriptions(rt):
    iid = start_reference(rt)
    to_feedback(rt, iid)
    assert [(s.message_name, s.correlation_value) for s in instances.subscriptions(rt, iid)] == [("feedback", "C-1")]
    instances.cancel(rt, iid, "admin")
    assert instances.subscriptions(rt, iid) == []


def test_cancelling_twice_is_a_conflict_and_changes_nothing(rt):
    iid = start_reference(rt)
    instances.cancel(rt, iid, "admin")
    before = instances.get(rt, iid)
    with pytest.raises(Conflict):
        instances.cancel(rt, iid, "admin")
    after = instances.get(rt, iid)
    assert (after.revision, after.status, after.state) == (before.revision, "cancelled", before.state)
    assert actions(rt, iid) == ["instance.started", "instance.cancelled"]


def test_cancelling_a_completed_instance_is_a_conflict(rt):
    definitions.deploy(rt, two_step(), "admin")
    iid = instances.start(rt, actor="u", key="two_step").instance.id
    complete(rt, iid, "first")
    complete(rt, iid, "second")
    assert instances.get(rt, iid).status == "completed"
    with pytest.raises(Conflict):
        instances.cancel(rt, iid, "admin")
    assert instances.get(rt, iid).status == "completed"


def test_cancel_of_unknown_instance_is_not_found(rt):
    with pytest.raises(NotFound):
        instances.cancel(rt, "00000000-0000-0000-0000-000000000000", "admin")


def test_variables_are_the_start_variables_then_grow_with_task_results(rt):
    iid = start_reference(rt)
    assert instances.variables(rt, iid) == {"case_id": "C-1", "value": 150, "grid": "g1",
                                            "handle_due": "2026-03-02T05:00:00+00:00"}
    to_handle(rt, iid)
    got = instances.variables(rt, iid)
    assert got["approved"] is True and got["classification"] == {"level": "high"}


def test_variables_of_a_completed_instance_are_its_final_data(rt):
    definitions.deploy(rt, two_step(), "admin")
    iid = instances.start(rt, actor="u", key="two_step", variables={"a": 1}).instance.id
    complete(rt, iid, "first", variables={"b": 2})
    complete(rt, iid, "second", variables={"c": 3})
    assert instances.variables(rt, iid) == {"a": 1, "b": 2, "c": 3}


def test_variables_are_still_visible_after_the_reminder_fired(rt, clock):
    iid = start_reference(rt)
    to_handle(rt, iid)
    clock.advance(timedelta(hours=1, seconds=1))
    assert timers.fire_due(rt) == 1
    assert instances.variables(rt, iid).get("approved") is True


def test_history_is_the_instances_audit_trail_in_order(rt):
    iid = start_reference(rt)
    start_reference(rt, "C-2")  # another instance's events stay out
    review = open_task(rt, iid, "review")
    tasks.claim(rt, review.id, "sup")
    tasks.complete(rt, review.id, "sup", {"approved": True})
    history = instances.history(rt, iid)
    assert [e.action for e in history] == ["instance.started", "task.claimed", "task.completed"]
    assert {e.instance_id for e in history} == {iid}
    done = history[-1]
    assert (done.actor, done.task_id, done.element_id) == ("sup", review.id, "review")
    assert done.details["after"] == {"variables": {"approved": True}}
    assert done.details["ran"] == ["classify"]  # what the engine ran on from there
    with pytest.raises(NotFound):
        instances.history(rt, "00000000-0000-0000-0000-000000000000")


def test_query_filters_and_pages(rt, clock):
    definitions.deploy(rt, two_step(), "admin")
    ids = []
    for n in range(5):
        ids.append(instances.start(rt, actor="u", key="two_step", business_key=f"B{n}").instance.id)
        clock.advance(timedelta(minutes=1))
    ref = start_reference(rt)
    instances.cancel(rt, ids[0], "admin")
    t0 = instances.get(rt, ids[0]).started_at

    def q(**kw):
        rows, total = instances.query(rt, InstanceQuery(**kw))
        return [r.id for r in rows], total

    assert q() == ([ref, *reversed(ids)], 6)  # newest first
    assert q(key="two_step", limit=2) == ([ids[4], ids[3]], 5)
    assert q(key="two_step", limit=2, offset=4) == ([ids[0]], 5)
    assert q(status="cancelled") == ([ids[0]], 1)
    assert q(key="two_step", status="running")[1] == 4
    assert q(business_key="B2") == ([ids[2]], 1)
    assert q(started_after=t0 + timedelta(minutes=3), key="two_step") == ([ids[4], ids[3]], 2)
    assert q(started_before=t0 + timedelta(minutes=2)) == ([ids[1], ids[0]], 2)
    assert q(key="nothing") == ([], 0)


@pytest.mark.parametrize("name", ["_x", "a-b"])
def test_invalid_variable_names_at_start_are_refused_and_nothing_is_created(rt, name):
    definitions.deploy(rt, two_step(), "admin")
    with pytest.raises(InvalidInput):
        instances.start(rt, actor="u", key="two_step", variables={name: 1})
    assert count(rt, ProcessInstance) == 0


@pytest.fixture
def pg_rt(pg, clock) -> Runtime:
    runtime = Runtime(db=pg, clock=clock)
    reference_operations(runtime)
    return runtime


def test_concurrent_starts_with_one_business_key_create_one_instance(pg_rt):
    definitions.deploy(pg_rt, two_step(), "admin")
    results = run_together([
        (lambda: instances.start(pg_rt, actor="u", key="two_step", business_key="ALARM-7")) for _ in range(4)])
    assert all(kind == "ok" for kind, _ in results), results
    started = [value for _, value in results]
    assert sorted(s.created for s in started) == [False, False, False, True]
    assert len({s.instance.id for s in started}) == 1
    assert count(pg_rt, ProcessInstance) == 1 and count(pg_rt, HumanTask) == 1
    assert actions(pg_rt).count("instance.started") == 1
