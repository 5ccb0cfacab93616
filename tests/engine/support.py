"""Helpers shared by the engine tests: a second "process" on the same database, state inspection,
counting rows, running threads that start together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event, func, select

from engine import definitions, instances, outbox, tasks
from engine.db import Database
from engine.models import AuditEvent
from engine.queues import ManualJobQueue
from engine.runtime import Runtime
from tests.conftest import FIXTURES, reference_operations

REFERENCE_XML = (FIXTURES / "reference_loop.bpmn").read_text()


@contextmanager
def other_process(rt: Runtime, *, busy_timeout_ms: int = 2000) -> Iterator[Runtime]:
    """A Runtime with its own Database object and an empty spec cache, as another process would have.
    On SQLite the busy timeout is short so that a lock wait fails fast instead of after 30 s."""
    db = Database(rt.db.url)
    if db.is_sqlite:
        @event.listens_for(db.engine, "connect")
        def _short_busy_timeout(dbapi_conn, _record) -> None:
            dbapi_conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    other = Runtime(db=db, clock=rt.clock, audit_keys=rt.audit_keys)  # the same configured key
    reference_operations(other)
    try:
        yield other
    finally:
        db.dispose()


def count(rt: Runtime, model, *where) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


def actions(rt: Runtime, instance_id: str | None = None) -> list[str]:
    with rt.db.session() as s:
        stmt = select(AuditEvent.action).order_by(AuditEvent.id)
        if instance_id is not None:
            stmt = stmt.where(AuditEvent.instance_id == instance_id)
        return list(s.scalars(stmt))


def workflow_of(rt: Runtime, instance_id: str):
    """The deserialized SpiffWorkflow of an instance, for inspecting task states."""
    row = instances.get(rt, instance_id)
    model = rt.specs.get(rt.db, row.definition_id)
    return rt.serializer.loads(row.state, model.spec, model.subprocess_specs)


def task_state(rt: Runtime, instance_id: str, element_id: str):
    (task,) = [t for t in workflow_of(rt, instance_id).get_tasks() if t.task_spec.bpmn_id == element_id]
    return task.state


def run_together(fns: list[Callable[[], Any]], timeout: float = 30) -> list[tuple[str, Any]]:
    """Run the callables in threads released at the same instant; ('ok', result) or ('error', exc)."""
    barrier = threading.Barrier(len(fns))
    results: list[tuple[str, Any]] = [("pending", None)] * len(fns)

    def run(i: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = ("ok", fn())
        except Exception as exc:
            results[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    return results


# -- the reference process ------------------------------------------------------------------------

def start_reference(rt: Runtime, case_id: str = "C-1", *, due: timedelta = timedelta(hours=4),
                    business_key: str | None = None, value: int = 150, grid: str = "g1") -> str:
    """Deploy (idempotent) and start the reference loop; returns the instance id, waiting at `review`."""
    definitions.deploy(rt, REFERENCE_XML, "admin")
    started = instances.start(rt, actor="starter", key="reference_loop", business_key=business_key,
                              variables={"case_id": case_id, "value": value, "grid": grid,
                                         "handle_due": (rt.clock.now() + due).isoformat()})
    return started.instance.id


def open_task(rt: Runtime, instance_id: str, element_id: str):
    (task,) = [t for t in instances.open_tasks(rt, instance_id) if t.element_id == element_id]
    return task


def complete(rt: Runtime, instance_id: str, element_id: str, actor: str = "worker", variables=None):
    return tasks.complete(rt, open_task(rt, instance_id, element_id).id, actor, variables or {})


def to_handle(rt: Runtime, instance_id: str) -> None:
    complete(rt, instance_id, "review", "sup", {"approved": True})


def to_feedback(rt: Runtime, instance_id: str) -> None:
    """review and handle done, the push job run: the instance waits for the `feedback` message."""
    to_handle(rt, instance_id)
    complete(rt, instance_id, "handle", "insp", {"violation": True})
    relay_and_run(rt)


def relay_and_run(rt: Runtime) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()
