"""Timers fired in batches: one transaction takes the due instances with FOR UPDATE SKIP LOCKED and
runs each one's locked change; every timer fires at its deadline, exactly once, however many
schedulers fire batches at the same time; a batch that fails is fired again one by one."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import select, text

from engine import definitions, timers
from engine.batch_start import StartItem, start_many
from engine.models import AuditEvent, Incident, ProcessInstance
from engine.runtime import Runtime
from tests.engine.support import count, other_process

TICK = timedelta(microseconds=1)
DUE_XML = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="due_at" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDate>due</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="after"/>
    <bpmn:scriptTask id="after"><bpmn:script>result = 10 / divisor</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="c" sourceRef="after" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def _waiting(rt: Runtime, offsets: list[timedelta], divisor: int = 1) -> list[str]:
    definitions.deploy(rt, DUE_XML, "admin")
    now = rt.clock.now()
    started = start_many(rt, actor="t", key="due_at", items=[
        StartItem({"due": (now + offset).isoformat(), "divisor": divisor}) for offset in offsets])
    return [row.id for row in started]


def _fired(rt: Runtime) -> Counter:
    with rt.db.session() as s:
        return Counter(s.scalars(select(AuditEvent.instance_id).where(AuditEvent.action == "timer.fired")))


def _status(rt: Runtime, iid: str) -> str:
    with rt.db.session() as s:
        return s.scalar(select(ProcessInstance.status).where(ProcessInstance.id == iid))


def test_each_timer_fires_at_its_deadline_and_not_before(rt, clock):
    minute = timedelta(minutes=1)
    first, second, third = _waiting(rt, [minute, 2 * minute, 3 * minute])
    clock.advance(minute)
    assert timers.fire_batch(rt, 10) == (0, 0)  # at the deadline itself: SpiffWorkflow fires strictly after
    clock.advance(TICK)
    assert timers.fire_batch(rt, 10) == (1, 1)
    assert [_status(rt, i) for i in (first, second, third)] == ["completed", "running", "running"]
    clock.advance(2 * minute)
    assert timers.fire_batch(rt, 10) == (2, 2)
    assert _fired(rt) == {first: 1, second: 1, third: 1}


def test_a_batch_takes_at_most_its_limit_earliest_first(rt, clock):
    ids = _waiting(rt, [timedelta(seconds=s) for s in (5, 1, 4, 2, 3)])
    clock.advance(timedelta(seconds=10))
    assert timers.fire_batch(rt, 2) == (2, 2)
    assert set(_fired(rt)) == {ids[1], ids[3]}
    assert timers.fire_batch(rt, 10) == (3, 3)
    assert timers.fire_batch(rt, 10) == (0, 0)


def test_a_batch_skips_instances_another_transaction_holds(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    ids = _waiting(rt, [timedelta(seconds=s) for s in range(1, 7)])
    clock.advance(timedelta(minutes=1))
    held = ids[:3]
    with pg.engine.connect() as other:  # another scheduler (or a user's change) in the middle of its own
        other.execute(text("SELECT id FROM process_instance WHERE id = ANY(:ids) FOR UPDATE"), {"ids": held})
        assert timers.fire_batch(rt, 10) == (3, 3)  # the others, without waiting for the held ones
        other.rollback()
    assert set(_fired(rt)) == set(ids[3:])
    assert timers.fire_batch(rt, 10) == (3, 3)
    assert _fired(rt) == dict.fromkeys(ids, 1)


def test_two_schedulers_firing_batches_at_once_fire_every_timer_exactly_once(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    ids = []
    for _ in range(3):
        ids += _waiting(rt, [timedelta(milliseconds=i) for i in range(1, 81)])
    clock.advance(timedelta(minutes=1))
    taken: dict[str, int] = {}
    gate = threading.Barrier(2)
    errors: list[BaseException] = []

    def scheduler(name: str, other: Runtime) -> None:
        try:
            gate.wait(10)
            total = 0
            while (batch := timers.fire_batch(other, 7))[1]:
                total += batch[1]
            taken[name] = total
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    with other_process(rt) as a, other_process(rt) as b:
        threads = [threading.Thread(target=scheduler, args=(n, r)) for n, r in (("a", a), ("b", b))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert not errors
    assert _fired(rt) == dict.fromkeys(ids, 1)  # none twice, none lost
    assert taken["a"] + taken["b"] == len(ids)  # a row one batch held was never taken by the other too
    assert {_status(rt, i) for i in ids} == {"completed"}


def test_a_failing_instance_is_parked_and_the_rest_of_its_batch_fires(rt, clock):
    good = _waiting(rt, [timedelta(seconds=1), timedelta(seconds=3)])
    bad = _waiting(rt, [timedelta(seconds=2)], divisor=0)[0]  # its script divides by zero after the timer
    clock.advance(timedelta(minutes=1))
    fired, taken = timers.fire_batch(rt, 10)
    assert (fired, taken) == (2, 3)  # the batch rolled back and its instances fired one by one
    assert _fired(rt) == dict.fromkeys(good, 1)
    assert count(rt, Incident, Incident.instance_id == bad, Incident.status == "open") == 1
    assert _status(rt, bad) == "running"
    assert timers.fire_batch(rt, 10) == (0, 0)  # parked: no longer due
