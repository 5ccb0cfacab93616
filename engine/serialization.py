"""Spec-less workflow state: the serialized JSON holds tasks and data but not the spec, which is
re-attached from the per-version spec cache on load (about 2.5x smaller and faster)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from copy import copy
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from .errors import ProcessError
from .sandbox import OverBudget, json_size
from .spiff_specs import ClockedCycle, ClockedDuration, ClockedTimeDate

STATE_FORMAT = 1
# The JSON the task data of one instance may take in its saved state. A condition can still grow
# data in place (`items.append(...)`): measured, stopping at the budget, before anything is encoded.
MAX_STATE_DATA_BYTES = 64_000_000

# Task ids are converted between text and UUID about four times per task per load and per save
# (key, id, parent, children), and the conversions are the bulk of the work; both are memoised
# (bounded; UUIDs and strings are immutable, so sharing them between threads is safe).
_UUIDS: dict[str, UUID] = {}
_TEXTS: dict[int, str] = {}
_MEMO_MAX = 20_000


def _uuid(text: str) -> UUID:
    """`UUID(text)`, memoised."""
    found = _UUIDS.get(text)
    if found is None:
        if len(_UUIDS) >= _MEMO_MAX:
            _UUIDS.clear()
        found = _UUIDS[text] = UUID(text)
    return found


def _text(value: UUID) -> str:
    """`str(value)`, memoised."""
    found = _TEXTS.get(value.int)
    if found is None:
        if len(_TEXTS) >= _MEMO_MAX:
            _TEXTS.clear()
        found = _TEXTS[value.int] = str(value)
    return found


class FastTaskConverter(TaskConverter):
    """SpiffWorkflow's TaskConverter (same dictionaries, both ways), with fewer lookups and the UUIDs
    memoised. The data of a task is stored as a delta from its parent's, as the library does."""

    def to_dict(self, task: Task) -> dict[str, Any]:
        parent = task.workflow.tasks.get(task._parent)
        if parent is None:
            data, delta = task.data, {}
        else:
            before, after = parent.data, task.data
            data = {}
            delta = {"updates": {k: v for k, v in after.items() if k not in before or v != before[k]},
                     "deletions": [k for k in before if k not in after]}
        internal = task.internal_data
        return {
            "id": _text(task.id),
            "parent": _text(task._parent) if parent is not None else None,
            "children": [_text(child) for child in task._children],
            "last_state_change": task.last_state_change,
            "state": task._state,
            "task_spec": task.task_spec.name,
            "triggered": task.triggered,
            "internal_data": self.registry.convert(internal) if internal else {},
            "data": data,
            "delta": delta,
        }

    def from_dict(self, dct: dict[str, Any], workflow) -> Task:
        task_spec = workflow.spec.task_specs.get(dct["task_spec"])
        task = Task(workflow, task_spec, state=dct["state"], id=_uuid(dct["id"]))
        parent_id = dct["parent"]
        task._parent = _uuid(parent_id) if parent_id is not None else None
        task._children = [_uuid(child) for child in dct["children"]]
        task.last_state_change = dct["last_state_change"]
        task.triggered = dct["triggered"]
        internal = dct["internal_data"]
        task.internal_data = self.registry.restore(internal) if internal else {}
        if isinstance(task_spec, CatchingEvent) and task._state & TaskState.WAITING:
            workflow.top_workflow.event_manager.add_task(task)
        delta = dct.get("delta")
        if delta and (parent := workflow.tasks.get(task._parent)) is not None:
            data = {}
            for key, value in parent.data.items():  # DeepMerge.merge({}, parent.data)
                data[key] = copy(value) if isinstance(value, dict | list | set) else value
            updates = delta.get("updates", {})
            if updates:
                data.update(self.registry.restore(updates))
            for key in delta.get("deletions", {}):
                data.pop(key, None)
        else:
            data = self.registry.restore(dct["data"])
        task.data = data
        return task


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        # WorkflowConverter.to_dict, with the task conversion called directly rather than looked up
        # in the registry for each task (same result: the converter's dict plus its typename).
        registry = self.registry
        task_to_dict = registry.convert_to_dict[registry.typenames[Task]]
        return {
            "data": registry.convert(registry.clean(workflow.data)),
            "correlations": workflow.correlations,
            "last_task": _text(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success,
            "completed": workflow.completed,
            "tasks": {_text(k): task_to_dict(v) if type(v) is Task else registry.convert(v)
                      for k, v in workflow.tasks.items()},
            "root": _text(workflow.task_tree.id),
            "subprocesses": self.mapping_to_dict(workflow.subprocesses),
            "bpmn_events": registry.convert(workflow.bpmn_events),
        }

    def from_dict(self, dct: dict[str, Any], spec=None, subprocess_specs=None) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        registry = self.registry
        typename = registry.typenames[Task]
        task_from_dict = registry.convert_from_dict[typename]  # called directly, as for to_dict
        workflow.tasks = {_uuid(k): task_from_dict(v, workflow=workflow) if v.get("typename") == typename
                          else registry.restore(v, workflow=workflow) for k, v in dct["tasks"].items()}
        workflow.task_tree = workflow.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _check_data_size(dct: dict[str, Any]) -> None:
    """Refuse a state whose task data (full data and deltas, as written) passes MAX_STATE_DATA_BYTES."""
    left = MAX_STATE_DATA_BYTES
    memo: dict[int, int] = {}
    try:
        for data in _data_parts(dct):
            left -= json_size(data, left, compact=True, lenient=True, memo=memo)
    except OverBudget:
        left = -1
    if left < 0:
        raise ProcessError(f"the instance's data would take more than {MAX_STATE_DATA_BYTES:,} bytes as JSON (the "
                           "state budget; shared references counted each time): a script or condition grew it")


def _data_parts(dct: dict[str, Any]) -> Iterator[Any]:
    yield dct.get("data")
    for task in (dct.get("tasks") or {}).values():
        yield task.get("data")
        yield (task.get("delta") or {}).get("updates")
    for sub in (dct.get("subprocesses") or {}).values():
        yield from _data_parts(sub)


class StateSerializer:
    """Turns a workflow into a JSON string and back, given the spec it runs on."""

    def __init__(self) -> None:
        config = dict(SPIFF_CONFIG)  # a copy: the library's table stays untouched
        config[BpmnWorkflow] = SpeclessWorkflowConverter
        config[Task] = FastTaskConverter
        for clocked in (ClockedTimeDate, ClockedDuration, ClockedCycle):  # a timer a gateway saw, kept
            config[clocked] = config[next(c for c in clocked.__mro__ if c in SPIFF_CONFIG)]  # among its events
        self._registry = BpmnWorkflowSerializer.configure(config)

    def dumps(self, workflow: BpmnWorkflow) -> str:
        dct = self._registry.convert(workflow)
        _check_data_size(dct)
        dct["format"] = STATE_FORMAT
        return json.dumps(dct, separators=(",", ":"), default=str)

    def loads(self, state: str, spec, subprocess_specs) -> BpmnWorkflow:
        dct = json.loads(state)
        dct.pop("format", None)
        return self._registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
