"""Spec-less workflow state: the serialized JSON holds tasks and data but not the spec, which is
re-attached from the per-version spec cache on load (about 2.5x smaller and faster)."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

STATE_FORMAT = 1


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec=None, subprocess_specs=None) -> BpmnWorkflow:
        workflow = self.target_class(spec, subprocess_specs, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class StateSerializer:
    """Turns a workflow into a JSON string and back, given the spec it runs on."""

    def __init__(self) -> None:
        config = dict(SPIFF_CONFIG)  # a copy: the library's table stays untouched
        config[BpmnWorkflow] = SpeclessWorkflowConverter
        self._registry = BpmnWorkflowSerializer.configure(config)

    def dumps(self, workflow: BpmnWorkflow) -> str:
        dct = self._registry.convert(workflow)
        dct["format"] = STATE_FORMAT
        return json.dumps(dct, separators=(",", ":"), default=str)

    def loads(self, state: str, spec, subprocess_specs) -> BpmnWorkflow:
        dct = json.loads(state)
        dct.pop("format", None)
        return self._registry.restore(dct, spec=spec, subprocess_specs=subprocess_specs)
