"""Suspending an instance: no task completes, no timer fires (its deadline is kept), messages wait in
the buffer; activation delivers them and fires what fell due, each step audited with its reason."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import instances, messages, migration, suspension, tasks, timers
from engine.errors import Conflict
from engine.instances import InstanceQuery
from engine.models import Message
from tests.engine import builders as b
from tests.engine import migration_models as mm
from tests.engine.support import actions, count, open_task


def test_a_suspended_instance_completes_no_task_and_activation_lets_it(rt):
    v1 = mm.deploy(rt, mm.model())
    (iid,) = mm.start_many(rt, v1, 1)
    task = open_task(rt, iid, "review")
    suspension.suspend(rt, iid, "admin", "data under review")
    with pytest.raises(Conflict, match="suspended"):
        tasks.complete(rt, task.id, "clerk-1")
    assert open_task(rt, iid, "review").status == "open"
    tasks.claim(rt, task.id, "clerk-1")  # who holds the work may still change
    with pytest.raises(Conflict, match="suspended already"):
        suspension.suspend(rt, iid, "admin", "again")
    rows, total = instances.query(rt, InstanceQuery(suspended=True))
    assert [r.id for r in rows] == [iid] and total == 1
    suspension.activate(rt, iid, "admin", "checked")
    with pytest.raises(Conflict, match="not suspended"):
        suspension.activate(rt, iid, "admin", "again")
    tasks.complete(rt, task.id, "clerk-1")
    assert instances.get(rt, iid).status == "completed"
    with pytest.raises(Conflict, match="completed"):
        suspension.suspend(rt, iid, "admin", "too late")
    done = actions(rt, iid)
    assert done[done.index("instance.suspended"):][:4] == ["instance.suspended", "task.claimed",
                                                           "instance.activated", "task.completed"]


def test_a_suspended_instance_fires_no_timer_keeps_its_deadline_and_fires_it_on_activation(rt):
    v1 = mm.deploy(rt, mm.model())
    v2 = mm.deploy(rt, mm.model(extra=True))
    waiting, other = mm.start_many(rt, v1, 2)
    deadline = instances.get(rt, waiting).next_wakeup_at
    suspension.suspend(rt, waiting, "admin", "paused by the district")
    assert timers.earliest_wakeup(rt) == instances.get(rt, other).next_wakeup_at
    rt.clock.set(deadline + timedelta(hours=3))
    assert timers.fire_due(rt) == 1  # the other one only
    assert timers.fire_instance(rt, waiting) == []
    row = instances.get(rt, waiting)
    assert row.next_wakeup_at == deadline and row.suspended
    assert [t.element_id for t in instances.open_tasks(rt, waiting)] == ["review"]
    outcome = migration.execute(rt, v1, v2, "admin", selection=migration.Selection(instance_ids=[waiting]))
    assert outcome.migrated == [waiting]  # moving it fires nothing either
    assert instances.get(rt, waiting).next_wakeup_at == deadline
    assert [t.element_id for t in instances.open_tasks(rt, waiting)] == ["review"]
    suspension.activate(rt, waiting, "admin", "resume")
    assert [t.element_id for t in instances.open_tasks(rt, waiting)] == ["esc"]
    assert actions(rt, waiting)[-2:] == ["instance.activated", "timer.fired"]
    assert not instances.get(rt, waiting).suspended


def test_a_suspended_instance_takes_messages_into_the_buffer_and_activation_delivers_them(rt):
    mm.deploy(rt, b.correlated_wait())
    iid = instances.start(rt, actor="s", key="replies", variables={"case_id": "C-9"}).instance.id
    suspension.suspend(rt, iid, "admin", "hold")
    got = messages.correlate(rt, name="reply", message_id="m-1", actor="enforcement", correlation_value="C-9",
                             payload={"ok": True})
    assert got.status == "buffered" and got.instance_id is None
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == []
    suspension.activate(rt, iid, "admin", "go on")
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["check"]
    assert count(rt, Message, Message.status == "delivered", Message.instance_id == iid) == 1
    again = messages.correlate(rt, name="reply", message_id="m-1", actor="enforcement", correlation_value="C-9")
    assert again.duplicate and again.status == "delivered"
