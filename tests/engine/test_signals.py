"""Signals: a thrown signal reaches every instance of the thrower's city (tenant) that waits for it
when it is thrown — signal catch events and boundary signal events — after commit, from the outbox;
not an instance of another city, not one that starts waiting later, and never one twice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, incidents, instances, outbox
from engine.models import Incident, OutboxEntry, SignalDelivery, SignalSubscription
from engine.queues import ManualJobQueue, run_job
from tests.engine.builders import end, seq, start, user
from tests.engine.collaboration import alarm, guarded, listener, looping_listener, signal_process
from tests.engine.support import actions, complete, count, other_process
from workflows.tenants import tenant_prefix

HERE, THERE = "320703001000001", "320506001000002"  # grids of two cities: 3207 (连云港) and 3205 (苏州)


@pytest.fixture
def city_rt(rt):
    rt.tenant_of = tenant_prefix
    return rt


def _listening(rt, scope: str | None, *, waiting: bool = True, key: str = "listener") -> str:
    iid = instances.start(rt, actor="clerk", key=key, scope=scope).instance.id
    if waiting:
        complete(rt, iid, "prepare")
    return iid


def _guarding(rt, scope: str | None) -> str:
    return instances.start(rt, actor="clerk", key="guarded", scope=scope).instance.id


def _throw(rt, scope: str | None, level: int = 2) -> str:
    return instances.start(rt, actor="sensor", key="alarm", scope=scope, variables={"level": level}).instance.id


def _elements(rt, instance_id: str) -> list[str]:
    return sorted(t.element_id for t in instances.open_tasks(rt, instance_id))


def _deploy(rt, *, interrupting: bool = True) -> None:
    for xml in (alarm(), listener(), guarded(interrupting)):
        definitions.deploy(rt, xml, "admin")


def test_a_signal_reaches_every_waiting_instance_of_the_city_and_no_other(city_rt):
    rt = city_rt
    _deploy(rt)
    listeners = [_listening(rt, HERE) for _ in range(4)]
    guards = [_guarding(rt, HERE) for _ in range(2)]
    elsewhere = _listening(rt, THERE)
    unscoped = _listening(rt, None)
    later = _listening(rt, HERE, waiting=False)
    sender = _throw(rt, "320703002000003")
    assert instances.get(rt, sender).status == "completed"
    assert all(_elements(rt, iid) == [] for iid in listeners)  # nothing before the outbox is relayed
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 1
    jobs.run_all()
    for iid in listeners:
        assert _elements(rt, iid) == ["after"]
        assert instances.variables(rt, iid)["alert"] == {"level": 2}
        assert actions(rt, iid).count("signal.received") == 1
    for iid in guards:
        assert _elements(rt, iid) == ["stopped"]  # the interrupting boundary event took the work away
    assert _elements(rt, elsewhere) == [] and _elements(rt, unscoped) == []  # still waiting at `heard`
    assert count(rt, SignalSubscription, SignalSubscription.instance_id.in_([elsewhere, unscoped])) == 2
    complete(rt, later, "prepare")  # it starts waiting after the throw: signals are not kept
    assert _elements(rt, later) == []
    assert count(rt, SignalSubscription, SignalSubscription.instance_id == later) == 1
    assert count(rt, SignalDelivery) == 6
    assert "signal.thrown" in actions(rt, sender)


def test_a_signal_thrown_without_a_scope_reaches_only_instances_without_one(city_rt):
    rt = city_rt
    _deploy(rt)
    scoped, unscoped = _listening(rt, HERE), _listening(rt, None)
    _throw(rt, None)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert (_elements(rt, scoped), _elements(rt, unscoped)) == ([], ["after"])


def test_an_instance_waiting_again_after_a_signal_is_not_reached_by_a_second_run_of_the_job(city_rt):
    rt = city_rt
    _deploy(rt)
    definitions.deploy(rt, looping_listener(), "admin")
    looping = instances.start(rt, actor="clerk", key="looping", scope=HERE).instance.id
    _throw(rt, HERE, level=1)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    ((_queue, job, payload),) = jobs.pending
    run_job(rt, job, payload)
    assert actions(rt, looping).count("signal.received") == 1
    assert count(rt, SignalSubscription, SignalSubscription.instance_id == looping) == 1  # waiting again, same instant
    revision = instances.get(rt, looping).revision
    run_job(rt, job, payload)  # RQ handed the same row out again
    assert instances.get(rt, looping).revision == revision
    assert actions(rt, looping).count("signal.received") == 1
    assert count(rt, OutboxEntry, OutboxEntry.done_at.is_(None)) == 0
    _throw(rt, HERE, level=9)  # a new signal reaches it, and this one lets it go on
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert _elements(rt, looping) == ["after"]
    assert instances.variables(rt, looping)["alert"] == {"level": 9}


def test_a_non_interrupting_boundary_signal_starts_its_path_and_the_work_goes_on(city_rt):
    rt = city_rt
    _deploy(rt, interrupting=False)
    guard = _guarding(rt, HERE)
    _throw(rt, HERE)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert _elements(rt, guard) == ["stopped", "work"]
    assert count(rt, SignalSubscription, SignalSubscription.instance_id == guard) == 0  # SpiffWorkflow: once


def test_a_receiver_that_fails_on_the_signal_gets_an_incident_and_the_others_go_on(city_rt):
    rt = city_rt
    _deploy(rt)
    definitions.deploy(rt, listener("fragile", then="ratio = 1 / (alert['level'] - 2)"), "admin")
    fragile = _listening(rt, HERE, key="fragile")
    steady = _listening(rt, HERE)
    _throw(rt, HERE, level=2)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert _elements(rt, steady) == ["after"]
    assert _elements(rt, fragile) == []  # its change rolled back: it still waits, nothing recorded
    assert count(rt, SignalDelivery, SignalDelivery.instance_id == fragile) == 0
    (incident,), _total = incidents.query(rt)
    assert (incident.kind, incident.instance_id) == ("job", fragile)
    assert "signal 'alert' could not be delivered" in incident.message
    assert incident.payload["payload"]["to"] == fragile  # a retry is for this instance alone
    incidents.retry(rt, incident.id, "admin")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()  # it fails the same way: a new incident, the steady one untouched
    assert count(rt, Incident, Incident.status == "open") == 1
    assert actions(rt, steady).count("signal.received") == 1


def test_a_signal_survives_a_crash_between_commit_and_broadcast(city_rt, clock):
    rt = city_rt
    _deploy(rt)
    waiting = _listening(rt, HERE)
    _throw(rt, HERE)
    assert outbox.relay(rt, ManualJobQueue(rt)) == 1  # the worker that took it dies
    with other_process(rt) as restarted:
        restarted.tenant_of = tenant_prefix
        clock.advance(rt.job_lease + timedelta(seconds=1))
        outbox.sweep_expired_leases(restarted, rt.job_lease)
        jobs = ManualJobQueue(restarted)
        assert outbox.relay(restarted, jobs) == 1
        jobs.run_all()
    assert _elements(rt, waiting) == ["after"]


def test_cancelling_a_waiting_instance_drops_its_signal_subscription(city_rt):
    rt = city_rt
    _deploy(rt)
    waiting = _listening(rt, HERE)
    assert count(rt, SignalSubscription) == 1
    instances.cancel(rt, waiting, "admin")
    assert count(rt, SignalSubscription) == 0
    _throw(rt, HERE)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert actions(rt, waiting).count("signal.received") == 0


def test_city_of_a_scope():
    assert tenant_prefix("320703001000001") == "3207"
    assert tenant_prefix("3207") == "3207"
    assert tenant_prefix("32") == "32"
    assert tenant_prefix(None) is None


def test_a_signal_reaches_its_own_instance_at_once_and_only_once(city_rt):
    rt = city_rt
    _deploy(rt)
    both = signal_process("both", [
        start(), '<bpmn:parallelGateway id="fork"/>', '<bpmn:parallelGateway id="join"/>',
        '<bpmn:intermediateCatchEvent id="heard"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
        "</bpmn:intermediateCatchEvent>",
        '<bpmn:intermediateThrowEvent id="raise"><bpmn:signalEventDefinition signalRef="sig_alert"/>'
        "</bpmn:intermediateThrowEvent>", user("after"), end(),
        seq("start", "fork", "heard", "join"), seq("fork", "raise", "join"), seq("join", "after", "end")],
        lanes={"clerk": ["after"]})
    definitions.deploy(rt, both, "admin")
    other = _listening(rt, HERE)
    own = instances.start(rt, actor="clerk", key="both", scope=HERE, variables={"level": 4}).instance.id
    assert _elements(rt, own) == ["after"]  # caught inside the instance in the same change
    assert instances.variables(rt, own)["alert"] == {"level": 4}
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert _elements(rt, other) == ["after"]
    assert actions(rt, own).count("signal.received") == 0 and count(rt, SignalDelivery) == 1
