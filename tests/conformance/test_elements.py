"""Conformance: one tiny model per BPMN element (tests/conformance/models/), each deployed and driven
through the REST API to its expected end state, on PostgreSQL and SQLite. Timers fire as the scheduler
fires them (timers.fire_due after the manual clock moves). A model GridLoop refuses is answered 400
naming the element and the reason. The README's table of BPMN elements points here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from engine import outbox, timers
from engine.queues import ManualJobQueue

MODELS = Path(__file__).parent / "models"
XML = {"Content-Type": "application/xml"}


@dataclass(frozen=True)
class Runs:
    key: str
    steps: tuple = ()  # ("complete", element) | ("message", name) | ("wait", minutes) | ("start", another key)
    #                    | ("deliver", None): relay the outbox and run its jobs (what leaves an instance)
    status: str = "completed"
    variables: dict = field(default_factory=dict)
    open_tasks: tuple[str, ...] = ()
    fired: int | None = None  # timer.fired events in the instance's history


RUNS = [
    Runs("none_start_end"),
    Runs("user_task", (("complete", "u"),)),
    Runs("manual_task", (("complete", "m"),)),
    Runs("plain_task", (("complete", "t"),)),
    Runs("script_task", variables={"x": 42}),
    Runs("service_task", variables={"classified": {"level": "high"}}),
    Runs("exclusive_gateway", variables={"took": "big"}),
    Runs("parallel_gateway", variables={"a": 1, "b": 2}),
    Runs("inclusive_gateway", variables={"a": True, "b": True}),
    Runs("event_gateway_message", (("message", "go"),), variables={"took": "message"}),
    Runs("event_gateway_timer", (("wait", 61),), variables={"took": "timer"}),
    Runs("timer_duration", (("wait", 59),), status="running"),
    Runs("timer_duration", (("wait", 61),)),
    Runs("timer_date", (("wait", 60 * 24 * 365 * 10),)),
    Runs("timer_boundary_interrupting", (("wait", 61),), variables={"took": "timeout"}),
    Runs("timer_boundary_cycle", (("wait", 11), ("wait", 11), ("wait", 11)), status="running", open_tasks=("u",),
         fired=2),  # R2: twice, the task still open (a branch's own data ends with its branch)
    Runs("receive_task", (("message", "go"),)),
    Runs("message_catch", (("message", "go"),)),
    Runs("message_boundary", (("message", "stop"),), variables={"took": "message"}),
    Runs("message_throw_catch"),
    Runs("signal_throw_catch"),
    Runs("error_boundary", variables={"took": "error"}),
    Runs("escalation_boundary", variables={"took": "escalation"}),
    Runs("embedded_subprocess", variables={"inner": "ran"}),
    Runs("multi_instance_parallel", (("complete", "u"), ("complete", "u"))),
    Runs("multi_instance_sequential", (("complete", "u"), ("complete", "u"))),
    Runs("terminate_end", open_tasks=()),
    Runs("event_subprocess_timer", (("wait", 59),), status="running", open_tasks=("u",)),
    Runs("event_subprocess_timer", (("wait", 61),), variables={"took": "timer"}, fired=1),
    Runs("event_subprocess_timer_noninterrupting", (("wait", 61),), status="running", open_tasks=("late", "u"),
         fired=1),
    Runs("event_subprocess_timer_noninterrupting", (("wait", 61), ("complete", "u")), status="running",
         open_tasks=("late",)),  # the running event sub-process keeps the process open
    Runs("event_subprocess_timer_noninterrupting", (("complete", "u"),)),  # it had not started: ends with the flow
    Runs("event_subprocess_message", (("message", "cancel"),), variables={"took": "message"}),
    Runs("event_subprocess_message_noninterrupting", (("message", "note"), ("message", "note")), status="running",
         open_tasks=("read", "read", "u")),  # once per message
    Runs("event_subprocess_message_noninterrupting", (("message", "note"), ("complete", "u"), ("complete", "read"))),
    Runs("event_subprocess_signal", (("start", "signal_sender"), ("deliver", None)), status="running",
         open_tasks=("react", "u")),
    Runs("event_subprocess_error", variables={"took": "error"}),
    Runs("event_subprocess_escalation", status="running", open_tasks=("review", "u")),
]

REFUSED = [
    ("timer_start_duration", "start", "a duration has nothing to count from"),
    ("complex_gateway", "gw", "no support implemented for this task type"),
    ("script_import", "s", "import"),
    ("event_subprocess_cycle", "event_start", "cannot start on a timeCycle"),
    ("event_subprocess_error_noninterrupting", "event_start", "an error start event always interrupts"),
    ("compensation", "undo_booking", "compensation is not supported"),
    ("compensation", "undo", "compensation is not supported"),
    ("compensation", "cancel_booking", "compensation handler (isForCompensation) is not supported"),
]


def _deploy(users, key: str):
    return users["admin"].post("/api/v1/process-definition", data=(MODELS / f"{key}.bpmn").read_bytes(), headers=XML)


def _open(users, instance_id: str, element: str | None = None) -> list[dict]:
    query = f"/api/v1/task?processInstanceId={instance_id}" + (f"&taskDefinitionKey={element}" if element else "")
    return users["sup"].get(query).get_json()["items"]


@pytest.mark.parametrize("case", RUNS, ids=lambda c: f"{c.key}{'-' + str(c.steps) if c.steps else ''}"[:60])
def test_each_element_runs_to_its_expected_end_state(rt, clock, users, case):
    assert _deploy(users, case.key).status_code == 201
    started = users["sup"].post(f"/api/v1/process-definition/key/{case.key}/start", json={"scope": "3207"})
    assert started.status_code == 201, started.get_json()
    instance = started.get_json()["id"]
    for n, (action, arg) in enumerate(case.steps):
        if action == "complete":
            (task, *_rest) = _open(users, instance, arg)
            r = users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={"variables": {}})
            assert r.status_code in (200, 204), r.get_json()
        elif action == "start":
            assert _deploy(users, arg).status_code == 201
            other = users["sup"].post(f"/api/v1/process-definition/key/{arg}/start", json={"scope": "3207"})
            assert other.status_code == 201, other.get_json()
        elif action == "deliver":
            jobs = ManualJobQueue(rt)
            outbox.relay(rt, jobs)
            jobs.run_all()
        elif action == "message":
            r = users["admin"].post("/api/v1/message", json={"messageName": arg, "messageId": f"{instance}:{n}",
                                                             "processInstanceId": instance})
            assert r.status_code == 200, r.get_json()
        else:
            clock.advance(timedelta(minutes=arg))
            timers.fire_due(rt)
    shown = users["sup"].get(f"/api/v1/process-instance/{instance}").get_json()
    assert shown["status"] == case.status
    variables = users["sup"].get(f"/api/v1/process-instance/{instance}/variables").get_json()
    assert {k: variables.get(k) for k in case.variables} == case.variables
    assert sorted(t["taskDefinitionKey"] for t in _open(users, instance)) == sorted(case.open_tasks)
    if case.fired is not None:
        history = users["admin"].get(f"/api/v1/process-instance/{instance}/history").get_json()
        events = history["items"] if isinstance(history, dict) else history
        assert sum(1 for e in events if e["action"] == "timer.fired") == case.fired


@pytest.mark.parametrize(("key", "element", "words"), REFUSED, ids=[f"{r[0]}-{r[1]}" for r in REFUSED])
def test_a_refused_element_is_answered_400_naming_it_and_why(users, key, element, words):
    r = _deploy(users, key)
    assert r.status_code == 400
    problems = r.get_json()["error"]["details"]["problems"]
    assert any(p["element"] == element and words in p["problem"] for p in problems), problems
