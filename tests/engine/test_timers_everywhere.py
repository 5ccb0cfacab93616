"""Every timer SpiffWorkflow can wait on wakes the instance: the branches of an event-based gateway,
the timers of a multiple catch event, a boundary timer on a sub-process. And what would never fire
is refused at deploy."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import definitions, instances, messages, tasks, timers
from engine.parsing import ModelError
from tests.engine.builders import boundary_timer, end, flow, message_header, process, seq, start, user
from tests.engine.support import actions, other_process

HOUR = timedelta(hours=1)


def _catch(id_: str, *definitions_xml: str) -> str:
    inner = "".join(definitions_xml)
    return f'<bpmn:intermediateCatchEvent id="{id_}" name="{id_}">{inner}</bpmn:intermediateCatchEvent>'


def _timer(kind: str = "timeDuration", value: str = '"PT1H"') -> str:
    return f"<bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}></bpmn:timerEventDefinition>"


MESSAGE = '<bpmn:messageEventDefinition messageRef="msg_reply"/>'


def race(key: str = "race", *, timers_xml: tuple[str, ...] = (_timer(),)) -> str:
    """start → event-based gateway → (timer `late` → chase) | (message `reply` → read) [| more timers]."""
    extra = [(f"late{n + 2}", t) for n, t in enumerate(timers_xml[1:])]
    elements = [start(), '<bpmn:eventBasedGateway id="gw"/>', _catch("late", timers_xml[0]), _catch("reply", MESSAGE),
                user("chase"), user("read"), end("e_late"), end("e_reply"),
                seq("start", "gw"), flow("gw", "late"), flow("gw", "reply"),
                seq("late", "chase", "e_late"), seq("reply", "read", "e_reply")]
    for id_, t in extra:
        elements += [_catch(id_, t), user(f"t_{id_}"), end(f"e_{id_}"), flow("gw", id_),
                     seq(id_, f"t_{id_}", f"e_{id_}")]
    lanes = {"clerk": ["chase", "read", *(f"t_{id_}" for id_, _ in extra)]}
    return process(key, *elements, lanes=lanes, header=message_header("reply"))


def _start(rt, key: str = "race", xml: str | None = None) -> str:
    definitions.deploy(rt, xml or race(key), "admin")
    return instances.start(rt, actor="starter", key=key).instance.id


def _open(rt, iid: str) -> list[str]:
    return sorted(t.element_id for t in instances.open_tasks(rt, iid))


def _reply(rt, iid: str, message_id: str = "m1"):
    return messages.correlate(rt, name="reply", message_id=message_id, actor="system", instance_id=iid,
                              payload={"text": "on my way"})


def _fired(rt, iid: str) -> list[list[str]]:
    return [e.details["elements"] for e in instances.history(rt, iid) if e.action == "timer.fired"]


# -- event-based gateway ---------------------------------------------------------------------------

def test_event_based_gateway_waits_with_its_timer_as_next_wakeup(rt, clock):
    iid = _start(rt)
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + HOUR
    assert [s.message_name for s in instances.subscriptions(rt, iid)] == ["reply"]


def test_event_based_gateway_timer_wins_takes_only_the_timer_branch(rt, clock):
    iid = _start(rt)
    clock.advance(HOUR + timedelta(seconds=1))
    assert timers.fire_due(rt) == 1
    assert _open(rt, iid) == ["chase"]
    assert _fired(rt, iid) == [["late"]]
    row = instances.get(rt, iid)
    assert row.next_wakeup_at is None
    assert instances.subscriptions(rt, iid) == []  # the message branch is gone with its subscription
    late = _reply(rt, iid)
    assert late.status == "buffered"  # nobody waits for it any more
    assert _open(rt, iid) == ["chase"]


def test_event_based_gateway_message_wins_and_the_timer_never_fires(rt, clock):
    iid = _start(rt)
    clock.advance(HOUR / 2)
    assert _reply(rt, iid).status == "delivered"
    assert _open(rt, iid) == ["read"]
    assert instances.get(rt, iid).next_wakeup_at is None
    clock.advance(2 * HOUR)
    assert timers.fire_due(rt) == 0
    assert timers.fire_instance(rt, iid) == []
    assert _open(rt, iid) == ["read"] and _fired(rt, iid) == []


def test_event_based_gateway_before_its_deadline_fires_nothing(rt, clock):
    iid = _start(rt)
    clock.advance(HOUR)  # exactly the deadline: SpiffWorkflow fires only once it has passed
    assert timers.fire_instance(rt, iid) == []
    assert _open(rt, iid) == [] and instances.get(rt, iid).next_wakeup_at is not None


def test_message_after_the_deadline_but_before_the_scheduler_takes_one_branch_only(rt, clock):
    """The scheduler was late: the message is caught with the timer already due. One event wins."""
    iid = _start(rt)
    clock.advance(2 * HOUR)
    assert _reply(rt, iid).status == "delivered"
    assert _open(rt, iid) == ["read"]
    assert instances.get(rt, iid).status == "running" and instances.get(rt, iid).next_wakeup_at is None
    assert timers.fire_due(rt) == 0


def test_event_based_gateway_survives_a_restart_and_the_timer_still_wins(rt, clock):
    iid = _start(rt)
    with other_process(rt) as fresh:  # empty spec cache, state read from the database
        clock.advance(HOUR + timedelta(seconds=1))
        assert timers.fire_due(fresh) == 1
    assert _open(rt, iid) == ["chase"]
    (chase,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, chase.id, "clerk1", {})
    assert instances.get(rt, iid).status == "completed"


def test_two_timers_on_one_gateway_each_keep_their_own_deadline(rt, clock):
    xml = race("race2", timers_xml=(_timer(value='"PT2H"'), _timer(value='"PT1H"')))
    iid = _start(rt, "race2", xml)
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + HOUR  # the earlier one, not the first
    clock.advance(HOUR + timedelta(seconds=1))
    assert timers.fire_due(rt) == 1
    assert _open(rt, iid) == ["t_late2"]  # only the timer that fell due: not both
    assert _fired(rt, iid) == [["late2"]]


def test_two_schedulers_fire_a_gateway_timer_once(rt, clock):
    iid = _start(rt)
    clock.advance(HOUR + timedelta(seconds=1))
    with other_process(rt) as other:
        results = [timers.fire_instance(rt, iid), timers.fire_instance(other, iid)]
    assert sorted(map(len, results)) == [0, 1]
    assert _open(rt, iid) == ["chase"] and actions(rt, iid).count("timer.fired") == 1


# -- multiple catch event, boundary timer on a sub-process ------------------------------------------

def _multiple(key: str = "multi") -> str:
    return process(key, start(), _catch("wait", MESSAGE, _timer()), user("next"), end(),
                   seq("start", "wait", "next", "end"), lanes={"clerk": ["next"]}, header=message_header("reply"))


def test_multiple_catch_event_wakes_on_its_timer(rt, clock):
    iid = _start(rt, "multi", _multiple())
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + HOUR
    clock.advance(HOUR + timedelta(seconds=1))
    assert timers.fire_due(rt) == 1
    assert _open(rt, iid) == ["next"] and _fired(rt, iid) == [["wait"]]
    assert instances.subscriptions(rt, iid) == []


def test_multiple_catch_event_taken_by_its_message_drops_the_timer(rt, clock):
    iid = _start(rt, "multi", _multiple())
    assert _reply(rt, iid).status == "delivered"
    assert _open(rt, iid) == ["next"] and instances.get(rt, iid).next_wakeup_at is None


def _sub_process_with_boundary(key: str = "subtimer") -> str:
    sub = ('<bpmn:subProcess id="sub"><bpmn:startEvent id="s_start"/><bpmn:userTask id="inner"/>'
           '<bpmn:endEvent id="s_end"/>' + seq("s_start", "inner", "s_end") + "</bpmn:subProcess>")
    return process(key, start(), sub, boundary_timer("too_long", "sub", "timeDuration", '"PT1H"'), user("escalate"),
                   end(), end("late_end"), seq("start", "sub", "end"), seq("too_long", "escalate", "late_end"),
                   lanes={"clerk": ["inner", "escalate"]})


def test_boundary_timer_on_a_sub_process_interrupts_it(rt, clock):
    iid = _start(rt, "subtimer", _sub_process_with_boundary())
    assert _open(rt, iid) == ["inner"]
    assert instances.get(rt, iid).next_wakeup_at == clock.now() + HOUR
    clock.advance(HOUR + timedelta(seconds=1))
    assert timers.fire_due(rt) == 1
    assert _open(rt, iid) == ["escalate"]  # the task inside was cancelled with its sub-process
    assert _fired(rt, iid) == [["too_long"]]


def test_sub_process_finished_in_time_drops_its_boundary_timer(rt, clock):
    iid = _start(rt, "subtimer", _sub_process_with_boundary())
    (inner,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, inner.id, "clerk1", {})
    row = instances.get(rt, iid)
    assert row.status == "completed" and row.next_wakeup_at is None


# -- refused at deploy -----------------------------------------------------------------------------

def _problems(rt, xml: str) -> dict[str | None, str]:
    with pytest.raises(ModelError) as exc:
        definitions.deploy(rt, xml, "admin")
    return {p.element_id: p.message for p in exc.value.problems}


def test_cycle_timer_on_an_event_based_gateway_is_refused(rt):
    problems = _problems(rt, race("cyc", timers_xml=(_timer("timeCycle", '"R3/PT1H"'),)))
    assert "cycle timer" in problems["gw"]


def test_two_timers_of_one_name_on_a_gateway_are_refused(rt):
    def same_name(value: str) -> str:
        return _timer(value=value)
    xml = race("dup", timers_xml=(same_name('"PT1H"'), same_name('"PT2H"'))).replace('name="late2"', 'name="late"')
    assert "same kind and name" in _problems(rt, xml)["gw"]
