"""The production path against real servers: outbox → RQ on Redis → worker, and the scheduler
process waking at a timer's deadline and on NOTIFY from other processes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from rq import Queue, SimpleWorker
from sqlalchemy import func, select

from engine import definitions, instances, outbox, tasks
from engine import worker as engine_worker
from engine.clock import SystemClock
from engine.models import OutboxEntry
from engine.queues import RQJobQueue
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from tests.conftest import REDIS_URL, redis_or_skip, reference_operations


@pytest.fixture
def redis_conn():
    yield from redis_or_skip(REDIS_URL)


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll for an outcome (a bound on waiting, not an assertion about speed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def run_to_push(rt: Runtime, reference_xml: str, key: str = "C-1") -> str:
    definitions.deploy(rt, reference_xml, "admin")
    due = (rt.clock.now() + timedelta(hours=4)).isoformat()
    iid = instances.start(rt, actor="t", key="reference_loop", business_key=key,
                          variables={"case_id": key, "value": 5, "grid": "g", "handle_due": due}).instance.id
    for variables in ({"approved": True}, {"violation": True}):  # review, then handle
        (task,) = instances.open_tasks(rt, iid)
        tasks.complete(rt, task.id, "u", variables)
    return iid


def pending_outbox(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).where(OutboxEntry.relayed_at.is_(None)))


def test_async_service_task_runs_on_a_real_rq_worker(pg, clock, redis_conn, reference_xml):
    rt = Runtime(db=pg, clock=clock)
    reference_operations(rt)
    iid = run_to_push(rt, reference_xml)
    assert outbox.relay(rt, RQJobQueue(redis_conn)) == 1
    assert Queue("engine", connection=redis_conn).count == 1
    engine_worker.bind(rt)
    SimpleWorker(["engine"], connection=redis_conn).work(burst=True)
    assert instances.subscriptions(rt, iid)[0].message_name == "feedback"


def test_redis_down_keeps_the_outbox_and_drains_when_back(pg, clock, redis_conn, reference_xml):
    rt = Runtime(db=pg, clock=clock)
    reference_operations(rt)
    run_to_push(rt, reference_xml)
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    with pytest.raises(RedisConnectionError):
        outbox.relay(rt, RQJobQueue(unreachable))
    assert pending_outbox(rt) == 1
    assert outbox.relay(rt, RQJobQueue(redis_conn)) == 1
    assert pending_outbox(rt) == 0


TIMER_XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="short_timer" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDuration>"PT1S"</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_scheduler_wakes_at_the_deadline_not_by_polling(pg, redis_conn):
    rt = Runtime(db=pg, clock=SystemClock())
    definitions.deploy(rt, TIMER_XML, "admin")
    sched = Scheduler(rt, RQJobQueue(redis_conn), max_sleep=timedelta(minutes=10))
    rt.on_wakeup = sched.wake
    sched.start()
    try:
        iid = instances.start(rt, actor="t", key="short_timer").instance.id
        assert instances.get(rt, iid).next_wakeup_at is not None
        wait_for(lambda: instances.get(rt, iid).status == "completed")
    finally:
        sched.stop()


def test_scheduler_is_woken_by_notify_from_another_process(pg, redis_conn, reference_xml):
    """The writer here has no in-process hook (like a web process): only PostgreSQL NOTIFY can
    tell the sleeping scheduler that there is an outbox row to relay."""
    sched_rt = Runtime(db=pg, clock=SystemClock())
    reference_operations(sched_rt)
    sched = Scheduler(sched_rt, RQJobQueue(redis_conn), max_sleep=timedelta(minutes=10))
    sched.start()
    try:
        time.sleep(0.5)  # let it become active and go to sleep
        writer = Runtime(db=pg, clock=SystemClock())
        reference_operations(writer)
        run_to_push(writer, reference_xml)
        wait_for(lambda: Queue("engine", connection=redis_conn).count == 1)
        assert pending_outbox(writer) == 0
    finally:
        sched.stop()


def test_a_job_added_outside_a_change_wakes_the_scheduler_too(pg, redis_conn):
    """Notices, retries and incident retries write outbox rows with `outbox.add`, not in a change:
    their commit must wake a scheduler in another process as well."""
    sched = Scheduler(Runtime(db=pg, clock=SystemClock()), RQJobQueue(redis_conn), max_sleep=timedelta(minutes=10))
    sched.start()
    try:
        time.sleep(0.5)  # let it become active and go to sleep
        writer = Runtime(db=pg, clock=SystemClock())
        with writer.db.transaction() as s:
            outbox.add(s, writer.clock.now(), queue="notify", job="notify.deliver", payload={"notification_id": "n"})
        wait_for(lambda: Queue("notify", connection=redis_conn).count == 1)
    finally:
        sched.stop()


def test_only_one_scheduler_is_active(pg):
    first, second = (Scheduler(Runtime(db=pg), queue=None) for _ in range(2))
    try:
        assert first.leadership.try_acquire() is True
        assert second.leadership.try_acquire() is False
        first.leadership.release()
        assert second.leadership.try_acquire() is True
    finally:
        first.leadership.release()
        second.leadership.release()
