"""One transaction per change (DESIGN.md §4): lock the instance row, load, act, run the engine,
save the state, refresh the read models, append audit events and outbox rows, commit. Any error
rolls all of it back; side effects only ever leave through the outbox after commit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, outbox, readmodels
from .environment import attach
from .errors import EngineError, NotFound, ProcessError
from .models import ProcessDefinition, ProcessInstance
from .operations import Operation
from .runtime import Runtime
from .timers import next_wakeup

WAKEUP_CHANNEL = "gridloop_wakeup"


@dataclass
class Change:
    rt: Runtime
    session: Session
    instance: ProcessInstance
    workflow: BpmnWorkflow
    actor: str
    now: datetime
    drafts: list[audit.AuditDraft] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    outbox_rows: int = 0
    woke_earlier: bool = False

    def record(self, action: str, *, task_id: str | None = None, element_id: str | None = None,
               **details: Any) -> None:
        self.drafts.append(audit.AuditDraft(action=action, actor=self.actor, at=self.now,
                                            instance_id=self.instance.id, task_id=task_id,
                                            element_id=element_id, details=details))

    def schedule_operation(self, my_task, op: Operation, params: dict[str, Any]) -> None:
        """Called from a service task: the job is written to the outbox and runs after commit."""
        element = my_task.task_spec.bpmn_id or my_task.task_spec.name
        outbox.add(self.session, self.now, queue=op.queue, job="service_call", payload={
            "instance_id": self.instance.id, "task_id": str(my_task.id), "element_id": element,
            "operation": op.name, "params": params, "attempt": 1,
        })
        self.outbox_rows += 1

    def add_job(self, queue: str, job: str, payload: dict[str, Any]) -> None:
        outbox.add(self.session, self.now, queue=queue, job=job, payload=payload)
        self.outbox_rows += 1

    def run_engine(self) -> None:
        """Run everything that can run now. SpiffWorkflow refreshes timers only at the end of
        `do_engine_steps`, so a timer that fell due there needs one more pass."""
        wf = self.workflow
        try:
            while True:
                wf.refresh_timers()
                wf.do_engine_steps(did_complete_task=self._did_complete)
                if not wf.get_tasks(state=TaskState.READY, manual=False):
                    return
        except EngineError:
            raise
        except Exception as exc:  # scripts, handlers and the library raise anything; all roll back
            raise ProcessError(_describe(exc), element=_element_of(exc)) from exc

    def _did_complete(self, task) -> None:
        if task.task_spec.bpmn_id:  # BPMN elements only, not the library's internal join/split specs
            self.ran.append(task.task_spec.bpmn_id)


def lock_instance(session: Session, instance_id: str) -> ProcessInstance:
    row = session.scalar(select(ProcessInstance).where(ProcessInstance.id == instance_id).with_for_update())
    if row is None:
        raise NotFound(f"process instance {instance_id} does not exist")
    return row


@contextmanager
def change_instance(rt: Runtime, instance_id: str, actor: str) -> Iterator[Change]:
    """Lock, load and yield the instance; on normal exit run the engine, save and commit."""
    with rt.db.transaction() as session:
        row = lock_instance(session, instance_id)
        model = rt.specs.get(rt.db, row.definition_id)
        workflow = rt.serializer.loads(row.state, model.spec, model.subprocess_specs)
        change = Change(rt=rt, session=session, instance=row, workflow=workflow, actor=actor,
                        now=rt.clock.now())
        attach(workflow, change)
        yield change
        finish(change)
    after_commit(rt, change)


@contextmanager
def new_instance(rt: Runtime, definition: ProcessDefinition, session: Session, actor: str,
                 business_key: str | None, variables: dict[str, Any]) -> Iterator[Change]:
    """Create an instance inside the caller's transaction; yields before the first engine run."""
    model = rt.specs.get(rt.db, definition.id)
    workflow = BpmnWorkflow(model.spec, model.subprocess_specs)
    workflow.task_tree.data.update(variables)
    now = rt.clock.now()
    row = ProcessInstance(id=str(uuid.uuid4()), definition_id=definition.id, process_key=definition.key,
                          business_key=business_key, status="running", state="", started_by=actor,
                          started_at=now, updated_at=now, revision=0)
    session.add(row)
    session.flush()  # read-model rows reference it
    change = Change(rt=rt, session=session, instance=row, workflow=workflow, actor=actor, now=now)
    attach(workflow, change)
    yield change
    finish(change)


def finish(change: Change) -> None:
    """Everything after the action, in the same transaction."""
    wf, row = change.workflow, change.instance
    before_status, before_wakeup = row.status, row.next_wakeup_at
    change.run_engine()
    delivered = readmodels.refresh(change)
    while delivered:  # a buffered message was waiting for a subscription that just appeared
        change.run_engine()
        delivered = readmodels.refresh(change)
    if row.status == "running" and wf.is_completed():
        row.status, row.ended_at = "completed", change.now
        change.record("instance.completed")
    row.state = change.rt.serializer.dumps(wf)
    row.next_wakeup_at = next_wakeup(wf) if row.status == "running" else None
    row.updated_at = change.now
    row.revision = (row.revision or 0) + 1
    if change.drafts:
        first = change.drafts[0].details
        if change.ran:
            first.setdefault("ran", change.ran)
        if before_status != row.status:
            first.setdefault("status", {"before": before_status, "after": row.status})
    change.woke_earlier = row.next_wakeup_at is not None and (
        before_wakeup is None or row.next_wakeup_at < before_wakeup)
    change.session.flush()
    if change.outbox_rows or change.woke_earlier:
        change.rt.db.notify(change.session, WAKEUP_CHANNEL)
    audit.append(change.rt.db, change.session, change.drafts)


def after_commit(rt: Runtime, change: Change) -> None:
    if change.outbox_rows or change.woke_earlier:
        rt.wake()


def _describe(exc: Exception) -> str:
    detail = getattr(exc, "error_type", None) or type(exc).__name__
    return f"{detail}: {exc}".strip()


def _element_of(exc: Exception) -> str | None:
    task_spec = getattr(exc, "task_spec", None)
    if task_spec is None and getattr(exc, "task", None) is not None:
        task_spec = exc.task.task_spec
    return getattr(task_spec, "bpmn_id", None) or getattr(task_spec, "name", None)


__all__ = ["WAKEUP_CHANNEL", "Change", "EngineError", "change_instance", "lock_instance", "new_instance"]
