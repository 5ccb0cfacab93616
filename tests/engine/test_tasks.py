"""Human tasks: the read model, claim / unclaim / delegate rules, completion (also racing on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine import definitions, instances, tasks
from engine.errors import Conflict, InvalidInput, NotAllowed, NotFound, ProcessError
from engine.models import AuditEvent, HumanTask
from engine.runtime import Runtime
from tests.conftest import reference_operations
from tests.engine.builders import end, process, seq, start, user
from tests.engine.support import actions, count, open_task, run_together, start_reference, to_handle


@pytest.fixture
def pg_rt(pg, clock) -> Runtime:
    runtime = Runtime(db=pg, clock=clock)
    reference_operations(runtime)
    return runtime


def _review(rt) -> tuple[str, HumanTask]:
    iid = start_reference(rt)
    return iid, open_task(rt, iid, "review")


def _snapshot(rt, iid: str):
    row = instances.get(rt, iid)
    return (row.revision, row.state, count(rt, AuditEvent),
            sorted((t.id, t.status, t.assignee) for t in instances.open_tasks(rt, iid)))


def test_human_task_row_takes_role_from_lane_and_fields_from_properties(rt, clock):
    iid, review = _review(rt)
    assert (review.element_id, review.name, review.process_key, review.instance_id) == (
        "review", "Review the alarm", "reference_loop", iid)
    assert (review.candidate_role, review.candidate_scope, review.form_key, review.priority) == (
        "supervisor", "g1", "review_v1", 70)
    assert (review.status, review.assignee, review.due_at, review.created_at) == ("open", None, None, clock.now())
    to_handle(rt, iid)
    handle = open_task(rt, iid, "handle")
    assert (handle.candidate_role, handle.candidate_scope, handle.form_key, handle.priority) == (
        "inspector", "g1", "handle_v1", 50)
    assert handle.due_at == datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # start + 4 h, from dueDate="handle_due"
    assert tasks.get(rt, review.id).status == "completed"


def test_claim_assigns_and_claiming_an_assigned_task_is_a_conflict(rt, clock):
    _, review = _review(rt)
    claimed = tasks.claim(rt, review.id, "ann")
    assert (claimed.assignee, claimed.claimed_at) == ("ann", clock.now())
    for actor in ("bob", "ann"):
        with pytest.raises(Conflict):
            tasks.claim(rt, review.id, actor)
    assert tasks.get(rt, review.id).assignee == "ann"


def test_a_supervisor_may_claim_for_someone_else(rt):
    _, review = _review(rt)
    assert tasks.claim(rt, review.id, "sup", assignee="bob").assignee == "bob"


def test_unclaim_by_a_non_assignee_is_not_allowed(rt):
    _, review = _review(rt)
    tasks.claim(rt, review.id, "ann")
    with pytest.raises(NotAllowed):
        tasks.unclaim(rt, review.id, "bob")
    assert tasks.get(rt, review.id).assignee == "ann"
    back = tasks.unclaim(rt, review.id, "ann")
    assert (back.assignee, back.claimed_at) == (None, None)
    with pytest.raises(Conflict):
        tasks.unclaim(rt, review.id, "ann")  # nobody has it any more
    tasks.claim(rt, review.id, "bob")
    assert tasks.unclaim(rt, review.id, "admin", force=True).assignee is None


def test_delegate_keeps_the_first_owner(rt):
    _, review = _review(rt)
    tasks.claim(rt, review.id, "ann")
    first = tasks.delegate(rt, review.id, "ann", "bob")
    assert (first.owner, first.assignee) == ("ann", "bob")
    with pytest.raises(NotAllowed):
        tasks.delegate(rt, review.id, "ann", "carl")  # ann gave it away
    second = tasks.delegate(rt, review.id, "bob", "carl")
    assert (second.owner, second.assignee) == ("ann", "carl")
    assert [a for a in actions(rt) if a.startswith("task.")] == ["task.claimed", "task.delegated", "task.delegated"]


def test_completing_a_task_assigned_to_someone_else_is_not_allowed_and_changes_nothing(rt):
    iid, review = _review(rt)
    tasks.claim(rt, review.id, "ann")
    before = _snapshot(rt, iid)
    with pytest.raises(NotAllowed):
        tasks.complete(rt, review.id, "bob", {"approved": True})
    assert _snapshot(rt, iid) == before
    assert tasks.complete(rt, review.id, "ann", {"approved": True}).completed_by == "ann"


def test_force_completes_a_task_assigned_to_someone_else(rt):
    iid, review = _review(rt)
    tasks.claim(rt, review.id, "ann")
    tasks.complete(rt, review.id, "admin", {"approved": True}, force=True)
    assert tasks.get(rt, review.id).completed_by == "admin"
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["handle"]


def test_second_completion_of_a_task_gets_conflict_and_changes_nothing(rt):
    iid, review = _review(rt)
    tasks.complete(rt, review.id, "sup", {"approved": True})
    before = _snapshot(rt, iid)
    with pytest.raises(Conflict):
        tasks.complete(rt, review.id, "sup", {"approved": False})
    assert _snapshot(rt, iid) == before


def test_claim_unclaim_and_delegate_of_a_finished_task_are_conflicts(rt):
    _, review = _review(rt)
    tasks.complete(rt, review.id, "sup", {"approved": True})
    for action in (lambda: tasks.claim(rt, review.id, "ann"), lambda: tasks.unclaim(rt, review.id, "sup"),
                   lambda: tasks.delegate(rt, review.id, "sup", "ann")):
        with pytest.raises(Conflict):
            action()


def test_unknown_task_is_not_found(rt):
    for action in (lambda: tasks.claim(rt, "nope", "ann"), lambda: tasks.complete(rt, "nope", "ann"),
                   lambda: tasks.delegate(rt, "nope", "ann", "bob")):
        with pytest.raises(NotFound):
            action()


@pytest.mark.parametrize("name", ["_x", "a-b", "1a", "__builtins__", "with space"])
def test_invalid_variable_names_are_refused_and_nothing_changes(rt, name):
    iid, review = _review(rt)
    before = _snapshot(rt, iid)
    with pytest.raises(InvalidInput) as info:
        tasks.complete(rt, review.id, "sup", {"approved": True, name: 1})
    assert list(info.value.fields) == [name]
    assert _snapshot(rt, iid) == before


def test_concurrent_completion_exactly_one_wins_and_the_instance_advances_once(pg_rt):
    iid, review = _review(pg_rt)
    results = run_together([
        (lambda n=n: tasks.complete(pg_rt, review.id, f"sup{n}", {"approved": n % 2 == 0})) for n in range(4)])
    wins = [value for kind, value in results if kind == "ok"]
    errors = [value for kind, value in results if kind == "error"]
    assert len(wins) == 1 and len(errors) == 3
    assert all(isinstance(e, Conflict) for e in errors), errors
    assert actions(pg_rt, iid) == ["instance.started", "task.completed"]
    assert [t.element_id for t in instances.open_tasks(pg_rt, iid)] == ["handle"]
    assert count(pg_rt, HumanTask, HumanTask.instance_id == iid) == 2  # review + one handle
    assert instances.get(pg_rt, iid).revision == 2
    assert tasks.get(pg_rt, review.id).completed_by == wins[0].completed_by


def test_concurrent_claims_exactly_one_wins(pg_rt):
    _, review = _review(pg_rt)
    results = run_together([(lambda n=n: tasks.claim(pg_rt, review.id, f"user{n}")) for n in range(4)])
    winners = [value.assignee for kind, value in results if kind == "ok"]
    assert len(winners) == 1
    assert all(isinstance(v, Conflict) for kind, v in results if kind == "error")
    assert tasks.get(pg_rt, review.id).assignee == winners[0]
    assert actions(pg_rt).count("task.claimed") == 1


@pytest.mark.parametrize(("prop", "value"), [("dueDate", "tomorrow"), ("priority", "high")])
def test_unusable_task_property_value_fails_with_a_process_error_naming_the_task(rt, prop, value):
    xml = process("props", start(), user("a"), user("b", **{prop: "v"}), end(), seq("start", "a", "b", "end"),
                  lanes={"clerk": ["a", "b"]})
    definitions.deploy(rt, xml, "admin")
    iid = instances.start(rt, actor="u", key="props").instance.id
    with pytest.raises(ProcessError) as info:
        tasks.complete(rt, open_task(rt, iid, "a").id, "u", {"v": value})
    assert info.value.details["element"] == "b"
    assert open_task(rt, iid, "a")
