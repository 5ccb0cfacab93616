"""A migration plan between two versions of one process: where each element of the source version
goes in the target (by id, unless an administrator maps a renamed element), and what would make
moving an instance that waits there unsafe.

The plan is static (two parsed models); `instance_problems` adds what depends on one instance's
state: the elements it waits at, and the values its waiting user tasks hold against a changed form.
A problem of an element only refuses a migration when an instance actually waits there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from .forms import Form, FormField, convert
from .parsing import ParsedModel

ACTIVE = TaskState.WAITING | TaskState.READY | TaskState.STARTED  # where an instance stands between changes
# Elements an instance can stand at between changes (the others run through within one change).
WAITABLE = {"UserTask", "ManualTask", "ReceiveTask", "IntermediateCatchEvent", "BoundaryEvent", "EventBasedGateway",
            "ServiceTask", "CallActivity", "ParallelGateway", "InclusiveGateway", "SubWorkflowTask",
            "TransactionSubprocess", "StandardLoopTask", "ParallelMultiInstanceTask", "SequentialMultiInstanceTask"}
# Waiting inside these is a state of its own (a nested workflow, loop counters) that is not moved.
NOT_MOVED = {"SubWorkflowTask", "TransactionSubprocess", "StandardLoopTask", "ParallelMultiInstanceTask",
             "SequentialMultiInstanceTask", "EventSubprocess", "AdHocSubprocess"}
SPLIT, JOIN = ".BoundaryEventSplit", ".BoundaryEventJoin"


@dataclass
class ElementPlan:
    source: str
    target: str | None
    kind: str
    target_kind: str | None
    problems: list[str] = field(default_factory=list)  # unsafe to move an instance waiting here
    notes: list[str] = field(default_factory=list)  # safe, but worth knowing
    waiting: int = 0  # instances of the selection waiting here
    changed_fields: tuple[str, ...] = ()  # form fields whose declaration changed (checked against held values)


@dataclass
class Plan:
    source_id: int
    target_id: int
    mapping: dict[str, str]  # source element -> target element, for every element that has one
    elements: dict[str, ElementPlan]  # waitable elements of the source, by id
    problems: dict[str, list[str]] = field(default_factory=dict)  # refusals by field: an element, an instance...
    instances: int = 0  # instances of the selection looked at

    def refuse(self, name: str, message: str) -> None:
        self.problems.setdefault(name, []).append(message)

    @property
    def valid(self) -> bool:
        return not self.problems


def element_ids(model: ParsedModel) -> dict[str, Any]:
    """The model's BPMN elements (task specs with an element id), by id."""
    return {ts.bpmn_id: ts for ts in model.spec.task_specs.values() if ts.bpmn_id}


def kind_of(spec) -> str:
    name = type(spec).__name__
    return "businessRuleTask" if name == "DecisionTask" else name[0].lower() + name[1:]


def build(source: ParsedModel, target: ParsedModel, source_id: int, target_id: int,
          overrides: Mapping[str, str] | None = None) -> Plan:
    """The mapping (by id; `overrides` for renamed elements) and each waitable element's verdict.
    Overrides naming an element that does not exist are refusals under `mapping.<id>`."""
    old, new = element_ids(source), element_ids(target)
    plan = Plan(source_id=source_id, target_id=target_id, mapping={}, elements={})
    for src, dst in (overrides or {}).items():
        if src not in old:
            plan.refuse(f"mapping.{src}", f"version {source_id} has no element '{src}'")
        elif dst not in new:
            plan.refuse(f"mapping.{src}", f"the target version has no element '{dst}'")
    for element in old:
        dst = (overrides or {}).get(element, element)
        if dst in new:
            plan.mapping[element] = dst
    for element, spec in old.items():
        if type(spec).__name__ not in WAITABLE:
            continue
        plan.elements[element] = _element(plan, source, target, spec, new.get(plan.mapping.get(element, "")))
    return plan


def _element(plan: Plan, source: ParsedModel, target: ParsedModel, spec, new_spec) -> ElementPlan:
    element = spec.bpmn_id
    ep = ElementPlan(source=element, target=new_spec.bpmn_id if new_spec is not None else None,
                     kind=kind_of(spec), target_kind=kind_of(new_spec) if new_spec is not None else None)
    if type(spec).__name__ in NOT_MOVED:
        ep.problems.append(f"an instance waiting inside a {ep.kind} is not moved (its nested state would be lost)")
    if new_spec is None:
        ep.problems.append("it has no target: no element with this id in the target version, and no mapping")
        return ep
    if ep.kind != ep.target_kind:
        ep.problems.append(f"its type changes ({ep.kind} → {ep.target_kind})")
        return ep
    before, after = events(spec), events(new_spec)
    if _waits_for(before) != _waits_for(after):
        ep.problems.append(f"what it waits for changes ({describe(before)} → {describe(after)})")
    elif before != after:
        ep.notes.append(f"its timer changes ({describe(before)} → {describe(after)}); the deadline an instance "
                        "waits for now is kept")
    _attachments(plan, ep, source, target, spec, new_spec)
    if ep.kind == "eventBasedGateway":
        branches = [plan.mapping.get(o.bpmn_id) for o in spec.outputs]
        if branches != [o.bpmn_id for o in new_spec.outputs]:
            ep.problems.append("its branches change (the events it waits for are taken from them)")
    if ep.kind in ("parallelGateway", "inclusiveGateway"):
        incoming = sorted(str(plan.mapping.get(i.bpmn_id or i.name)) for i in spec.inputs)
        if incoming != sorted(str(i.bpmn_id or i.name) for i in new_spec.inputs):
            ep.problems.append("its incoming flows change (the branches it waits for would be counted wrong)")
    if getattr(spec, "lane", None) != getattr(new_spec, "lane", None):
        ep.notes.append(f"its lane changes ({spec.lane} → {new_spec.lane}): an open task is offered to the new "
                        "role, its assignee is kept")
    _forms(ep, source.forms.get(element), target.forms.get(ep.target or ""))
    return ep


def events(spec) -> tuple:
    """What a catching element waits for, comparable between versions (timers with their kind and
    expression; messages with their name and correlation)."""
    definition = getattr(spec, "event_definition", None)
    if definition is None:
        return ()
    inner = getattr(definition, "event_definitions", None)
    return tuple(sorted((_event(d) for d in (inner if inner is not None else [definition])), key=repr))


def _event(d) -> tuple:
    if isinstance(d, MessageEventDefinition):
        correlations = tuple(sorted((p.name, p.retrieval_expression) for p in d.process_correlations or []))
        return ("message", d.name, correlations)
    for cls, kind in ((TimeDateEventDefinition, "date"), (DurationTimerEventDefinition, "duration"),
                      (CycleTimerEventDefinition, "cycle")):
        if isinstance(d, cls):
            return ("timer", kind, d.expression)
    name = getattr(d, "name", None) or getattr(d, "code", None)
    return (type(d).__name__.removesuffix("EventDefinition").lower(), name)


def _waits_for(signature: tuple) -> tuple:
    """The signature without timer expressions (a changed duration keeps the running deadline)."""
    return tuple(e[:2] if e and e[0] == "timer" else e for e in signature)


def describe(signature: tuple) -> str:
    if not signature:
        return "nothing"
    return ", ".join(" ".join(str(p) for p in e if p not in ((), None, "")) for e in signature)


def boundary_events(model: ParsedModel, spec) -> dict[str, tuple]:
    """The boundary events attached to an activity: id -> (what it waits for, interrupting)."""
    split = model.spec.task_specs.get(spec.name + SPLIT)
    if split is None:
        return {}
    return {o.bpmn_id: (_waits_for(events(o)), getattr(o, "cancel_activity", True))
            for o in split.outputs if o is not spec}


def attached_to(spec) -> str | None:
    """The activity a boundary event is attached to."""
    for parent in spec.inputs:
        if parent.name.endswith(SPLIT):
            return parent.name.removesuffix(SPLIT)
    return None


def _attachments(plan: Plan, ep: ElementPlan, source: ParsedModel, target: ParsedModel, spec, new_spec) -> None:
    if ep.kind == "boundaryEvent":
        activity = attached_to(spec)
        if plan.mapping.get(activity or "") != attached_to(new_spec):
            ep.problems.append(f"it is attached to another activity ({activity} → {attached_to(new_spec)})")
        return
    before = {plan.mapping.get(b, f"{b} (no target)"): v for b, v in boundary_events(source, spec).items()}
    after = boundary_events(target, new_spec)
    if before != after:
        ep.problems.append("the boundary events attached to it change "
                           f"({', '.join(sorted(before)) or 'none'} → {', '.join(sorted(after)) or 'none'})")


def _field_key(f: FormField) -> tuple:
    return (f.type, f.required, f.values, f.default, f.minimum, f.maximum, f.min_length, f.max_length, f.pattern,
            f.future, getattr(f.required_when, "source", None), getattr(f.shown_when, "source", None), f.ref,
            tuple(sorted(f.ref_args.items())))


def _forms(ep: ElementPlan, before: Form | None, after: Form | None) -> None:
    """A required field the waiting task never asked for must have a default (clients hold the old
    form); fields whose declaration changed are checked against the values an instance holds."""
    if after is None:
        return
    old = {f.name: f for f in (before.fields if before is not None else ())}
    changed = []
    for f in after.fields:
        was = old.get(f.name)
        if f.required and f.default is None and (was is None or not was.required):
            ep.problems.append(f"its form requires '{f.name}', which the waiting task did not, without a default")
        if was is not None and _field_key(was) != _field_key(f):
            changed.append(f.name)
    ep.changed_fields = tuple(changed)


# -- one instance ---------------------------------------------------------------------------------

def active_specs(state: Mapping[str, Any]) -> list[str]:
    """The task spec names an instance stands at, read from its serialized state (no spec needed)."""
    return [t["task_spec"] for t in state["tasks"].values() if t["state"] & ACTIVE]


def instance_problems(plan: Plan, source: ParsedModel, target: ParsedModel, active: Iterable[str],
                      workflow=None) -> list[tuple[str, str]]:
    """(element, problem) for one instance standing at the task specs `active`; `workflow` (the
    instance loaded on the source version) is needed only where a changed form meets held values."""
    found = []
    specs = source.spec.task_specs
    for name in active:
        spec = specs.get(name)
        element = getattr(spec, "bpmn_id", None)
        if element is None:
            if spec_target(name, source, target, plan.mapping) is None:
                found.append((name, "the instance stands at an internal step with no counterpart in the target"))
            continue
        ep = plan.elements.get(element)
        if ep is None:
            target_id = plan.mapping.get(element)
            if target_id is None:
                found.append((element, "it has no target: no element with this id in the target version, "
                                       "and no mapping"))
            continue
        found.extend((element, p) for p in ep.problems)
        if ep.changed_fields and workflow is not None:
            found.extend((element, p) for p in _held_values(ep, target, workflow))
    return found


def _held_values(ep: ElementPlan, target: ParsedModel, workflow) -> list[str]:
    form = target.forms.get(ep.target or "")
    out = []
    for task in workflow.get_tasks(state=TaskState.READY, manual=True):
        if task.task_spec.bpmn_id != ep.source:
            continue
        for name in ep.changed_fields:
            value = task.data.get(name)
            if value is None or form is None or form.get(name) is None:
                continue
            try:
                convert(form.get(name), value)  # type: ignore[arg-type]
            except ValueError as exc:
                out.append(f"the value the task holds for '{name}' ({value!r}) does not fit the new form: {exc}")
    return out


def needs_workflow(plan: Plan, source: ParsedModel, active: Iterable[str]) -> bool:
    specs = source.spec.task_specs
    return any(plan.elements.get(getattr(specs.get(n), "bpmn_id", None) or "", None) is not None
               and plan.elements[specs[n].bpmn_id].changed_fields for n in active)


def spec_target(name: str, source: ParsedModel, target: ParsedModel, mapping: Mapping[str, str]) -> str | None:
    """The target task spec name of a source task spec: an element's by the mapping; an internal
    spec named after an element ("review.BoundaryEventSplit") follows that element's rename."""
    specs, new_specs = source.spec.task_specs, target.spec.task_specs
    spec = specs.get(name)
    element = getattr(spec, "bpmn_id", None)
    if element:
        dst = mapping.get(element)
        if dst is None:
            return None
        return next((ts.name for ts in new_specs.values() if ts.bpmn_id == dst), None)
    prefix, dot, suffix = name.rpartition(".")
    candidate = f"{mapping[prefix]}.{suffix}" if dot and prefix in mapping else name
    return candidate if candidate in new_specs else None
