"""The call activity as GridLoop runs it: the called process is an instance of its own (its own row,
lock, timers and audit chain; engine/calls.py), not a subworkflow inside the caller's state as in
SpiffWorkflow. The task asks the workflow's environment to start the child and stays STARTED until
the child's return completes it; cancelling the task (the parent cancelled, an interrupting boundary
event) asks the environment to cancel the child.

Which version is called is fixed when the call starts, after Camunda's `calledElementBinding`, as
attributes in GridLoop's namespace on the bpmn:callActivity:

    gridloop:calledElementBinding="latest"      the version new cases of the key start on (default)
    gridloop:calledElementBinding="deployment"  the version deployed in the caller's own deployment
    gridloop:calledElementBinding="version" gridloop:calledElementVersion="3"
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from SpiffWorkflow.bpmn.parser.task_parsers import SubprocessParser
from SpiffWorkflow.spiff.parser.task_spec import CallActivityParser as SpiffCallActivityParser
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask

GRIDLOOP_NS = "http://gridloop.example/schema/1.0"
BINDING_ATTR = f"{{{GRIDLOOP_NS}}}calledElementBinding"
VERSION_ATTR = f"{{{GRIDLOOP_NS}}}calledElementVersion"
BINDINGS = ("latest", "deployment", "version")
CHILD = "child_instance_id"  # the task's internal data: the instance it called
RETURNS = "call_returns"  # the task's internal data: the returns it has taken (a job run again)


class CallActivity(SpiffBpmnTask):
    """Calls the process `called_element` as a child instance (see the module's docstring)."""

    def __init__(self, wf_spec, bpmn_id, called_element: str, binding: str = "latest", version: str | None = None,
                 **kwargs) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.called_element = called_element
        self.binding = binding
        self.version = version

    def _run_hook(self, my_task) -> bool | None:
        my_task.workflow.script_engine.environment.call_process(my_task, self)
        return None  # STARTED: the child's return completes it

    def _on_cancel(self, my_task) -> None:
        super()._on_cancel(my_task)
        cancel = getattr(my_task.workflow.script_engine.environment, "call_cancelled", None)
        if cancel is not None and my_task.internal_data.get(CHILD):
            cancel(my_task, my_task.internal_data[CHILD])


class CallActivityParser(SpiffCallActivityParser):
    def create_task(self) -> CallActivity:
        extensions = self.parse_extensions()
        return self.spec_class(self.spec, self.bpmn_id, called_element=SubprocessParser.get_call_activity_spec(self),
                               binding=(self.node.get(BINDING_ATTR) or "latest").strip(),
                               version=self.node.get(VERSION_ATTR), prescript=extensions.get("preScript"),
                               postscript=extensions.get("postScript"), **self.bpmn_attributes)


@dataclass(frozen=True)
class CallRef:
    """What a call activity calls, for the deploy's check that it exists."""

    element_id: str
    called_element: str
    binding: str
    version: int | None


def calls_of(specs: list) -> list[CallRef]:
    return [CallRef(ts.bpmn_id or ts.name, ts.called_element, ts.binding, _version(ts.version))
            for spec in specs for ts in spec.task_specs.values() if isinstance(ts, CallActivity)]


def lint_calls(specs: list) -> Iterator[tuple[str, str]]:
    """(element, problem) for a binding that is not one of ours, or a version that is not a number."""
    for spec in specs:
        for ts in spec.task_specs.values():
            if not isinstance(ts, CallActivity):
                continue
            element = ts.bpmn_id or ts.name
            if ts.binding not in BINDINGS:
                yield element, (f"gridloop:calledElementBinding must be one of {', '.join(BINDINGS)}; "
                                f"not {ts.binding!r}")
            elif ts.binding == "version" and _version(ts.version) is None:
                yield element, ("gridloop:calledElementBinding=\"version\" needs gridloop:calledElementVersion, "
                                f"a version number from 1; not {ts.version!r}")
            elif ts.binding != "version" and ts.version is not None:
                yield element, "gridloop:calledElementVersion goes with gridloop:calledElementBinding=\"version\""


def _version(text: str | None) -> int | None:
    if text is None or not text.strip().isdigit() or int(text) < 1:
        return None
    return int(text)
