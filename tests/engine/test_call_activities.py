"""Call activities: the child is an instance of its own, started in the caller's change, reporting
back through the outbox; cancelling the caller cancels what it called; boundary events on the call
activity catch a child's error and interrupt it on a timer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from SpiffWorkflow.util.task import TaskState

from engine import bundles, calls, definitions, instances, outbox
from engine.bundles import BundleFile
from engine.errors import Conflict, ProcessError
from engine.models import HumanTask, Incident, ProcessInstance
from engine.parsing import ModelError
from engine.queues import ManualJobQueue
from engine.scheduler import Scheduler
from tests.engine.builders import boundary_timer, end, process, script, seq, start, user
from tests.engine.calling import (
    ERROR_HEADER,
    call,
    child,
    deploy_chain,
    error_boundary,
    error_end,
    grandchild,
    only_child,
    parent,
    settle,
    status,
)
from tests.engine.support import actions, complete, count, other_process, task_state

HOUR = timedelta(hours=1)


def _start_parent(rt, **variables) -> str:
    return instances.start(rt, actor="starter", key="parent", variables=variables).instance.id


def test_a_chain_of_calls_survives_a_restart_while_the_parent_waits(rt):
    deploy_chain(rt)
    pid = _start_parent(rt, case="C-1")
    cid = only_child(rt, pid).id
    gid = only_child(rt, cid).id
    assert [status(rt, i) for i in (pid, cid, gid)] == ["running"] * 3
    assert task_state(rt, pid, "call_child") == TaskState.STARTED
    grand = instances.get(rt, gid)
    assert (grand.parent_instance_id, grand.parent_element_id, grand.call_depth) == (cid, "call_grandchild", 2)
    assert instances.get(rt, gid).started_by == "starter"  # tasks outside lanes go to the root's starter
    assert instances.variables(rt, gid)["case"] == "C-1"  # all of the caller's data goes in

    with other_process(rt) as restarted:  # a new process over the same database: nothing in memory
        complete(restarted, gid, "fill", "starter", {"note": "filled"})
        assert status(restarted, gid) == "completed"
        assert status(restarted, cid) == "running"  # the return is a job after commit
        settle(restarted)
        assert [status(restarted, i) for i in (gid, cid)] == ["completed", "completed"]
        assert [t.element_id for t in instances.open_tasks(restarted, pid)] == ["after"]
        data = instances.variables(restarted, pid)
        assert (data["depth"], data["note"], data["child_done"], data["case"]) == (2, "filled", True, "C-1")
    assert "call.completed" in actions(rt, pid)
    assert actions(rt, gid)[0] == "instance.started"  # each its own audit chain


def test_a_return_taken_twice_completes_the_call_once(rt):
    deploy_chain(rt)
    pid = _start_parent(rt)
    gid = only_child(rt, only_child(rt, pid).id).id
    complete(rt, gid, "fill", "starter")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    (entry,) = jobs.pending
    payload = {**entry[2], "outbox_id": None}
    calls.child_returned(rt, payload)
    revision = instances.get(rt, only_child(rt, pid).id).revision
    calls.child_returned(rt, payload)  # at least once: the repeat finds the return taken
    assert instances.get(rt, only_child(rt, pid).id).revision == revision
    assert actions(rt, only_child(rt, pid).id).count("call.completed") == 1


def test_a_child_that_ends_at_once_still_returns_after_commit(rt):
    definitions.deploy(rt, process("quick", start(), script("s", "answer = 42"), end(), seq("start", "s", "end")),
                       "admin")
    definitions.deploy(rt, parent(called="quick"), "admin")
    pid = _start_parent(rt)
    assert status(rt, only_child(rt, pid).id) == "completed"
    assert instances.open_tasks(rt, pid) == []
    settle(rt)
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["after"]
    assert instances.variables(rt, pid)["answer"] == 42


def test_a_child_timer_fires_on_the_scheduler_and_the_parent_goes_on(rt, clock):
    hour = ('<bpmn:intermediateCatchEvent id="hour"><bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"'
            "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>")
    definitions.deploy(rt, process("waits", start(), hour, end(), seq("start", "hour", "end")), "admin")
    definitions.deploy(rt, parent(called="waits"), "admin")
    pid = _start_parent(rt)
    cid = only_child(rt, pid).id
    assert instances.get(rt, cid).next_wakeup_at == clock.now() + HOUR  # the child's own timer
    assert instances.get(rt, pid).next_wakeup_at is None
    scheduler = Scheduler(rt, ManualJobQueue(rt))
    clock.advance(HOUR - timedelta(seconds=1))
    scheduler.tick()
    assert status(rt, cid) == "running"
    clock.advance(timedelta(seconds=2))
    scheduler.tick()  # fires the child's timer; the child ends and its return is in the outbox
    assert status(rt, cid) == "completed"
    scheduler.tick()
    scheduler.queue.run_all()
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["after"]


def _failing_child() -> str:
    return process("failing", start(), script("s", "reason = 'sensor gone'"), user("check"), error_end(),
                   seq("start", "s", "check", "fail"), header=ERROR_HEADER)


def _catching_parent() -> str:
    return parent(called="failing", header=ERROR_HEADER,
                  extra=error_boundary("caught", "call_child") + user("repair") + end("end2")
                  + seq("caught", "repair", "end2"))


def test_a_child_error_is_caught_by_the_boundary_event_on_the_call_activity(rt):
    definitions.deploy(rt, _failing_child(), "admin")
    definitions.deploy(rt, _catching_parent(), "admin")
    pid = _start_parent(rt)
    cid = only_child(rt, pid).id
    complete(rt, cid, "check", "starter")
    assert status(rt, cid) == "completed"
    settle(rt)
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["repair"]
    assert task_state(rt, pid, "call_child") == TaskState.CANCELLED
    history = actions(rt, pid)
    assert "call.event_caught" in history and "call.completed" not in history


def test_a_child_error_nothing_catches_lets_the_call_complete(rt):
    definitions.deploy(rt, _failing_child(), "admin")
    definitions.deploy(rt, parent(called="failing"), "admin")
    pid = _start_parent(rt)
    complete(rt, only_child(rt, pid).id, "check", "starter")
    settle(rt)
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["after"]  # as SpiffWorkflow does in memory
    assert "call.event_not_caught" in actions(rt, pid)


def test_cancelling_the_parent_cancels_the_whole_chain(rt):
    deploy_chain(rt)
    pid = _start_parent(rt)
    cid = only_child(rt, pid).id
    gid = only_child(rt, cid).id
    with pytest.raises(Conflict):
        instances.cancel(rt, cid, "admin")  # the parent waits for it: cancelled only through the parent
    assert status(rt, cid) == "running"
    instances.cancel(rt, pid, "admin", "wrong case")
    assert [status(rt, i) for i in (pid, cid, gid)] == ["cancelled"] * 3
    assert count(rt, HumanTask, HumanTask.instance_id == gid, HumanTask.status == "open") == 0
    assert "call.cancelled" in actions(rt, pid) and "call.cancelled" in actions(rt, cid)
    settle(rt)
    assert status(rt, pid) == "cancelled"  # nothing returns from a cancelled child


def test_a_timer_boundary_interrupting_the_call_cancels_the_child(rt, clock):
    deploy_chain(rt)
    definitions.deploy(rt, parent(extra=boundary_timer("too_long", "call_child", "timeDuration", '"PT2H"')
                                  + user("chase") + end("end2") + seq("too_long", "chase", "end2")), "admin")
    pid = _start_parent(rt)
    cid = only_child(rt, pid).id
    gid = only_child(rt, cid).id
    clock.advance(2 * HOUR + timedelta(seconds=1))
    Scheduler(rt, ManualJobQueue(rt)).tick()
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["chase"]
    assert [status(rt, i) for i in (cid, gid)] == ["cancelled", "cancelled"]


def test_a_call_that_cannot_start_fails_the_callers_step_and_saves_nothing(rt):
    deploy_chain(rt)
    child_def = definitions.latest(rt, "child")
    definitions.suspend(rt, child_def.id, "admin", "broken")
    with pytest.raises(ProcessError, match="suspended"):
        _start_parent(rt)
    assert count(rt, HumanTask) == 0 and count(rt, ProcessInstance) == 0  # neither the parent nor a child


def test_bindings_pick_latest_deployment_or_version(rt):
    definitions.deploy(rt, grandchild(), "admin")
    definitions.deploy(rt, child(), "admin")
    v2 = process("child", start(), script("enter", "depth = 100"), call("call_grandchild", "grandchild"), end(),
                 seq("start", "enter", "call_grandchild", "end"))
    definitions.deploy(rt, v2, "admin")
    for binding, version, expected in (("latest", None, 2), ("version", 1, 1)):
        xml = process(f"p_{binding}", start(), call("c", "child", binding, version), end(), seq("start", "c", "end"))
        definitions.deploy(rt, xml, "admin")
        iid = instances.start(rt, actor="starter", key=f"p_{binding}").instance.id
        assert definitions.get(rt, only_child(rt, iid).definition_id).version == expected


def test_deploy_refuses_a_call_to_a_process_nobody_deployed(rt):
    with pytest.raises(ModelError) as refused:
        definitions.deploy(rt, parent(called="nowhere"), "admin")
    assert refused.value.problems[0].element_id == "call_child"
    assert "nowhere" in refused.value.problems[0].message
    definitions.deploy(rt, grandchild(), "admin")
    with pytest.raises(ModelError, match="version 7"):
        definitions.deploy(rt, process("p", start(), call("c", "grandchild", "version", 7), end(),
                                       seq("start", "c", "end")), "admin")
    with pytest.raises(ModelError, match="one of latest"):
        definitions.deploy(rt, process("p", start(), call("c", "grandchild", "newest"), end(),
                                       seq("start", "c", "end")), "admin")
    assert count(rt, Incident) == 0


def test_binding_deployment_calls_the_version_deployed_with_the_caller(rt):
    caller = process("caller", start(), call("c", "grandchild", "deployment"), end(), seq("start", "c", "end"))
    with pytest.raises(ModelError, match="in this deployment"):
        bundles.deploy_bundle(rt, [BundleFile("caller.bpmn", caller.encode())], "admin")
    first = bundles.deploy_bundle(rt, [BundleFile("g.bpmn", grandchild().encode()),
                                       BundleFile("caller.bpmn", caller.encode())], "admin")
    v2 = grandchild().replace('name="grandchild"', 'name="grandchild, version 2"')
    definitions.deploy(rt, v2, "admin")
    assert definitions.latest(rt, "grandchild").version == 2
    iid = instances.start(rt, actor="starter", key="caller").instance.id
    called = only_child(rt, iid)
    assert called.definition_id == first.processes[0].definition.id  # version 1, deployed with the caller
    assert definitions.get(rt, called.definition_id).version == 1


ESCALATION_HEADER = '<bpmn:escalation id="esc_late" name="late" escalationCode="LATE"/>'


def test_a_child_escalation_reaches_a_non_interrupting_boundary_and_the_call_goes_on(rt):
    throw = ('<bpmn:intermediateThrowEvent id="tell"><bpmn:escalationEventDefinition escalationRef="esc_late"/>'
             "</bpmn:intermediateThrowEvent>")
    definitions.deploy(rt, process("late", start(), throw, user("work"), end(), seq("start", "tell", "work", "end"),
                                   header=ESCALATION_HEADER), "admin")
    boundary = ('<bpmn:boundaryEvent id="heard" attachedToRef="call_child" cancelActivity="false">'
                '<bpmn:escalationEventDefinition escalationRef="esc_late"/></bpmn:boundaryEvent>')
    definitions.deploy(rt, parent(called="late", header=ESCALATION_HEADER,
                                  extra=boundary + user("notice") + end("end2") + seq("heard", "notice", "end2")),
                       "admin")
    pid = _start_parent(rt)
    cid = only_child(rt, pid).id
    settle(rt)  # the escalation, thrown as the child started, reaches the caller
    assert [t.element_id for t in instances.open_tasks(rt, pid)] == ["notice"]
    assert task_state(rt, pid, "call_child") == TaskState.STARTED  # not interrupted
    complete(rt, cid, "work", "starter")
    settle(rt)
    assert sorted(t.element_id for t in instances.open_tasks(rt, pid)) == ["after", "notice"]


def test_data_inputs_and_outputs_of_the_called_process_map_what_crosses(rt):
    io = ('<bpmn:ioSpecification><bpmn:dataInput id="amount"/><bpmn:dataOutput id="total"/>'
          "<bpmn:inputSet><bpmn:dataInputRefs>amount</bpmn:dataInputRefs></bpmn:inputSet>"
          "<bpmn:outputSet><bpmn:dataOutputRefs>total</bpmn:dataOutputRefs></bpmn:outputSet></bpmn:ioSpecification>")
    definitions.deploy(rt, process("doubler", io, start(), script("s", "total = amount * 2\nsecret = 1"),
                                   user("look"), end(), seq("start", "s", "look", "end")), "admin")
    definitions.deploy(rt, parent(called="doubler"), "admin")
    pid = _start_parent(rt, amount=3, other="kept here")
    cid = only_child(rt, pid).id
    assert instances.variables(rt, cid)["amount"] == 3 and "other" not in instances.variables(rt, cid)
    complete(rt, cid, "look", "starter")
    settle(rt)
    data = instances.variables(rt, pid)
    assert (data["total"], data["other"], "secret" in data) == (6, "kept here", False)
    with pytest.raises(ProcessError, match="amount"):
        _start_parent(rt, other="no amount")  # a missing data input fails the call, and saves nothing


def test_a_variable_the_called_process_deletes_is_gone_from_the_caller_as_in_spiffworkflow(rt):
    # No ioSpecification: the child works on all of the caller's data and hands it back whole.
    definitions.deploy(rt, process("tidy", start(), script("s", "del scratch\nadded = keep + 1"), user("look"), end(),
                                   seq("start", "s", "look", "end")), "admin")
    definitions.deploy(rt, parent(called="tidy"), "admin")
    pid = _start_parent(rt, keep=1, scratch="temporary")
    complete(rt, only_child(rt, pid).id, "look", "starter")
    settle(rt)
    data = instances.variables(rt, pid)
    assert (data["keep"], data["added"], "scratch" in data) == (1, 2, False)


def test_with_data_inputs_and_no_outputs_the_callers_other_variables_stay(rt):
    io = ('<bpmn:ioSpecification><bpmn:dataInput id="amount"/>'
          "<bpmn:inputSet><bpmn:dataInputRefs>amount</bpmn:dataInputRefs></bpmn:inputSet>"
          "<bpmn:outputSet/></bpmn:ioSpecification>")
    definitions.deploy(rt, process("counter", io, start(), script("s", "total = amount + 1"), end(),
                                   seq("start", "s", "end")), "admin")
    definitions.deploy(rt, parent(called="counter"), "admin")
    pid = _start_parent(rt, amount=3, other="kept here")
    settle(rt)
    data = instances.variables(rt, pid)
    assert (data["total"], data["other"]) == (4, "kept here")
