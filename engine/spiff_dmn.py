"""The business rule task as GridLoop runs it: the decision is looked up when the task runs (the latest
deployed version of its key, engine/decisions.py), not bound into the process spec when the BPMN is
parsed as SpiffWorkflow does, so a process and its decision tables deploy and version independently.

The task names its decision as SpiffWorkflow's modeler writes it:

    <bpmn:businessRuleTask id="classify">
      <bpmn:extensionElements>
        <spiffworkflow:calledDecisionId>alarm_severity</spiffworkflow:calledDecisionId>
        <spiffworkflow:properties>
          <spiffworkflow:property name="outputs" value="severity"/>   (the variables it may set)
        </spiffworkflow:properties>
      </bpmn:extensionElements>
    </bpmn:businessRuleTask>
"""

from __future__ import annotations

from collections.abc import Iterator

from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask


class DecisionTask(SpiffBpmnTask):
    """Sets the outputs of the latest version of `decision_ref` in the task's data."""

    def __init__(self, wf_spec, bpmn_id, decision_ref: str | None, **kwargs) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.decision_ref = decision_ref

    def _run_hook(self, my_task) -> bool:
        outputs = my_task.workflow.script_engine.environment.decide(my_task, self.decision_ref)
        assign(my_task.data, outputs)
        return super()._run_hook(my_task)


class DecisionTaskParser(BusinessRuleTaskParser):
    def create_task(self) -> DecisionTask:
        extensions = self.parse_extensions()
        ref = (extensions.get("calledDecisionId") or "").strip() or None
        return self.spec_class(self.spec, self.bpmn_id, decision_ref=ref, prescript=extensions.get("preScript"),
                               postscript=extensions.get("postScript"), **self.bpmn_attributes)


def assign(data: dict, outputs: dict) -> None:
    """Set each output in the task's data: a name replaces its variable; a dotted name
    ('severity.level') sets one key of a map, making the map if the variable holds none."""
    for name, value in outputs.items():
        *path, last = name.split(".")
        target = data
        for part in path:  # copies along the path: the parent task's data may share these maps
            held = target.get(part)
            target[part] = dict(held) if isinstance(held, dict) else {}
            target = target[part]
        target[last] = value


def decision_refs(specs) -> Iterator[tuple[str, str | None]]:
    """(element id, decision key) of every business rule task of these process specs."""
    for spec in specs:
        for ts in spec.task_specs.values():
            if isinstance(ts, DecisionTask):
                yield ts.bpmn_id or ts.name, ts.decision_ref
