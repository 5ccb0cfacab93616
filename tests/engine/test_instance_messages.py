"""Messages between instances: a message thrown by one instance reaches the instance waiting for it
through the same correlation index as a message from outside — after the sender's change commits,
from the outbox, at least once, de-duplicated by an id derived from the sending instance and task."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import definitions, incidents, instances, outbox
from engine.errors import ProcessError
from engine.models import Incident, Message, OutboxEntry
from engine.parsing import ModelError
from engine.queues import ManualJobQueue, run_job
from tests.engine.builders import HEAD
from tests.engine.collaboration import collaboration
from tests.engine.support import actions, complete, count, other_process


def _deploy(rt, *, throw: str = "event", prepare: bool = False) -> None:
    definitions.deploy(rt, collaboration("warehouse", prepare=prepare), "admin")
    definitions.deploy(rt, collaboration("order", throw=throw), "admin")


def _warehouse(rt, order_id: str = "O-1") -> str:
    return instances.start(rt, actor="clerk", key="warehouse", variables={"order_id": order_id}).instance.id


def _order(rt, order_id: str = "O-1", qty: int = 3) -> str:
    return instances.start(rt, actor="buyer", key="order", variables={"order_id": order_id, "qty": qty}).instance.id


def _elements(rt, instance_id: str) -> list[str]:
    return [t.element_id for t in instances.open_tasks(rt, instance_id)]


def _messages(rt) -> list[Message]:
    with rt.db.session() as s:
        return list(s.scalars(select(Message).order_by(Message.received_at, Message.id)))


@pytest.mark.parametrize("throw", ["event", "send_task", "end"])
def test_a_message_reaches_the_instance_already_waiting_for_it_once(rt, throw):
    _deploy(rt, throw=throw)
    receiver = _warehouse(rt)
    sender = _order(rt)
    assert instances.get(rt, sender).status == "completed"
    assert _elements(rt, receiver) == []  # nothing leaves before the outbox is relayed
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 1
    jobs.run_all()
    assert _elements(rt, receiver) == ["check"]
    assert instances.variables(rt, receiver)["shipment"] == {"order_id": "O-1", "qty": 3}
    (message,) = _messages(rt)
    assert (message.status, message.instance_id, message.sender) == ("delivered", receiver, f"instance:{sender}")
    assert message.id.startswith(f"instance:{sender}:")
    assert actions(rt, receiver).count("message.correlated") == 1
    assert "message.sent" in actions(rt, sender)


def test_a_message_for_an_instance_not_waiting_yet_is_buffered_then_delivered_once(rt):
    _deploy(rt, prepare=True)
    receiver = _warehouse(rt)
    _order(rt)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    (message,) = _messages(rt)
    assert (message.status, message.instance_id) == ("buffered", None)
    assert _elements(rt, receiver) == ["prepare"]
    complete(rt, receiver, "prepare")  # now it waits, and takes the buffered message in the same change
    assert _elements(rt, receiver) == ["check"]
    assert instances.variables(rt, receiver)["shipment"]["qty"] == 3
    assert [m.status for m in _messages(rt)] == ["delivered"]
    assert actions(rt, receiver).count("message.delivered") == 1
    assert instances.subscriptions(rt, receiver) == []


def test_a_delivery_job_run_twice_delivers_once(rt):
    _deploy(rt)
    receiver = _warehouse(rt)
    _order(rt)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    ((_queue, job, payload),) = jobs.pending
    run_job(rt, job, payload)
    revision = instances.get(rt, receiver).revision
    run_job(rt, job, payload)  # RQ handed the same row out again
    assert instances.get(rt, receiver).revision == revision
    assert count(rt, Message) == 1
    assert actions(rt, receiver).count("message.correlated") == 1
    assert count(rt, OutboxEntry, OutboxEntry.done_at.is_(None)) == 0


def test_two_senders_reach_their_own_receivers_by_correlation(rt):
    _deploy(rt)
    first, second = _warehouse(rt, "O-1"), _warehouse(rt, "O-2")
    _order(rt, "O-2", qty=7)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert (_elements(rt, first), _elements(rt, second)) == ([], ["check"])
    assert instances.variables(rt, second)["shipment"]["qty"] == 7


def test_a_sender_whose_change_rolls_back_sends_nothing(rt):
    _deploy(rt)
    _warehouse(rt)
    with pytest.raises(ProcessError):  # qty is missing: the payload expression fails, nothing is saved
        instances.start(rt, actor="buyer", key="order", variables={"order_id": "O-1"})
    assert count(rt, OutboxEntry) == 0
    assert outbox.relay(rt, ManualJobQueue(rt)) == 0


def test_a_crash_between_commit_and_delivery_is_delivered_by_the_next_worker(rt, clock):
    _deploy(rt)
    receiver = _warehouse(rt)
    _order(rt)
    lost = ManualJobQueue(rt)
    assert outbox.relay(rt, lost) == 1  # handed to a worker that dies with it: never run
    assert _elements(rt, receiver) == []
    with other_process(rt) as restarted:  # a new scheduler and worker: the outbox row is still there
        clock.advance(rt.job_lease + timedelta(seconds=1))
        assert outbox.sweep_expired_leases(restarted, rt.job_lease) == 1
        jobs = ManualJobQueue(restarted)
        assert outbox.relay(restarted, jobs) == 1
        jobs.run_all()
    assert _elements(rt, receiver) == ["check"]
    assert count(rt, OutboxEntry, OutboxEntry.done_at.is_(None)) == 0
    assert actions(rt, receiver).count("message.correlated") == 1


def test_a_message_for_a_receiver_that_stopped_waiting_is_kept_for_the_next_one(rt):
    _deploy(rt)
    receiver = _warehouse(rt)
    _order(rt)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    instances.cancel(rt, receiver, "admin")  # cancelled between the send and the delivery
    jobs.run_all()
    (message,) = _messages(rt)
    assert message.status == "buffered"
    assert count(rt, Incident) == 0
    again = _warehouse(rt)  # the next instance waiting for O-1 takes it
    assert _elements(rt, again) == ["check"]


def test_a_thrown_message_without_correlation_properties_is_refused_at_deploy(rt):
    xml = (HEAD.format(key="lonely") + '<bpmn:message id="msg_x" name="x"/>'
           '<bpmn:process id="lonely" isExecutable="true"><bpmn:startEvent id="start"/>'
           '<bpmn:intermediateThrowEvent id="tell"><bpmn:messageEventDefinition messageRef="msg_x"/>'
           '</bpmn:intermediateThrowEvent><bpmn:endEvent id="end"/>'
           '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="tell"/>'
           '<bpmn:sequenceFlow id="f2" sourceRef="tell" targetRef="end"/></bpmn:process></bpmn:definitions>')
    with pytest.raises(ModelError) as refused:
        definitions.deploy(rt, xml, "admin")
    (problem,) = refused.value.problems
    assert problem.element_id == "tell" and "correlation" in problem.message


def test_a_receiver_that_fails_on_the_message_raises_an_incident_and_keeps_nothing(rt):
    definitions.deploy(rt, collaboration("warehouse", then="per_box = shipment['qty'] / (shipment['qty'] - 3)"),
                       "admin")
    definitions.deploy(rt, collaboration("order"), "admin")
    receiver = _warehouse(rt)
    _order(rt, qty=3)  # the receiver divides by zero on this shipment
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    ((_queue, job, payload),) = jobs.pending
    run_job(rt, job, payload)
    (incident,), _total = incidents.query(rt)
    assert (incident.kind, incident.instance_id) == ("job", payload["sender"])
    assert "could not be delivered" in incident.message and "divides by zero" in incident.message
    assert _elements(rt, receiver) == [] and count(rt, Message) == 0  # the delivery rolled back whole
    assert [s.message_name for s in instances.subscriptions(rt, receiver)] == ["shipped"]
    run_job(rt, job, payload)  # the same row handed out again: done with the incident, no second one
    assert count(rt, Incident) == 1
    incidents.retry(rt, incident.id, "admin")  # an operator retries: the same delivery runs again
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    ((_queue, job, retried),) = jobs.pending
    assert retried["message_id"] == payload["message_id"]
    run_job(rt, job, retried)
    assert count(rt, Incident, Incident.status == "open") == 1 and count(rt, Message) == 0
