"""Service tasks: synchronous operations inside the transaction (a failure leaves no trace), asynchronous
ones through the outbox with idempotent jobs, retries with backoff, incidents and their retry."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from engine import definitions, incidents, instances, outbox, tasks
from engine.errors import Conflict, ProcessError
from engine.models import AuditEvent, HumanTask, Incident, OutboxEntry, ProcessInstance
from engine.queues import ManualJobQueue, run_job
from tests.engine.builders import end, process, script, seq, service, start, user
from tests.engine.support import (
    actions,
    complete,
    count,
    open_task,
    relay_and_run,
    start_reference,
    task_state,
    to_handle,
)


def _async_model(operation: str, then: str = "") -> str:
    """start → call (async `operation`) → [then: a script] → after (user) → end."""
    steps = ["start", "call", *(["then"] if then else []), "after", "end"]
    return process("svc", start(), service("call", operation, result="out", n="n"),
                   *([script("then", then)] if then else []), user("after"), end(), seq(*steps),
                   lanes={"clerk": ["after"]})


def _start(rt, xml: str) -> str:
    definitions.deploy(rt, xml, "admin")
    return instances.start(rt, actor="u", key="svc", variables={"n": 7}).instance.id


def _pending(rt) -> list[OutboxEntry]:
    with rt.db.session() as s:
        return list(s.scalars(select(OutboxEntry).where(OutboxEntry.relayed_at.is_(None)).order_by(OutboxEntry.id)))


def _fingerprint(rt, iid: str | None = None):
    """Everything a change could leave behind."""
    row = instances.get(rt, iid) if iid else None
    return ((row.revision, row.status, row.state, row.next_wakeup_at) if row else None,
            count(rt, ProcessInstance), count(rt, AuditEvent), count(rt, OutboxEntry), count(rt, HumanTask),
            sorted((t.id, t.status) for t in instances.open_tasks(rt, iid)) if iid else None)


# -- asynchronous ---------------------------------------------------------------------------------

def test_async_service_task_stays_started_until_its_job_runs(rt):
    iid = start_reference(rt)
    to_handle(rt, iid)
    complete(rt, iid, "handle", "insp")
    assert task_state(rt, iid, "push") == TaskState.STARTED
    (entry,) = _pending(rt)
    assert (entry.job, entry.payload["operation"], entry.payload["params"], entry.payload["attempt"]) == (
        "service_call", "ref.push", {"case_id": "C-1"}, 1)
    assert instances.subscriptions(rt, iid) == [] and instances.open_tasks(rt, iid) == []
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 1 and outbox.relay(rt, jobs) == 0  # relayed once
    assert task_state(rt, iid, "push") == TaskState.STARTED  # relayed is not done
    assert jobs.run_all() == 1
    assert task_state(rt, iid, "push") == TaskState.COMPLETED
    assert instances.variables(rt, iid)["push_result"] == {"pushed": "C-1"}
    assert [s.message_name for s in instances.subscriptions(rt, iid)] == ["feedback"]


def test_running_the_same_job_twice_completes_the_task_once(rt):
    iid = start_reference(rt)
    to_handle(rt, iid)
    complete(rt, iid, "handle", "insp")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    (_queue, job, payload) = jobs.pending[0]
    jobs.run_all()
    after_first = instances.history(rt, iid)
    run_job(rt, job, payload)  # at-least-once delivery: the same job again
    assert [e.action for e in instances.history(rt, iid)] == [e.action for e in after_first]
    assert actions(rt, iid).count("service.completed") == 1
    assert len(instances.subscriptions(rt, iid)) == 1 and _pending(rt) == []


def test_a_repeated_job_for_a_completed_task_does_not_call_the_operation_again(rt):
    calls = []

    def push_once(params, ctx):
        calls.append(ctx.attempt)
        if len(calls) > 1:
            raise RuntimeError("already pushed")
        return {"ok": True}

    rt.registry.register("x.once", push_once, is_async=True)
    iid = _start(rt, _async_model("x.once"))
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    (_queue, job, payload) = jobs.pending[0]
    jobs.run_all()
    run_job(rt, job, payload)
    assert calls == [1]
    assert _pending(rt) == [] and "service.retry_scheduled" not in actions(rt, iid)


def test_a_job_for_a_cancelled_instance_does_not_call_the_operation(rt):
    calls = []
    rt.registry.register("x.push", lambda p, c: calls.append(c.task_id), is_async=True)
    iid = _start(rt, _async_model("x.push"))
    instances.cancel(rt, iid, "admin")
    relay_and_run(rt)
    assert calls == []
    assert instances.get(rt, iid).status == "cancelled" and "service.completed" not in actions(rt, iid)


def test_failing_async_operation_retries_with_backoff_then_raises_an_incident_that_retry_resolves(rt, clock):
    calls: list[int] = []
    down = {"yes": True}

    def flaky(params, ctx):
        calls.append(ctx.attempt)
        if down["yes"]:
            raise RuntimeError("enforcement system down")
        return {"n": params["n"] * 2}

    rt.registry.register("x.fail", flaky, is_async=True, max_attempts=3, backoff=timedelta(seconds=10))
    iid = _start(rt, _async_model("x.fail"))
    assert relay_and_run(rt) == 1 and calls == [1]
    for attempt, base in ((2, 10), (3, 20)):
        (retry,) = _pending(rt)
        assert retry.payload["attempt"] == attempt and "enforcement system down" in retry.payload["last_error"]
        delay = retry.available_at - clock.now()
        assert timedelta(seconds=base) <= delay <= timedelta(seconds=base * 1.1)  # backoff plus ≤10 % jitter
        assert relay_and_run(rt) == 0  # not before its time
        clock.advance(delay)
        assert relay_and_run(rt) == 1 and calls[-1] == attempt
    assert _pending(rt) == []
    (incident,), total = incidents.query(rt, instance_id=iid)
    assert total == 1
    assert (incident.status, incident.operation, incident.element_id, incident.attempts) == (
        "open", "x.fail", "call", 3)
    assert "enforcement system down" in incident.message
    assert task_state(rt, iid, "call") == TaskState.STARTED and instances.open_tasks(rt, iid) == []

    down["yes"] = False
    resolved = incidents.retry(rt, incident.id, "operator")
    assert (resolved.status, resolved.resolved_by) == ("resolved", "operator")
    (again,) = _pending(rt)
    assert again.payload["attempt"] == 1 and "last_error" not in again.payload  # a fresh set of attempts
    assert relay_and_run(rt) == 1 and calls == [1, 2, 3, 1]
    assert instances.variables(rt, iid)["out"] == {"n": 14}
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["after"]
    assert incidents.query(rt)[1] == 0
    assert [a for a in actions(rt, iid) if a.startswith(("service", "incident"))] == [
        "service.retry_scheduled", "service.retry_scheduled", "incident.raised", "incident.retried",
        "service.completed"]


def test_retrying_a_resolved_incident_is_a_conflict(rt):
    rt.registry.register("x.down", lambda p, c: 1 / 0, is_async=True, max_attempts=1)
    _start(rt, _async_model("x.down"))
    relay_and_run(rt)
    (incident,), _ = incidents.query(rt)
    incidents.retry(rt, incident.id, "operator")
    with pytest.raises(Conflict):
        incidents.retry(rt, incident.id, "operator")
    assert len(_pending(rt)) == 1


def test_failure_after_the_async_result_is_visible_as_an_incident(rt):
    rt.registry.register("x.ok", lambda p, c: {"ok": True}, is_async=True)
    iid = _start(rt, _async_model("x.ok", then="y = 1 / 0"))
    with contextlib.suppress(ProcessError):  # whether or not the job itself reports the error...
        relay_and_run(rt)
    assert incidents.query(rt, instance_id=iid)[1] == 1 or len(_pending(rt)) == 1  # ...it must not be lost


# -- synchronous: a failing step leaves no trace ---------------------------------------------------

def _sync_model() -> str:
    """start → first (user) → call (sync x.boom) → after (user) → end."""
    return process("svc", start(), user("first"), service("call", "x.boom", n="n"), user("after"), end(),
                   seq("start", "first", "call", "after", "end"), lanes={"clerk": ["first", "after"]})


def test_sync_operation_result_lands_in_the_result_variable(rt):
    rt.registry.register("x.boom", lambda p, c: {"double": p["n"] * 2})
    iid = _start(rt, _sync_model())
    complete(rt, iid, "first")
    assert instances.variables(rt, iid)["result"] == {"double": 14}
    assert open_task(rt, iid, "after")


def test_failing_sync_operation_during_complete_rolls_everything_back(rt):
    rt.registry.register("x.boom", lambda p, c: 1 / 0)
    iid = _start(rt, _sync_model())
    first = open_task(rt, iid, "first")
    tasks.claim(rt, first.id, "ann")
    before = _fingerprint(rt, iid)
    with pytest.raises(ProcessError) as info:
        tasks.complete(rt, first.id, "ann", {"note": "done"})
    assert "division by zero" in info.value.message and "ZeroDivisionError" not in info.value.message
    assert _fingerprint(rt, iid) == before
    assert tasks.get(rt, first.id).status == "open" and "note" not in instances.variables(rt, iid)
    assert task_state(rt, iid, "first") == TaskState.READY


def test_failing_sync_operation_error_names_the_service_task(rt):
    rt.registry.register("x.boom", lambda p, c: 1 / 0)
    iid = _start(rt, _sync_model())
    with pytest.raises(ProcessError) as info:
        complete(rt, iid, "first")
    assert info.value.details["element"] == "call"


def test_sync_operation_returning_non_json_fails_the_change_cleanly(rt):
    rt.registry.register("x.boom", lambda p, c: {"when": object()})
    iid = _start(rt, _sync_model())
    before = _fingerprint(rt, iid)
    with pytest.raises(ProcessError):
        complete(rt, iid, "first")
    assert _fingerprint(rt, iid) == before


def test_script_raising_during_start_leaves_no_instance_at_all(rt):
    xml = process("svc", start(), user("first"), script("s", "x = {}['missing']"), end(),
                  seq("start", "s", "first", "end"), lanes={"clerk": ["first"]})
    definitions.deploy(rt, xml, "admin")
    before = _fingerprint(rt)
    with pytest.raises(ProcessError) as info:
        instances.start(rt, actor="u", key="svc", business_key="B-1", variables={"a": 1})
    assert info.value.details["element"] == "s"
    assert _fingerprint(rt) == before
    assert count(rt, ProcessInstance) == 0 and count(rt, Incident) == 0
    assert instances.query(rt, instances.InstanceQuery(business_key="B-1"))[1] == 0
