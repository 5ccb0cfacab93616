"""The scheduler's loop cannot end: a tick that overruns while wake-ups pile up, or that raises, is
followed by the next one; a leader whose loop stalls gives the lock up to a standby and takes it
back only before ticking again. (The ticks used to be self-re-adding APScheduler `date` jobs, and
one skipped as "maximum number of running instances reached" ended them for good.)"""

from __future__ import annotations

import logging
import sys
import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import text

from engine import definitions, instances, outbox
from engine.queues import ManualJobQueue
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from tests.conftest import reference_operations
from tests.engine.support import actions, other_process

MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)
LONG = timedelta(minutes=10)  # never reached in a test: only deadlines and wake-ups make it tick
NOW = timedelta(0)

TIMER_XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="one_minute" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>"PT1M"</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def wait_for(predicate, timeout: float = 20.0) -> None:
    """Poll for an outcome (a bound on waiting, not an assertion about speed)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


class Gate:
    """A chore that, once armed, holds the tick it runs in until released: a tick that overruns."""

    def __init__(self) -> None:
        self.armed = False
        self.runs = 0
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self) -> None:
        self.runs += 1
        if self.armed:
            self.armed = False
            self.entered.set()
            self.released.wait(30)

    def hold_next(self) -> None:
        self.entered.clear()
        self.released.clear()
        self.armed = True


def waiting(rt: Runtime) -> str:
    """An instance whose only timer is due one minute from the clock's now."""
    return instances.start(rt, actor="t", key="one_minute").instance.id


def completed(rt: Runtime, iid: str) -> bool:
    return instances.get(rt, iid).status == "completed"


def fire_and_wait(rt: Runtime, clock, sched: Scheduler, iid: str) -> None:
    clock.advance(MINUTE + TICK)
    sched.wake()
    wait_for(lambda: completed(rt, iid))


def test_a_tick_that_overruns_under_a_burst_of_wakeups_is_followed_by_the_next(rt, clock):
    definitions.deploy(rt, TIMER_XML, "admin")
    gate = Gate()
    sched = Scheduler(rt, ManualJobQueue(rt), max_sleep=LONG, housekeeping=[gate], housekeeping_every=NOW)
    rt.on_wakeup = sched.wake
    sched.start()
    try:
        for _ in range(10):
            first = waiting(rt)
            clock.advance(MINUTE + TICK)
            gate.hold_next()
            sched.wake()
            assert gate.entered.wait(20)  # a tick overruns in a chore
            later = waiting(rt)  # its commit wakes the scheduler during the tick
            for _ in range(200):
                sched.wake()
            gate.released.set()
            wait_for(lambda first=first: completed(rt, first))
            fire_and_wait(rt, clock, sched, later)  # the next deadline fires too
        assert sched.active and sched.ticks >= 20
    finally:
        sched.stop()


@pytest.fixture
def busy_interpreter():
    """Threads switch every 0.1 ms, as under load: the old self-re-adding tick job lost its chain
    within ~50 ticks this way (APScheduler: "skipped: maximum number of running instances")."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(before)


def test_a_stream_of_wakeups_while_ticks_run_never_ends_the_ticking(rt, clock, busy_interpreter):
    definitions.deploy(rt, TIMER_XML, "admin")
    sched = Scheduler(rt, ManualJobQueue(rt), max_sleep=LONG)
    sched.start()
    done = threading.Event()

    def notify_storm() -> None:  # like NOTIFYs while thousands of instances start
        while not done.is_set():
            sched.wake()
            time.sleep(0.0002)

    storm = threading.Thread(target=notify_storm, daemon=True)
    storm.start()
    try:
        for _ in range(8):
            fire_and_wait(rt, clock, sched, waiting(rt))
            time.sleep(0.2)  # many ticks in between
    finally:
        done.set()
        storm.join()
        sched.stop()


class FlakyQueue(ManualJobQueue):
    """A job queue that is down for its first `failures` hand-overs (Redis unreachable)."""

    def __init__(self, rt: Runtime, failures: int) -> None:
        super().__init__(rt)
        self.failures = failures

    def enqueue(self, queue, job, payload, *, key) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("job queue unreachable")
        super().enqueue(queue, job, payload, key=key)


def test_ticks_that_raise_and_chores_that_raise_do_not_stop_the_loop(rt, clock):
    definitions.deploy(rt, TIMER_XML, "admin")
    chores: list[str] = []

    def broken() -> None:
        chores.append("broken")
        raise RuntimeError("database hiccup")

    queue = FlakyQueue(rt, failures=2)
    sched = Scheduler(rt, queue, max_sleep=LONG, housekeeping_every=NOW,
                      housekeeping=[broken, lambda: chores.append("next")])
    sched.start()
    try:
        with rt.db.transaction() as s:
            outbox.add(s, clock.now(), queue="notify", job="notify.deliver", payload={"notification_id": "n"})
        sched.wake()
        wait_for(lambda: len(queue.pending) == 1)  # relayed once the queue is back, after two failed ticks
        assert queue.failures == 0
        fire_and_wait(rt, clock, sched, waiting(rt))
        wait_for(lambda: chores.count("next") >= 2)
        assert chores[:4] == ["broken", "next", "broken", "next"]  # each chore on its own, every tick
    finally:
        sched.stop()


def test_stop_ends_a_standing_by_scheduler_and_a_sleeping_one(rt):
    sched = Scheduler(rt, ManualJobQueue(rt), max_sleep=LONG, standby_poll=LONG)
    sched.start()
    wait_for(lambda: sched.ticks >= 1)
    sched.stop()
    assert not sched.active and not any(t.is_alive() for t in sched._threads)


# -- leadership follows the ticks (PostgreSQL) -----------------------------------------------------

@pytest.fixture
def pg_rt(pg, clock) -> Runtime:
    runtime = Runtime(db=pg, clock=clock)
    reference_operations(runtime)
    definitions.deploy(runtime, TIMER_XML, "admin")
    return runtime


def test_a_stalled_leader_lets_go_and_ticks_again_only_once_it_leads_again(pg_rt, clock):
    fast = timedelta(milliseconds=50)
    stuck = Gate()
    stuck.hold_next()
    a = Scheduler(pg_rt, ManualJobQueue(pg_rt), max_sleep=LONG, standby_poll=fast,
                  stall_after=timedelta(milliseconds=500), housekeeping=[stuck], housekeeping_every=NOW)
    with other_process(pg_rt) as other_rt:
        b = Scheduler(other_rt, ManualJobQueue(other_rt), max_sleep=LONG, standby_poll=fast)
        a.start()
        try:
            assert stuck.entered.wait(20)  # a leads, and its tick hangs
            b.start()
            wait_for(lambda: b.active)  # a gave the lock up; b took it
            assert not a.active
            fire_and_wait(pg_rt, clock, b, waiting(pg_rt))  # b fires timers
            stuck.released.set()  # a's loop recovers...
            wait_for(lambda: a.ticks == 1)
            for _ in range(20):  # ...but does not tick while b leads
                a.wake()
                time.sleep(0.02)
            assert stuck.runs == 1 and not a.active and b.active
            b.stop()
            wait_for(lambda: a.active)  # it ticks again once the lock is its own again
            fire_and_wait(pg_rt, clock, a, waiting(pg_rt))
            assert stuck.runs > 1
        finally:
            b.stop()
            a.stop()


def test_a_leader_whose_lock_connection_dies_ticks_again_only_on_a_new_lock(pg_rt, clock, caplog):
    a = Scheduler(pg_rt, ManualJobQueue(pg_rt), max_sleep=LONG, standby_poll=timedelta(milliseconds=50))
    a.start()
    try:
        wait_for(lambda: a.active)
        with pg_rt.db.engine.connect() as conn:  # a restart, a network cut: the session and its lock are gone
            killed = conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                                       )).scalars().all()
        assert killed == [True]
        wait_for(lambda: "scheduler lost its lock connection; standing by" in caplog.text)
        wait_for(lambda: a.active)
        fire_and_wait(pg_rt, clock, a, waiting(pg_rt))
    finally:
        a.stop()


def test_a_standby_fires_the_timers_the_active_scheduler_is_late_with_and_only_those(pg_rt, clock, caplog):
    caplog.set_level(logging.INFO, logger="engine.scheduler")
    fast = timedelta(milliseconds=50)
    stuck = Gate()
    stuck.hold_next()
    a = Scheduler(pg_rt, ManualJobQueue(pg_rt), max_sleep=LONG, standby_poll=fast, stall_after=LONG,
                  housekeeping=[stuck], housekeeping_every=NOW)
    with other_process(pg_rt) as other_rt:
        reported: list[int] = []  # what `gridloop scheduler` adds up in Redis for /metrics
        b = Scheduler(other_rt, ManualJobQueue(other_rt), max_sleep=LONG, standby_poll=fast,
                      help_after=timedelta(seconds=30), standby_fired=reported.append)
        a.start()
        try:
            assert stuck.entered.wait(20)  # a leads, and its tick hangs: it fires nothing from now on
            late = waiting(pg_rt)  # due at +60 s
            clock.advance(timedelta(seconds=40))
            recent = waiting(pg_rt)  # due at +100 s
            clock.advance(timedelta(seconds=70))  # +110 s: one is 50 s late, the other 10 s
            b.start()
            wait_for(lambda: completed(pg_rt, late))  # b fired the timer due 50 s ago...
            assert not completed(pg_rt, recent)  # ...in a batch that left the one due 10 s ago
            assert b.helped == 1 and not b.active and a.active
            wait_for(lambda: "standby scheduler fired 1 timers the active one was late with" in caplog.text)
            clock.advance(timedelta(seconds=25))  # now 35 s late: b takes it as well
            wait_for(lambda: completed(pg_rt, recent))
            assert b.helped == 2 and not b.active
            assert reported == [1, 1]
            assert [actions(pg_rt, iid).count("timer.fired") for iid in (late, recent)] == [1, 1]
        finally:
            stuck.released.set()
            b.stop()
            a.stop()
