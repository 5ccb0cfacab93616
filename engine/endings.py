"""What other layers learn when an instance ends, inside the change that ends it.

A listener gets the ended instance and the change's connection: it may write its own tables (a
domain projection such as a case's closing record), in the same transaction, so an instance never
ends without them and they never claim an end that rolled back. It runs after the change's own
writes, so it can read the final read models (the human tasks with their end times)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Connection


@dataclass(frozen=True)
class InstanceEnded:
    instance_id: str
    process_key: str
    business_key: str | None
    status: str  # completed | cancelled
    ended_at: datetime
    actor: str
    variables: Mapping[str, Any]


EndListener = Callable[[Connection, InstanceEnded], None]


def workflow_data(wf: BpmnWorkflow) -> dict[str, Any]:
    """The instance's variables: the final data when finished, else the data of the most recently
    changed task (task data is per task in SpiffWorkflow)."""
    if wf.is_completed() and wf.data:
        return dict(wf.data)
    elements = [t for t in wf.get_tasks() if t.task_spec.bpmn_id]  # not the library's internal specs
    active = [t for t in elements if t.has_state(TaskState.READY | TaskState.STARTED | TaskState.WAITING)]
    done = [t for t in elements if t.has_state(TaskState.COMPLETED)]
    newest = max(active or done, key=lambda t: t.last_state_change or 0, default=None)
    return dict(newest.data) if newest is not None else {}
