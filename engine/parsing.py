"""Parse and lint BPMN before it is deployed: every problem names its element and what is wrong."""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException

from .form_xml import forms_of
from .forms import Form, FormError
from .model_lint import TIMER, KnownReference, expressions, lint_forms
from .parsing_names import NSMAP
from .sandbox import SandboxError, compile_expression, compile_script
from .spiff_calls import CallRef, calls_of, lint_calls
from .spiff_event_subprocess import arm_event_subprocesses, lint_event_subprocesses
from .spiff_events import lint_thrown_messages, use_engine_events
from .spiff_specs import (
    ClockedCycle,
    ClockedDuration,
    ClockedTimeDate,
    GridLoopParser,
    StartTimer,
    take_start_timers,
    use_engine_clock,
)
from .spiff_specs import ServiceTask as OperationTask

if TYPE_CHECKING:
    from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

MAX_BPMN_BYTES = 2 * 1024 * 1024
MIN_CYCLE = timedelta(minutes=1)
MAX_ELEMENTS = 2000  # flow nodes per process: a bound on what one transaction may have to walk
MAX_PLANNED_TASKS = 20_000  # tasks SpiffWorkflow may plan for a new instance (the reference loop: under 100)
MAX_PLAN_SECONDS = 5.0  # CPU time planning a new instance may take at deploy
# No external entities, no network, no huge trees: say so explicitly rather than rely on defaults.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=False)
# User-task properties evaluated as expressions over the process variables (formKey is a plain name).
TASK_PROPERTIES = ("formKey", "priority", "dueDate", "followUpDate", "candidateScope", "assignee")
# `outputs`: the variables a user task's form may set (comma-separated names). Without it, a
# completion may add new variables but never change one the process already holds.
OUTPUTS = "outputs"
# A process property: the role a task outside every lane is offered to. Without it, such a task is
# assigned to whoever started the instance (readmodels.py).
DEFAULT_ROLE = "defaultRole"


@dataclass(frozen=True)
class Problem:
    element_id: str | None
    message: str
    file: str | None = None  # the file of a bundle it was found in (bundles.py)

    def as_dict(self) -> dict[str, str | None]:
        found = {"element": self.element_id, "problem": self.message}
        return {"file": self.file, **found} if self.file is not None else found

    def in_file(self, name: str) -> Problem:
        return Problem(self.element_id, self.message, name)


class ModelError(Exception):
    """The BPMN cannot be deployed; `problems` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.element_id or '-'}: {p.message}" for p in problems))


@dataclass
class ParsedModel:
    key: str
    name: str | None
    spec: BpmnProcessSpec
    subprocess_specs: dict = field(default_factory=dict)
    forms: dict[str, Form] = field(default_factory=dict)  # by user-task id
    start_form: Form | None = None
    start_timers: list[StartTimer] = field(default_factory=list)  # the scheduler starts instances on them
    default_role: str | None = None  # offered tasks outside every lane (else: the starter's)
    warnings: list[Problem] = field(default_factory=list)  # deployable, but an administrator should know
    calls: list[CallRef] = field(default_factory=list)  # the processes its call activities call


def parse_model(bpmn_xml: str | bytes, *, known_operation: Callable[[str], bool] | None = None,
                known_reference: KnownReference | None = None, require_lint: bool = True,
                process_id: str | None = None) -> ParsedModel:
    """Parse BPMN into specs with clock-aware timers and forms; with `require_lint`, refuse anything
    unsafe or inconsistent (model_lint.py). The file's one executable process, or `process_id`."""
    parser = _load(bpmn_xml)
    with _parse_errors():
        key = process_id or _executable_process(parser)
    return _model(parser, key, known_operation, known_reference, require_lint)


def parse_processes(bpmn_xml: str | bytes, *, known_operation: Callable[[str], bool] | None = None,
                    known_reference: KnownReference | None = None) -> list[ParsedModel]:
    """Every executable process of a file (a collaboration's pools, say), each linted; the problems
    of all of them in one ModelError."""
    parser = _load(bpmn_xml)
    with _parse_errors():
        keys = [pid for pid in parser.get_process_ids() if parser.get_process_parser(pid).process_executable]
    if not keys:
        raise ModelError([Problem(None, "the file defines no executable process (isExecutable=\"true\")")])
    models, problems = [], []
    for key in keys:
        try:
            models.append(_model(parser, key, known_operation, known_reference, True))
        except ModelError as exc:
            problems += exc.problems
    if problems:
        raise ModelError(problems)
    return models


def _load(bpmn_xml: str | bytes) -> GridLoopParser:
    raw = bpmn_xml.encode() if isinstance(bpmn_xml, str) else bpmn_xml
    if len(raw) > MAX_BPMN_BYTES:
        raise ModelError([Problem(None, f"file is larger than {MAX_BPMN_BYTES} bytes")])
    parser = GridLoopParser()
    with _parse_errors():
        root = etree.fromstring(raw, parser=SAFE_PARSER)
        if root.getroottree().docinfo.doctype:
            raise ModelError([Problem(None, "a DOCTYPE is not allowed in BPMN")])
        dangling = list(_dangling_flows(root))
        if dangling:
            raise ModelError(dangling)
        compensation = [p for process in root.xpath("./bpmn:process[@isExecutable='true']", namespaces=NSMAP)
                        for p in _compensation(process)]
        if compensation:  # before the library's parser, which answers a bare NotImplementedError for some
            raise ModelError(compensation)
        parser.add_bpmn_xml(root, filename="model.bpmn")
    return parser


@contextmanager
def _parse_errors() -> Iterator[None]:
    """The library's and lxml's parse errors as a ModelError naming the element where known."""
    try:
        yield
    except FormError as exc:
        element, _, message = str(exc).partition(": ")
        raise ModelError([Problem(element or None, message or str(exc))]) from exc
    except etree.XMLSyntaxError as exc:
        raise ModelError([Problem(None, f"not well-formed XML: {exc}")]) from exc
    except ValidationException as exc:
        raise ModelError([Problem(exc.id or None, str(exc).split("\n")[0])]) from exc
    except (SpiffWorkflowException, ValueError, KeyError) as exc:
        raise ModelError([Problem(None, f"cannot parse BPMN: {exc}")]) from exc


def _model(parser: GridLoopParser, key: str, known_operation: Callable[[str], bool] | None,
           known_reference: KnownReference | None, require_lint: bool) -> ParsedModel:
    with _parse_errors():
        spec = parser.get_spec(key)
        subprocess_specs = parser.get_subprocess_specs(key)
        process_node = parser.get_process_parser(key).node
        forms, start_form = forms_of(process_node)
        default_role = _process_property(process_node, DEFAULT_ROLE)
    for s in (spec, *subprocess_specs.values()):
        arm_event_subprocesses(s, subprocess_specs)
        use_engine_clock(s)
        use_engine_events(s)
    start_timers = take_start_timers(spec)
    if require_lint:
        problems = list(lint(spec, subprocess_specs, known_operation or (lambda _name: True)))
        problems += _lint_start_timers(spec, start_timers)
        if default_role is not None and not (0 < len(default_role) <= 100):
            problems.append(Problem(key, f"the process property {DEFAULT_ROLE} must be a role name of 1 to 100 "
                                         "characters"))
        problems += [Problem(f.element, f.message) for f in lint_forms(
            [spec, *subprocess_specs.values()], forms, start_form, known_reference or (lambda _name: None))]
        if problems:  # planning an instance can be costly: only for a model that passed everything else
            raise ModelError(problems)
        problems += _plannable(spec, subprocess_specs)
        if problems:
            raise ModelError(problems)
    return ParsedModel(key=key, name=spec.description, spec=spec, subprocess_specs=subprocess_specs,
                       forms=forms, start_form=start_form, start_timers=start_timers, default_role=default_role,
                       warnings=list(_laneless(spec, subprocess_specs, default_role)),
                       calls=calls_of([spec, *subprocess_specs.values()]))


def _process_property(process_node, name: str) -> str | None:
    """A `spiffworkflow:property` of the process element itself (not of one of its tasks)."""
    for prop in process_node.xpath("./bpmn:extensionElements/spiffworkflow:properties/spiffworkflow:property",
                                   namespaces=NSMAP):
        if prop.get("name") == name:
            return (prop.get("value") or "").strip()
    return None


def _compensation(process_node) -> list[Problem]:
    """Compensation is refused: SpiffWorkflow 3.2 has no implementation of it. Its parser fails on a
    compensation boundary event without saying why and reads a compensation throw as a none event, and
    ignores isForCompensation: a model relying on undoing work would silently not undo it."""
    found = []
    for node in process_node.xpath(".//bpmn:compensateEventDefinition", namespaces=NSMAP):
        event = node.getparent()
        found.append(Problem(event.get("id"), "compensation is not supported (SpiffWorkflow has no compensation): "
                                              "model the undoing as an error or escalation and its handler"))
    for node in process_node.xpath(".//*[@isForCompensation='true']", namespaces=NSMAP):
        found.append(Problem(node.get("id"), "a compensation handler (isForCompensation) is not supported: "
                                             "SpiffWorkflow has no compensation"))
    return found


def _laneless(spec, subprocess_specs: dict, default_role: str | None) -> Iterator[Problem]:
    """Tasks people work on that are in no lane: they deploy, offered as README's BPMN section says."""
    to = f"offered to the role {default_role!r} (process property {DEFAULT_ROLE})" if default_role else \
        f"assigned to whoever started the instance (set the process property {DEFAULT_ROLE} to offer it to a role)"
    for process in (spec, *subprocess_specs.values()):
        for ts in process.task_specs.values():
            if getattr(ts, "manual", False) and not getattr(ts, "lane", None):
                yield Problem(getattr(ts, "bpmn_id", None) or ts.name, f"the task is not in a lane: it is {to}")


def _lint_start_timers(spec, start_timers: list[StartTimer]) -> Iterator[Problem]:
    """The scheduler starts instances on a timer start event; it reads the expression before any
    instance exists, so the value must be a literal; one start event, so one path starts."""
    if not start_timers:
        return
    starts = [ts for ts in spec.task_specs.values() if isinstance(ts, StartEvent)]
    if len(starts) > 1:
        yield Problem(start_timers[0].element_id, "a process with a timer start event has no other start event "
                                                  "(SpiffWorkflow would run every start event at once)")
    for timer in start_timers:
        literal = _literal_string(timer.expression)
        if timer.kind == "duration":
            yield Problem(timer.element_id, "a timer start event takes a timeDate or a timeCycle; a duration has "
                                            "nothing to count from")
        elif literal is None:
            yield Problem(timer.element_id, f"a timer start event needs a literal value such as "
                                            f"'\"R/2026-12-07T08:00:00+08:00/P1D\"' (there are no variables before "
                                            f"an instance starts); not {timer.expression!r}")
        else:
            yield from _lint_timer(timer.element_id, _literal_timer(timer.kind, literal))


def _literal_timer(kind: str, literal: str) -> TimerEventDefinition:
    cls = ClockedCycle if kind == "cycle" else ClockedTimeDate
    timer: TimerEventDefinition = object.__new__(cls)
    timer.name, timer.expression = None, repr(literal)
    return timer


def _dangling_flows(root) -> Iterator[Problem]:
    """Sequence flows whose source or target is not an element of their process (SpiffWorkflow's
    own message for this guesses at a form with the same id)."""
    bpmn = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
    for container in root.iter(f"{bpmn}process", f"{bpmn}subProcess", f"{bpmn}transaction"):
        ids = {el.get("id") for el in container if isinstance(el.tag, str)}
        for flow in container.findall(f"{bpmn}sequenceFlow"):
            for end in ("sourceRef", "targetRef"):
                ref = flow.get(end)
                if ref not in ids:
                    yield Problem(flow.get("id"), f"the flow's {end} {ref!r} is not an element of its process")


def _plannable(spec, subprocess_specs: dict) -> list[Problem]:
    """SpiffWorkflow plans the whole flow when an instance is created: a loop that does not pass
    through a gateway makes that recurse without end, and parallel split/join pairs in a row double
    the plan with each pair. Refuse such a model here, not at run time, and without planning more
    than MAX_PLANNED_TASKS tasks or for longer than MAX_PLAN_SECONDS of CPU."""
    try:
        _PlanningWorkflow(spec, subprocess_specs)
    except RecursionError:
        return [Problem(None, "the flow loops back without passing through a gateway; add an exclusive "
                              "gateway to the loop")]
    except PlanTooLarge as exc:
        return [Problem(None, str(exc))]
    return []


class PlanTooLarge(Exception):
    """Planning a new instance of the model went past its bound (tasks or CPU time)."""


class _PlanBudget(dict):
    """The task table of a workflow being planned at deploy: refuses to grow past the bounds."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        planned = len(self)
        if planned > MAX_PLANNED_TASKS:
            raise PlanTooLarge(f"the model is too large to plan: a new instance would have more than "
                               f"{MAX_PLANNED_TASKS:,} tasks planned (parallel split/join pairs in a row double the "
                               "plan with each pair; nest them or join fewer branches at a time)")
        if planned % 256 == 0 and time.thread_time() > self.deadline:
            raise PlanTooLarge(f"the model is too large to plan: planning a new instance took more than "
                               f"{MAX_PLAN_SECONDS:g} s of CPU ({planned:,} tasks so far)")


class _PlanningWorkflow(BpmnWorkflow):
    """A BpmnWorkflow whose task table is a _PlanBudget (the library fills `tasks` while it plans)."""

    @property
    def tasks(self) -> dict:
        return self._tasks

    @tasks.setter
    def tasks(self, value: dict) -> None:
        budget = _PlanBudget(time.thread_time() + MAX_PLAN_SECONDS)
        budget.update(value)
        self._tasks = budget


def _executable_process(parser: GridLoopParser) -> str:
    ids = parser.get_process_ids()
    if not ids:
        raise ModelError([Problem(None, "the file defines no process")])
    executable = [pid for pid in ids if parser.get_process_parser(pid).process_executable]
    if len(executable) != 1:
        raise ModelError([Problem(None, f"exactly one process must be isExecutable=\"true\"; found "
                                        f"{len(executable)} of {len(ids)} ({', '.join(ids)})")])
    return executable[0]


def lint(spec, subprocess_specs: dict, known_operation: Callable[[str], bool]) -> Iterator[Problem]:
    if len(spec.name) > 200:
        yield Problem(spec.name[:40], "the process id is longer than 200 characters")
    for process in (spec, *subprocess_specs.values()):
        if len(process.task_specs) > MAX_ELEMENTS:
            yield Problem(process.name[:40], f"more than {MAX_ELEMENTS} elements in one process")
        for task_spec in process.task_specs.values():
            yield from _lint_task(task_spec, known_operation)
    for element, message in lint_thrown_messages([spec, *subprocess_specs.values()]):
        yield Problem(element, message)
    for element, message in lint_calls([spec, *subprocess_specs.values()]):
        yield Problem(element, message)
    for element, message in lint_event_subprocesses([spec, *subprocess_specs.values()]):
        yield Problem(element, message)


LIMITS = (("bpmn_id", 200, "id"), ("bpmn_name", 400, "name"), ("lane", 100, "lane name"))


def _lint_task(ts, known_operation: Callable[[str], bool]) -> Iterator[Problem]:
    element = getattr(ts, "bpmn_id", None) or ts.name
    for attr, limit, what in LIMITS:
        value = getattr(ts, attr, None)
        if isinstance(value, str) and len(value) > limit:
            yield Problem(element[:60], f"the {what} is longer than {limit} characters")
    if isinstance(ts, OperationTask) and not known_operation(ts.operation_name):
        yield Problem(element, f"unknown service operation '{ts.operation_name}'")
    bad_outputs = [n for n in declared_outputs(ts) or () if not n.isidentifier() or n.startswith("_")]
    if bad_outputs:
        yield Problem(element, f"outputs must be variable names; not: {', '.join(bad_outputs)}")
    for e in expressions(ts):
        if e.what != TIMER:  # timers get their own, fuller check below
            yield from _check(element, e.what, e.source, compile_script if e.mode == "exec" else compile_expression)
    definition = getattr(ts, "event_definition", None)
    if definition is not None:
        yield from _lint_event(element, definition)


def _lint_event(element: str, definition) -> Iterator[Problem]:
    inner_timers = []
    for inner in getattr(definition, "event_definitions", [definition]):
        if isinstance(inner, TimerEventDefinition):
            yield from _lint_timer(element, inner)
            inner_timers.append(inner)
        elif isinstance(inner, MessageEventDefinition | SignalEventDefinition) and not inner.name:
            kind = "message" if isinstance(inner, MessageEventDefinition) else "signal"
            yield Problem(element, f"the {kind} event has no {kind} name: give it a {kind}Ref to a bpmn:{kind} "
                                   f"with a name (or name the event itself, which SpiffWorkflow then uses)")
    if not isinstance(definition, MultipleEventDefinition):
        return
    if any(isinstance(t, CycleTimerEventDefinition) for t in inner_timers):
        yield Problem(element, "a cycle timer cannot wait beside other events (event-based gateway or multiple "
                               "event): SpiffWorkflow never fires it there; use a timeDate or a timeDuration")
    kinds = [(type(t), t.name) for t in inner_timers]
    if len(set(kinds)) < len(kinds):
        yield Problem(element, "two timers of the same kind and name wait here; give the catch events distinct names "
                               "(SpiffWorkflow tells such timers apart by kind and name)")


def _lint_timer(element: str, timer: TimerEventDefinition) -> Iterator[Problem]:
    problems = list(_check(element, "timer expression", timer.expression, compile_expression))
    if problems:
        yield from problems
        return
    literal = _literal_string(timer.expression)
    if literal is None:
        if re.fullmatch(r"\s*R?\d*/?P[0-9A-Z.]*\s*", timer.expression or ""):
            yield Problem(element, f"timer {timer.expression!r} is read as a variable name; "
                                   f"quote literal durations: '\"{timer.expression.strip()}\"'")
        return  # computed at run time from task data (an SLA deadline); checked when it runs
    try:
        if isinstance(timer, ClockedDuration):
            TimerEventDefinition.parse_iso_duration(literal)
        elif isinstance(timer, ClockedTimeDate):
            TimerEventDefinition.parse_time_or_duration(literal)
        elif isinstance(timer, ClockedCycle):
            _cycles, _start, period = TimerEventDefinition.parse_iso_recurring_interval(literal)
            if period < MIN_CYCLE:
                yield Problem(element, f"timer cycle {literal!r} repeats more often than every {MIN_CYCLE}")
    except Exception as exc:  # the library raises bare Exception for bad durations
        yield Problem(element, f"timer {literal!r} is not a valid ISO 8601 value: {exc}")


def declared_outputs(task_spec) -> frozenset[str] | None:
    """The variables a user task may set, or None when the model does not say."""
    properties = (getattr(task_spec, "extensions", None) or {}).get("properties", {})
    if OUTPUTS not in properties:
        return None
    return frozenset(n.strip() for n in (properties[OUTPUTS] or "").split(",") if n.strip())


def _literal_string(expression: str) -> str | None:
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _check(element: str, what: str, source: str | None,
           compiler: Callable[[str], object]) -> Iterator[Problem]:
    if not source or not source.strip():
        return
    try:
        compiler(source)
    except SandboxError as exc:
        yield Problem(element, f"{what} refused: {exc.reason} (line {exc.lineno})")


def operations_used(spec, subprocess_specs: dict) -> Collection[str]:
    return {ts.operation_name for p in (spec, *subprocess_specs.values())
            for ts in p.task_specs.values() if isinstance(ts, OperationTask)}
