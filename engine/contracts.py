"""What the code above the engine relies on in a process it starts: element ids of a kind, form
fields of a type (with the options it chooses), operations the model must call, messages it must
wait for. The layer that owns the code declares it per process key (`Runtime.contracts.register`);
every new version of that key is checked at deploy, and one that breaks a need is refused with the
element or field and the reason given by whoever declared it. The engine knows nothing of the
reasons; it only compares a parsed model with the declarations."""

from __future__ import annotations

from dataclasses import dataclass, field

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import CatchingEvent

from .parsing import ParsedModel, Problem


@dataclass(frozen=True)
class NeedsElement:
    id: str
    kind: str  # "user task", "timer event", "receive task", "service task", "message event", ...
    why: str


@dataclass(frozen=True)
class NeedsField:
    element: str | None  # a user task's id; None: the process's start form
    name: str
    type: str  # a FieldType value: "enum", "boolean", "date-time", ...
    why: str
    options: tuple[str, ...] = ()  # enum values the code chooses or reads; others may be added


@dataclass(frozen=True)
class NeedsOperation:
    name: str
    why: str


@dataclass(frozen=True)
class NeedsMessage:
    name: str
    why: str


@dataclass(frozen=True)
class ModelContract:
    key: str
    elements: tuple[NeedsElement, ...] = ()
    fields: tuple[NeedsField, ...] = ()
    operations: tuple[NeedsOperation, ...] = ()
    messages: tuple[NeedsMessage, ...] = ()


@dataclass
class ModelContracts:
    """The declared contracts by process key; a key without one deploys as before."""
    _by_key: dict[str, list[ModelContract]] = field(default_factory=dict)

    def register(self, contract: ModelContract) -> None:
        held = self._by_key.setdefault(contract.key, [])
        if contract not in held:
            held.append(contract)

    def of(self, key: str) -> list[ModelContract]:
        return list(self._by_key.get(key, ()))

    def check(self, model: ParsedModel) -> list[Problem]:
        return [p for contract in self._by_key.get(model.key, ()) for p in _broken(contract, model)]


def _broken(contract: ModelContract, model: ParsedModel) -> list[Problem]:
    specs = [model.spec, *model.subprocess_specs.values()]
    kinds = {ts.bpmn_id: element_kind(ts) for spec in specs for ts in spec.task_specs.values()
             if getattr(ts, "bpmn_id", None)}
    operations = {getattr(ts, "operation_name", None) for spec in specs for ts in spec.task_specs.values()}
    messages = {_message(ts) for spec in specs for ts in spec.task_specs.values()} - {None}
    problems = []
    for need in contract.elements:
        kind = kinds.get(need.id)
        if kind is None:
            problems.append(Problem(need.id, f"the process has no {need.kind} '{need.id}' any more: {need.why}"))
        elif kind != need.kind:
            problems.append(Problem(need.id, f"'{need.id}' is {_a(kind)} here, it must stay {_a(need.kind)}: "
                                             f"{need.why}"))
    for field_need in contract.fields:
        problems += _field_problems(field_need, model)
    for op in contract.operations:
        if op.name not in operations:
            problems.append(Problem(None, f"no service task calls operation '{op.name}' any more: {op.why}"))
    for msg in contract.messages:
        if msg.name not in messages:
            problems.append(Problem(None, f"nothing waits for message '{msg.name}' any more: {msg.why}"))
    return problems


def _field_problems(need: NeedsField, model: ParsedModel) -> list[Problem]:
    form = model.start_form if need.element is None else model.forms.get(need.element)
    where = "the start form" if need.element is None else f"the form of '{need.element}'"
    element = need.element
    found = None if form is None else next((f for f in form.fields if f.name == need.name), None)
    if found is None:
        return [Problem(element, f"{where} has no field '{need.name}' any more: {need.why}")]
    if found.type.value != need.type:
        return [Problem(element, f"field '{need.name}' of {where} is {_a(found.type.value)}, it must stay "
                                 f"{_a(need.type)}: {need.why}")]
    offered = {o.value for o in found.options}
    return [Problem(element, f"field '{need.name}' of {where} no longer offers '{value}': {need.why}")
            for value in need.options if value not in offered]


def element_kind(task_spec) -> str:
    """A task spec's kind in a modeller's words (what a contract names): "user task", "receive task",
    "timer event" (a timer however caught: boundary, intermediate), "message event", "end event"..."""
    event = getattr(task_spec, "event_definition", None)
    name = type(task_spec).__name__
    if not name.endswith("Task"):
        if isinstance(event, TimerEventDefinition):
            return "timer event"
        if isinstance(event, MessageEventDefinition):
            return "message event"
    return " ".join(w.lower() for w in _words(name))


def _message(task_spec) -> str | None:
    """The message a task spec waits for (receive task, catch event), if any."""
    event = getattr(task_spec, "event_definition", None)
    if isinstance(event, MessageEventDefinition) and isinstance(task_spec, CatchingEvent):
        return event.name
    return None


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeio' else 'a'} {noun}"


def _words(name: str) -> list[str]:
    words, current = [], ""
    for ch in name:
        if ch.isupper() and current:
            words.append(current)
            current = ""
        current += ch
    return [*words, current] if current else words
