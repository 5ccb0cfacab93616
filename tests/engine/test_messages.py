"""Messages: correlation by index lookup, buffering before the subscription exists, TTL expiry,
and idempotence by message id."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, instances, messages
from engine.errors import EngineError, InvalidInput
from engine.models import Message, ProcessInstance
from engine.runtime import Runtime
from tests.conftest import reference_operations
from tests.engine.builders import correlated_wait, end, message_header, process, receive, seq, start, user
from tests.engine.support import actions, count, open_task, run_together, start_reference, to_feedback


def _message(rt, message_id: str = "m1", value: str = "C-1", **kw):
    return messages.correlate(rt, name="feedback", message_id=message_id, actor="enforcement",
                              correlation_value=value, payload={"result": "fined"}, **kw)


def _status(rt, message_id: str) -> str:
    with rt.db.session() as s:
        return s.get(Message, message_id).status


def test_message_for_a_waiting_instance_is_delivered_into_the_message_variable(rt):
    iid = start_reference(rt)
    to_feedback(rt, iid)
    got = _message(rt)
    assert (got.status, got.instance_id, got.duplicate) == ("delivered", iid, False)
    assert instances.variables(rt, iid)["feedback"]["result"] == "fined"
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["verify"]
    assert instances.subscriptions(rt, iid) == []


def test_message_arriving_before_the_subscription_is_buffered_then_delivered(rt):
    iid = start_reference(rt)
    early = _message(rt)
    assert (early.status, early.instance_id) == ("buffered", None)
    assert _status(rt, "m1") == "buffered"
    to_feedback(rt, iid)  # the push job completes; wait_feedback subscribes and takes the buffered message
    assert _status(rt, "m1") == "delivered"
    assert instances.variables(rt, iid)["feedback"]["result"] == "fined"
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["verify"]
    assert instances.subscriptions(rt, iid) == []
    assert "message.delivered" in actions(rt, iid)


def test_repeated_message_id_is_a_no_op(rt):
    iid = start_reference(rt)
    to_feedback(rt, iid)
    _message(rt)
    revision = instances.get(rt, iid).revision
    again = _message(rt)
    assert (again.duplicate, again.status, again.instance_id) == (True, "delivered", iid)
    assert instances.get(rt, iid).revision == revision
    assert actions(rt, iid).count("message.correlated") == 1
    assert count(rt, Message) == 1


def _two_waits() -> str:
    """start → wait1 → wait2 (both for message `ping`, by instance id) → done (user) → end."""
    return process("pings", start(), receive("wait1", "ping", "first"), receive("wait2", "ping", "second"),
                   user("done"), end(), seq("start", "wait1", "wait2", "done", "end"),
                   lanes={"clerk": ["done"]}, header=message_header("ping"))


def test_repeated_message_id_does_not_advance_the_process_a_second_time(rt):
    definitions.deploy(rt, _two_waits(), "admin")
    iid = instances.start(rt, actor="u", key="pings").instance.id
    ping = {"name": "ping", "actor": "sender", "instance_id": iid}
    assert messages.correlate(rt, message_id="p1", payload={"n": 1}, **ping).status == "delivered"
    assert messages.correlate(rt, message_id="p1", payload={"n": 1}, **ping).duplicate is True
    assert instances.open_tasks(rt, iid) == []  # still at wait2
    assert [s.message_name for s in instances.subscriptions(rt, iid)] == ["ping"]
    assert messages.correlate(rt, message_id="p2", payload={"n": 2}, **ping).status == "delivered"
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["done"]
    assert {k: v for k, v in instances.variables(rt, iid).items() if k in ("first", "second")} == {
        "first": {"n": 1}, "second": {"n": 2}}


def test_repeated_id_of_a_buffered_message_stays_one_buffered_message(rt):
    assert _message(rt).status == "buffered"
    again = _message(rt)
    assert (again.duplicate, again.status) == (True, "buffered")
    assert count(rt, Message) == 1 and actions(rt).count("message.buffered") == 1


def test_expired_buffered_message_is_never_delivered(rt, clock):
    iid = start_reference(rt)
    _message(rt, ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=1, seconds=1))
    assert messages.expire(rt) == 1
    assert _status(rt, "m1") == "expired"
    to_feedback(rt, iid)
    assert [(s.message_name, s.correlation_value) for s in instances.subscriptions(rt, iid)] == [("feedback", "C-1")]
    assert instances.open_tasks(rt, iid) == [] and "feedback" not in instances.variables(rt, iid)
    assert _status(rt, "m1") == "expired"


def test_buffered_message_past_its_ttl_is_not_delivered_even_before_expire_runs(rt, clock):
    iid = start_reference(rt)
    _message(rt, ttl=timedelta(minutes=10))
    clock.advance(timedelta(minutes=11))
    to_feedback(rt, iid)
    assert _status(rt, "m1") == "expired"
    assert instances.open_tasks(rt, iid) == [] and len(instances.subscriptions(rt, iid)) == 1


def test_expire_leaves_messages_within_their_ttl_alone(rt, clock):
    _message(rt, ttl=timedelta(hours=1))
    clock.advance(timedelta(minutes=59))
    assert messages.expire(rt) == 0 and _status(rt, "m1") == "buffered"


def test_message_with_another_correlation_value_stays_buffered(rt):
    iid = start_reference(rt)
    to_feedback(rt, iid)
    other = _message(rt, value="C-2")
    assert (other.status, other.instance_id) == ("buffered", None)
    assert _status(rt, "m1") == "buffered"
    assert instances.open_tasks(rt, iid) == []
    assert len(instances.subscriptions(rt, iid)) == 1
    assert _message(rt, "m2").status == "delivered"  # the right value still gets through
    assert _status(rt, "m1") == "buffered"
    assert open_task(rt, iid, "verify")


def test_correlate_needs_exactly_one_of_value_and_instance(rt):
    with pytest.raises(InvalidInput):
        messages.correlate(rt, name="feedback", message_id="m", actor="a")
    with pytest.raises(InvalidInput):
        messages.correlate(rt, name="feedback", message_id="m", actor="a", correlation_value="C-1", instance_id="x")
    assert count(rt, Message) == 0


def test_message_correlated_on_a_process_variable_reaches_the_instance_with_that_value(rt):
    definitions.deploy(rt, correlated_wait(), "admin")
    one = instances.start(rt, actor="u", key="replies", variables={"case_id": "K1"}).instance.id
    two = instances.start(rt, actor="u", key="replies", variables={"case_id": "K2"}).instance.id
    got = messages.correlate(rt, name="reply", message_id="r1", actor="x", correlation_value="K2",
                             payload={"ok": True})
    assert got.instance_id == two
    assert instances.variables(rt, two)["reply"]["ok"] is True
    assert instances.open_tasks(rt, one) == [] and [s.correlation_value for s in instances.subscriptions(rt, one)] == [
        "K1"]


def test_second_instance_waiting_for_the_same_correlation_gets_an_engine_error(rt):
    definitions.deploy(rt, correlated_wait(), "admin")
    instances.start(rt, actor="u", key="replies", variables={"case_id": "K1"})
    with pytest.raises(EngineError) as info:
        instances.start(rt, actor="u", key="replies", variables={"case_id": "K1"})
    assert info.value.details.get("element") == "wait_reply"
    assert count(rt, ProcessInstance) == 1


@pytest.fixture
def pg_rt(pg, clock) -> Runtime:
    runtime = Runtime(db=pg, clock=clock)
    reference_operations(runtime)
    return runtime


def test_the_same_message_sent_concurrently_is_delivered_once(pg_rt):
    iid = start_reference(pg_rt)
    to_feedback(pg_rt, iid)
    results = run_together([lambda: _message(pg_rt) for _ in range(4)])
    assert all(kind == "ok" for kind, _ in results), results
    assert sorted(r.duplicate for _, r in results) == [False, True, True, True]
    assert {r.status for _, r in results} == {"delivered"}
    assert actions(pg_rt, iid).count("message.correlated") == 1
    assert [t.element_id for t in instances.open_tasks(pg_rt, iid)] == ["verify"]
    assert count(pg_rt, Message) == 1
