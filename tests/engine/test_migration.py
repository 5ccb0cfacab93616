"""Moving running instances to another version: the plan, the refusals (nothing changes), and the
move itself keeping task ids, assignments, timer deadlines to the second and the audit chain."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from engine import audit, instances, migration, tasks, timers
from engine.errors import InvalidInput
from engine.instances import InstanceQuery
from engine.migration import Selection
from engine.models import AuditEvent, HumanTask, MessageSubscription, ProcessInstance
from tests.engine import builders as b
from tests.engine import migration_models as mm
from tests.engine.support import open_task, workflow_of


def _rows(rt, model) -> list[tuple]:
    """Every row of a table, every column, in a stable order: to show that nothing changed."""
    table = model.__table__
    with rt.db.read() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def _everything(rt) -> list:
    return [_rows(rt, m) for m in (ProcessInstance, HumanTask, AuditEvent, MessageSubscription)]


def _deadlines(rt, ids) -> dict[str, list]:
    return {i: sorted(timers.timer_deadlines(workflow_of(rt, i))) for i in ids}


def test_a_renamed_task_moves_with_its_id_claim_and_timer_deadline_and_the_new_flow_applies(rt):
    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(review="review2", extra=True, timer='"PT9H"'))
    ids = mm.start_many(rt, v1, 12)
    claimed = open_task(rt, ids[0], "review")
    tasks.claim(rt, claimed.id, "clerk-1")
    delegated = open_task(rt, ids[1], "review")
    tasks.delegate(rt, delegated.id, "clerk-1", "clerk-2")
    before_wakeups = {i: instances.get(rt, i).next_wakeup_at for i in ids}
    before_deadlines = _deadlines(rt, ids)
    before_tasks = {i: open_task(rt, i, "review") for i in ids}

    plan, source, target = migration.plan(rt, v1, v2, {"review": "review2"})
    assert (source.version, target.version) == (1, 2)
    assert plan.valid and plan.instances == 12
    assert plan.elements["review"].target == "review2" and plan.elements["review"].waiting == 12
    assert plan.elements["late"].waiting == 12
    assert any("deadline an instance waits for now is kept" in n for n in plan.elements["late"].notes)

    outcome = migration.execute(rt, v1, v2, "admin", {"review": "review2"})
    assert sorted(outcome.migrated) == sorted(ids) and outcome.failed == [] and outcome.remaining == 0
    for i in ids:
        row = instances.get(rt, i)
        assert row.definition_id == v2
        assert row.next_wakeup_at == before_wakeups[i]  # to the microsecond
        (task,) = instances.open_tasks(rt, i)
        old = before_tasks[i]
        assert (task.id, task.assignee, task.owner, task.claimed_at, task.created_at) == \
               (old.id, old.assignee, old.owner, old.claimed_at, old.created_at)
        assert task.element_id == "review2"
    assert open_task(rt, ids[0], "review2").assignee == "clerk-1"
    assert open_task(rt, ids[1], "review2").owner == "clerk-1"
    assert _deadlines(rt, ids) == before_deadlines
    with rt.db.session() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "instance.migrated")))
        assert audit.verify(s, rt.audit_keys).ok
    assert len(events) == 12 and {e.instance_id for e in events} == set(ids)
    assert events[0].details["before"] == {"definitionId": v1, "version": 1}
    assert events[0].details["after"] == {"definitionId": v2, "version": 2}
    assert events[0].details["mapping"]["review"] == "review2"
    assert events[0].details["overrides"] == {"review": "review2"}

    tasks.complete(rt, open_task(rt, ids[2], "review2").id, "clerk-1")  # the new version's flow: extra
    assert [t.element_id for t in instances.open_tasks(rt, ids[2])] == ["extra"]
    rt.clock.set(before_wakeups[ids[3]] + timedelta(milliseconds=1))  # the old deadline, not PT9H
    timers.fire_due(rt)
    assert [t.element_id for t in instances.open_tasks(rt, ids[3])] == ["esc"]
    assert [t.element_id for t in instances.open_tasks(rt, ids[4])] == ["review2"]  # its deadline is later


def test_a_batch_is_bounded_and_selected_by_business_key_or_id(rt):
    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(extra=True))
    ids = mm.start_many(rt, v1, 6)
    picked = migration.execute(rt, v1, v2, "admin", selection=Selection(business_keys=["B-1", "B-4"]))
    assert sorted(picked.migrated) == sorted([ids[1], ids[4]]) and picked.remaining == 0
    first = migration.execute(rt, v1, v2, "admin", selection=Selection(limit=2))
    assert first.migrated == [ids[0], ids[2]] and first.remaining == 2  # oldest first
    exact = migration.execute(rt, v1, v2, "admin", selection=Selection(instance_ids=[ids[5]]))
    assert exact.migrated == [ids[5]]
    rows, total = instances.query(rt, InstanceQuery(definition_id=v1))
    assert [r.id for r in rows] == [ids[3]] and total == 1
    rows, total = instances.query(rt, InstanceQuery(key=mm.KEY, version=2))
    assert total == 5
    with pytest.raises(InvalidInput) as refused:  # an id that is not (any more) on the source version
        migration.execute(rt, v1, v2, "admin", selection=Selection(instance_ids=[ids[3], ids[5]]))
    assert ids[5] in refused.value.fields["processInstanceIds"][0]
    with pytest.raises(InvalidInput) as too_many:
        migration.execute(rt, v1, v2, "admin", selection=Selection(limit=migration.MAX_BATCH + 1))
    assert "limit" in too_many.value.fields


@pytest.mark.parametrize("unsafe, element, words", [
    (dict(review_kind="service"), "review", "its type changes (userTask → serviceTask)"),
    (dict(boundary=False), "review", "the boundary events attached to it change"),
    (dict(review="review2"), "review", "it has no target"),
    (dict(timer='"2026-12-01T00:00:00+00:00"'), "late", "what it waits for changes"),
])
def test_an_unsafe_plan_is_refused_and_changes_nothing(rt, unsafe, element, words):
    v1 = mm.deploy(rt, mm.model())
    xml = mm.model(**unsafe)
    if "2026-12-01" in xml:  # a duration became a date
        xml = xml.replace("timeDuration", "timeDate")
    v2 = mm.deploy(rt, xml)
    ids = mm.start_many(rt, v1, 3)
    tasks.claim(rt, open_task(rt, ids[0], "review").id, "clerk-1")
    before = _everything(rt)
    plan, _, _ = migration.plan(rt, v1, v2)
    assert not plan.valid and any(words in p for p in plan.problems[element])
    with pytest.raises(InvalidInput) as refused:
        migration.execute(rt, v1, v2, "admin")
    assert any(words in p for p in refused.value.fields[element])
    assert _everything(rt) == before


def test_a_waiting_message_that_changes_is_refused(rt):
    def waiting(message: str) -> str:
        return b.process("replies", b.start(), b.receive("wait", message, "reply"), b.end(),
                         b.seq("start", "wait", "end"), header=b.message_header(message))

    v1 = mm.deploy(rt, waiting("reply"))
    v2 = mm.deploy(rt, waiting("answer"))
    instances.start(rt, actor="starter", definition_id=v1)
    before = _everything(rt)
    with pytest.raises(InvalidInput) as refused:
        migration.execute(rt, v1, v2, "admin")
    assert "what it waits for changes (message reply → message answer)" in refused.value.fields["wait"]
    assert _everything(rt) == before


def test_a_form_the_waiting_task_cannot_satisfy_is_refused_unless_the_new_field_has_a_default(rt):
    v1 = mm.deploy(rt, mm.model(form=mm.LEVEL))
    narrower = mm.deploy(rt, mm.model(form=mm.LEVEL_LOW_ONLY))
    required = mm.deploy(rt, mm.model(form=mm.LEVEL + mm.NOTE_REQUIRED))
    defaulted = mm.deploy(rt, mm.model(form=mm.LEVEL + mm.NOTE_REQUIRED_DEFAULT))
    low = instances.start(rt, actor="s", definition_id=v1, variables={"level": "low"}).instance.id
    high = instances.start(rt, actor="s", definition_id=v1, variables={"level": "high"}).instance.id
    before = _everything(rt)
    with pytest.raises(InvalidInput) as refused:
        migration.execute(rt, v1, narrower, "admin")
    (problem,) = refused.value.fields["review"]
    assert high in problem and "'level'" in problem and low not in problem
    with pytest.raises(InvalidInput) as refused:
        migration.execute(rt, v1, required, "admin")
    assert refused.value.fields["review"] == [
        "its form requires 'note', which the waiting task did not, without a default"]
    assert _everything(rt) == before
    ok = migration.execute(rt, v1, narrower, "admin", selection=Selection(instance_ids=[low]))
    assert ok.migrated == [low]
    ok = migration.execute(rt, v1, defaulted, "admin", selection=Selection(instance_ids=[high]))
    assert ok.migrated == [high]


def test_a_suspended_target_version_refuses_and_the_wrong_versions_are_named(rt):
    from engine import definitions

    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(extra=True))
    other = mm.deploy(rt, b.two_step())
    mm.start_many(rt, v1, 1)
    definitions.suspend(rt, v2, "admin", "not yet")
    with pytest.raises(InvalidInput) as refused:
        migration.execute(rt, v1, v2, "admin")
    assert "is suspended" in refused.value.fields["targetDefinitionId"][0]
    with pytest.raises(InvalidInput) as refused:
        migration.plan(rt, v1, other)
    assert "targetDefinitionId" in refused.value.fields
    with pytest.raises(InvalidInput) as refused:
        migration.plan(rt, v1, v1)
    assert "targetDefinitionId" in refused.value.fields
    plan, _, _ = migration.plan(rt, v1, v2, {"nope": "review", "review": "nowhere"})
    assert {"mapping.nope", "mapping.review"} <= set(plan.problems)


def test_an_instance_that_moves_on_while_the_batch_runs_is_reported_and_the_others_migrate(pg, clock):
    from engine.runtime import Runtime

    rt = Runtime(db=pg, clock=clock)
    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(extra=True))
    ids = mm.start_many(rt, v1, 4)
    held = pg.engine.connect()
    tx = held.begin()
    held.execute(text("SELECT id FROM process_instance WHERE id = :i FOR UPDATE"), {"i": ids[1]})
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(outcome=migration.execute(rt, v1, v2, "admin")))
    runner.start()
    for _ in range(200):  # until the batch waits for the row we hold
        with pg.engine.connect() as look:
            if look.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                 "AND datname = current_database()")).scalar():
                break
        time.sleep(0.05)
    held.execute(text("UPDATE process_instance SET status = 'cancelled' WHERE id = :i"), {"i": ids[1]})
    tx.commit()
    held.close()
    runner.join(30)
    outcome = result["outcome"]
    assert sorted(outcome.migrated) == sorted([ids[0], ids[2], ids[3]])
    assert [f["instance_id"] for f in outcome.failed] == [ids[1]]
    assert "no longer a running instance" in outcome.failed[0]["message"]
    assert instances.get(rt, ids[1]).definition_id == v1


def test_a_thousand_instances_waiting_on_timers_keep_every_deadline_to_the_second(rt):
    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(review="review2", extra=True))
    ids = mm.start_many(rt, v1, 1000, step=timedelta(seconds=1, microseconds=337_000))
    before = {i: (instances.get(rt, i).next_wakeup_at, d) for i, d in _deadlines(rt, ids).items()}
    assert len({w for w, _ in before.values()}) == 1000  # each its own deadline
    outcome = migration.execute(rt, v1, v2, "admin", {"review": "review2"})
    assert len(outcome.migrated) == 1000 and outcome.failed == [] and outcome.remaining == 0
    after = {i: (instances.get(rt, i).next_wakeup_at, d) for i, d in _deadlines(rt, ids).items()}
    assert after == before
    _rows_page, total = instances.query(rt, InstanceQuery(definition_id=v2, limit=1))
    assert total == 1000
