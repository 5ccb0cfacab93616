"""Timers: the earliest waiting deadline is stored as next_wakeup_at; firing is a locked transaction
that re-checks it, so a timer fires once however many schedulers try."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, instances, tasks, timers
from engine.errors import Conflict, ProcessError
from engine.models import ProcessInstance
from engine.queues import ManualJobQueue
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from tests.conftest import reference_operations
from tests.engine.builders import boundary_timer, end, process, script, seq, start, user
from tests.engine.support import (
    actions,
    complete,
    count,
    open_task,
    other_process,
    run_together,
    start_reference,
    to_handle,
)

HOUR = timedelta(hours=1)
TICK = timedelta(microseconds=1)


def _at_handle(rt, due: timedelta = timedelta(hours=4)) -> str:
    iid = start_reference(rt, due=due)
    to_handle(rt, iid)
    return iid


def _fired(rt, iid: str) -> list[list[str]]:
    return [e.details["elements"] for e in instances.history(rt, iid) if e.action == "timer.fired"]


def test_next_wakeup_is_the_reminder_when_it_comes_first(rt, clock):
    iid = _at_handle(rt, due=timedelta(hours=4))
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + HOUR


def test_next_wakeup_is_the_deadline_when_it_comes_first(rt, clock):
    iid = _at_handle(rt, due=timedelta(minutes=30))
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + timedelta(minutes=30)


def test_no_wakeup_without_waiting_timers(rt):
    iid = start_reference(rt)
    assert instances.get(rt, iid).next_wakeup_at is None
    to_handle(rt, iid)
    complete(rt, iid, "handle", "insp")
    assert instances.get(rt, iid).next_wakeup_at is None  # at the async push: handle's timers are gone


def test_firing_before_the_deadline_does_nothing(rt, clock):
    iid = _at_handle(rt)
    handle = open_task(rt, iid, "handle")
    clock.advance(HOUR - TICK)
    assert timers.fire_due(rt) == 0
    assert timers.fire_instance(rt, iid) == []
    assert _fired(rt, iid) == []
    assert instances.open_tasks(rt, iid)[0].id == handle.id


def test_at_exactly_the_deadline_nothing_fires(rt, clock):
    iid = _at_handle(rt, due=timedelta(minutes=30))
    clock.set(instances.get(rt, iid).next_wakeup_at)
    assert timers.fire_instance(rt, iid) == []
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["handle"]


def test_at_exactly_the_deadline_nothing_is_recorded(rt, clock):
    iid = _at_handle(rt, due=timedelta(minutes=30))
    clock.set(instances.get(rt, iid).next_wakeup_at)
    revision = instances.get(rt, iid).revision
    assert timers.fire_due(rt) == 0
    assert "timer.fired" not in actions(rt, iid)
    assert instances.get(rt, iid).revision == revision


def test_just_after_the_deadline_the_timer_fires(rt, clock):
    iid = _at_handle(rt, due=timedelta(hours=4))
    clock.set(instances.get(rt, iid).next_wakeup_at + TICK)
    assert timers.fire_instance(rt, iid) == ["remind"]
    assert _fired(rt, iid) == [["remind"]]


def test_non_interrupting_reminder_fires_once_and_the_task_stays_open(rt, clock):
    iid = _at_handle(rt, due=timedelta(hours=4))
    handle = open_task(rt, iid, "handle")
    tasks.claim(rt, handle.id, "insp")
    clock.advance(HOUR + TICK)
    assert timers.fire_due(rt) == 1
    assert _fired(rt, iid) == [["remind"]]
    after = open_task(rt, iid, "handle")
    assert (after.id, after.status, after.assignee) == (handle.id, "open", "insp")
    assert instances.get(rt, iid).next_wakeup_at == clock.now() - HOUR - TICK + timedelta(hours=4)
    clock.advance(2 * HOUR)  # later, still before the deadline: no second reminder
    assert timers.fire_due(rt) == 0 and timers.fire_instance(rt, iid) == []
    assert _fired(rt, iid) == [["remind"]]
    complete(rt, iid, "handle", "insp")  # the reminder did not get in the way of finishing the task


def test_interrupting_deadline_cancels_the_task_and_opens_escalate(rt, clock):
    iid = _at_handle(rt, due=timedelta(minutes=30))
    handle = open_task(rt, iid, "handle")
    clock.advance(timedelta(minutes=30) + TICK)
    assert timers.fire_due(rt) == 1
    assert tasks.get(rt, handle.id).status == "cancelled"
    escalate = open_task(rt, iid, "escalate")
    assert escalate.candidate_role == "supervisor"
    (fired,) = _fired(rt, iid)
    assert "deadline" in fired
    assert instances.get(rt, iid).next_wakeup_at is None
    tasks.complete(rt, escalate.id, "sup")
    assert instances.get(rt, iid).status == "completed"


def test_timer_fired_event_lists_only_the_timers_that_fired(rt, clock):
    iid = _at_handle(rt, due=timedelta(minutes=30))
    clock.advance(timedelta(minutes=30) + TICK)
    assert timers.fire_instance(rt, iid) == ["deadline"]
    assert _fired(rt, iid) == [["deadline"]]


def test_scheduler_tick_fires_and_plans_the_next_run_at_the_next_deadline(rt, clock):
    iid = _at_handle(rt, due=timedelta(hours=4))
    scheduler = Scheduler(rt, ManualJobQueue(rt), max_sleep=timedelta(hours=3))
    first = scheduler.tick()
    assert first.fired == 0 and first.next_run == clock.now() + HOUR + timers.WAKE_SLACK
    clock.set(first.next_run)
    second = scheduler.tick()
    assert second.fired == 1 and _fired(rt, iid) == [["remind"]]
    assert second.next_run == instances.get(rt, iid).next_wakeup_at + timers.WAKE_SLACK  # the deadline, 3 h on
    scheduler.max_sleep = timedelta(seconds=30)
    assert scheduler.tick().next_run == clock.now() + timedelta(seconds=30)  # never sleeps longer than max_sleep


# -- exactly once on PostgreSQL --------------------------------------------------------------------

@pytest.fixture
def pg_rt(pg, clock) -> Runtime:
    runtime = Runtime(db=pg, clock=clock)
    reference_operations(runtime)
    return runtime


def test_only_one_of_two_schedulers_leads(pg_rt):
    with other_process(pg_rt) as other_rt:
        a, b = Scheduler(pg_rt, ManualJobQueue(pg_rt)), Scheduler(other_rt, ManualJobQueue(other_rt))
        try:
            assert a.leadership.try_acquire() is True
            assert b.leadership.try_acquire() is False
            assert a.leadership.still_held() and not b.leadership.still_held()
            a.leadership.release()
            assert b.leadership.try_acquire() is True  # the stand-by takes over
            assert a.leadership.try_acquire() is False
        finally:
            a.leadership.release()
            b.leadership.release()


@pytest.mark.parametrize("fire", ["fire_due", "fire_instance"])
def test_two_schedulers_firing_at_once_fire_the_timer_once(pg_rt, clock, fire):
    iid = _at_handle(pg_rt, due=timedelta(minutes=30))
    clock.advance(timedelta(minutes=30) + TICK)
    with other_process(pg_rt) as other_rt:
        calls = [(lambda r=r: timers.fire_due(r)) if fire == "fire_due" else (lambda r=r: timers.fire_instance(r, iid))
                 for r in (pg_rt, other_rt, pg_rt, other_rt)]
        results = run_together(calls)
    assert all(kind == "ok" for kind, _ in results), results
    fired = [value for _, value in results if value]
    assert len(fired) == 1 and (fired[0] == 1 or "deadline" in fired[0])
    assert [t.element_id for t in instances.open_tasks(pg_rt, iid)] == ["escalate"]
    assert sum(1 for e in instances.history(pg_rt, iid) if e.action == "timer.fired") == 1


# -- cycles -----------------------------------------------------------------------------------------

def _cycle(rt) -> str:
    """A user task with a non-interrupting "R2/PT1H" cycle that runs the `count` script each time."""
    xml = process("cyc", start(), user("t"), boundary_timer("tick", "t", "timeCycle", '"R2/PT1H"', interrupting=False),
                  script("count", "n = n + 1"), end(), end("counted"), seq("start", "t", "end"),
                  seq("tick", "count", "counted"), lanes={"clerk": ["t"]})
    definitions.deploy(rt, xml, "admin")
    return instances.start(rt, actor="u", key="cyc", variables={"n": 0}).instance.id


def _ran(rt, iid: str) -> list[str]:
    return [el for e in instances.history(rt, iid) if e.action == "timer.fired" for el in e.details.get("ran", [])]


def test_cycle_timer_runs_its_branch_once_per_cycle_then_stops(rt, clock):
    iid = _cycle(rt)
    start_at = clock.now()
    for n in (1, 2):
        assert instances.get(rt, iid).next_wakeup_at == start_at + n * HOUR
        clock.set(start_at + n * HOUR + TICK)
        timers.fire_due(rt)
        assert _ran(rt, iid).count("count") == n
    assert instances.get(rt, iid).next_wakeup_at is None
    clock.advance(5 * HOUR)
    assert timers.fire_due(rt) == 0 and _ran(rt, iid).count("count") == 2
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["t"]


def test_each_cycle_of_a_cycle_timer_is_reported_as_fired(rt, clock):
    iid = _cycle(rt)
    clock.advance(HOUR + TICK)
    assert timers.fire_instance(rt, iid) == ["tick"]


def test_completion_racing_the_deadline_has_exactly_one_winner(pg_rt, clock):
    iid = _at_handle(pg_rt, due=timedelta(minutes=30))
    handle = open_task(pg_rt, iid, "handle")
    clock.advance(timedelta(minutes=30) + TICK)  # the deadline has passed; the inspector submits anyway
    (done, fire) = run_together([lambda: tasks.complete(pg_rt, handle.id, "insp", {"violation": True}),
                                 lambda: timers.fire_instance(pg_rt, iid)])
    status = tasks.get(pg_rt, handle.id).status
    if done[0] == "ok":  # the completion won: the deadline no longer applies
        assert status == "completed" and fire == ("ok", []) and instances.open_tasks(pg_rt, iid) == []
        assert "timer.fired" not in actions(pg_rt, iid)
    else:  # the deadline won: the completion is refused
        assert isinstance(done[1], Conflict) and fire[0] == "ok" and "deadline" in fire[1]
        assert status == "cancelled" and [t.element_id for t in instances.open_tasks(pg_rt, iid)] == ["escalate"]
        assert "task.completed" not in actions(pg_rt, iid)[2:]


@pytest.mark.parametrize(("kind", "value", "takes"), [
    ("timeDate", "tomorrow", "a date and time"),  # the library's parser read the W as an ISO week: 'groups'
    ("timeDate", 5, "a date and time"),
    ("timeDate", "PT1H", "a date and time"),  # a duration where a date belongs
    ("timeDuration", "soon", "a duration"),
    ("timeCycle", "every day", "a repetition"),
])
def test_a_timer_value_that_is_not_what_the_timer_takes_is_refused_naming_it(rt, kind, value, takes):
    xml = process("bad_timer", start(), user("work"), end(),
                  boundary_timer("late", "work", kind, "when", interrupting=kind != "timeCycle"),
                  seq("start", "work", "end"))
    definitions.deploy(rt, xml, "admin")
    with pytest.raises(ProcessError) as refused:
        instances.start(rt, actor="t", key="bad_timer", variables={"when": value})
    assert f"the timer was given {value!r}, which is not {takes}" in refused.value.message
    assert refused.value.details["element"] == "late"
    assert "groups" not in refused.value.message and "upper" not in refused.value.message
    assert count(rt, ProcessInstance) == 0  # nothing started
