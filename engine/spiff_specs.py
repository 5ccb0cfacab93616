"""GridLoop's extensions of SpiffWorkflow specs: timers that read the engine's clock, an event-based
gateway that takes exactly one branch, timer start events left to the scheduler, and a service
task that dispatches to the operation registry (synchronously, or asynchronously via the outbox).

SpiffWorkflow's own timers call `datetime.now()` inside the library; rather than patching library
globals we swap each parsed timer definition for a subclass that asks the workflow's environment.
Timers that share one task (a multiple event, the branches of an event-based gateway) each keep
their deadline under their own key and report their own firing: the library's shared `event_value`
and `event_fired` would give the second timer the first one's deadline, and fire both at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.parser.event_parsers import EventBasedGatewayParser
from SpiffWorkflow.bpmn.specs.defaults import EventBasedGateway as LibraryEventBasedGateway
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as SpiffServiceTask
from SpiffWorkflow.util.task import TaskState

from . import parsing_names
from .errors import ProcessError
from .spiff_calls import CallActivity, CallActivityParser
from .spiff_dmn import DecisionTask, DecisionTaskParser
from .spiff_event_subprocess import PARSER_CLASSES as EVENT_SUBPROCESS_PARSERS


def _now(my_task) -> datetime:
    clock = getattr(my_task.workflow.script_engine.environment, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


class _Slotted:
    """Where a timer keeps its deadline: the library's key when it has the task to itself; its own
    key, and its own answer to "fired?", when it shares the task with other events."""

    slot = "event_value"
    shared = False

    def _fired(self, my_task, due: bool) -> bool:
        if self.shared:
            return due  # MultipleEventDefinition remembers it among its seen events
        if due:
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


_TAKES = {
    "date": "a date and time (ISO 8601, e.g. 2026-12-06T08:00:00+08:00)",
    "duration": "a duration (ISO 8601, e.g. PT30M or P2D)",
    "cycle": "a repetition (ISO 8601, e.g. R3/PT30M)",
}


def _timer_value(my_task, kind: str, value: Any, parse):
    """`parse(value)`; a value that is not what the timer takes (a variable holding "tomorrow", a
    number) is refused in words naming the element, the value and what it takes, instead of the
    library's parser failing somewhere inside (AttributeError: 'groups')."""
    try:
        parsed = parse(value)
    except Exception as exc:
        raise _refused(my_task, kind, value) from exc
    if kind == "date" and not isinstance(parsed, datetime):  # a duration where a date belongs
        raise _refused(my_task, kind, value)
    return parsed


def _refused(my_task, kind: str, value: Any) -> ProcessError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ProcessError(f"the timer was given {shown}, which is not {_TAKES[kind]}",
                        element=my_task.task_spec.bpmn_id)


class ClockedTimeDate(_Slotted, TimeDateEventDefinition):
    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data(self.slot)
        if value is None:
            value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat()
            _timer_value(my_task, "date", value, TimerEventDefinition.parse_time_or_duration)
            my_task._set_internal_data(**{self.slot: value})
        return self._fired(my_task, TimerEventDefinition.parse_time_or_duration(value) < _now(my_task))


class ClockedDuration(_Slotted, DurationTimerEventDefinition):
    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data(self.slot)
        now = _now(my_task)
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            parsed = _timer_value(my_task, "duration", expression, TimerEventDefinition.parse_iso_duration)
            value = (now + TimerEventDefinition.get_timedelta_from_start(parsed, now)).isoformat()
            my_task._set_internal_data(**{self.slot: value})
        return self._fired(my_task, TimerEventDefinition.get_datetime(value) < now)


class ClockedCycle(_Slotted, CycleTimerEventDefinition):
    def cycle_complete(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        now = _now(my_task)
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            cycles, start, duration = _timer_value(my_task, "cycle", expression, lambda e: parse_cycle(e, now))
            value = {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds()}
        ready = False
        if value["cycles"] != 0:
            next_event = datetime.fromisoformat(value["next"])
            if next_event < now:
                value["next"] = (next_event + timedelta(seconds=value["duration"])).isoformat()
                value["cycles"] -= 1
                ready = True
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        my_task._set_internal_data(event_value=value)
        return ready


def parse_cycle(expression: str, now: datetime) -> tuple[int, datetime, timedelta]:
    """Like the library's parser, but "R3/PT30M" starts from our clock rather than the wall clock."""
    parts = expression.upper().replace("--", "/").strip("R").split("/")
    if len(parts) == 2 and parts[1].startswith("P"):
        cycles = int(parts[0]) if parts[0] else -1
        parsed = TimerEventDefinition.parse_iso_duration(parts[1])
        duration = TimerEventDefinition.get_timedelta_from_start(parsed, now)
        return cycles, now + duration, duration
    return TimerEventDefinition.parse_iso_recurring_interval(expression)


_CLOCKED = {
    TimeDateEventDefinition: ClockedTimeDate,
    DurationTimerEventDefinition: ClockedDuration,
    CycleTimerEventDefinition: ClockedCycle,
}


def _clocked(definition):
    if isinstance(definition, MultipleEventDefinition):
        inner = [_clocked(d) for d in definition.event_definitions]
        timers = [d for d in inner if isinstance(d, _Slotted)]
        for n, timer in enumerate(timers):
            timer.shared = True
            if n:  # the first keeps the library's key: instances already waiting find their deadline
                timer.slot = f"event_value_{n + 1}"
        definition.event_definitions[:] = inner  # in place: the gateway's list is this list
        return definition
    target = _CLOCKED.get(type(definition))
    if target is None:
        return definition
    swapped = object.__new__(target)
    swapped.__dict__.update(definition.__dict__)
    return swapped


def use_engine_clock(spec) -> None:
    """Replace the timer definitions of a parsed spec with clock-aware ones, in place."""
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        if definition is not None:
            task_spec.event_definition = _clocked(definition)


def waiting_timers(task) -> Iterator[tuple[TimerEventDefinition, Any]]:
    """(timer, its deadline state) of each timer a waiting task still waits for; the state is None
    until the engine has run the task once (a date as ISO text; a cycle's dict)."""
    definition = task.task_spec.event_definition
    if isinstance(definition, MultipleEventDefinition):
        seen = [e.event_definition for e in task.internal_data.get("seen_events", [])]
        for timer in definition.event_definitions:
            if isinstance(timer, TimerEventDefinition) and not any(timer is s or timer == s for s in seen):
                yield timer, task.internal_data.get(getattr(timer, "slot", "event_value"))
    elif isinstance(definition, TimerEventDefinition):
        yield definition, task.internal_data.get("event_value")


def deadline_of(state: Any) -> datetime | None:
    """The next time a timer state falls due, or None (not yet computed, or a finished cycle)."""
    if isinstance(state, str):
        return TimerEventDefinition.get_datetime(state)
    if isinstance(state, dict) and state.get("cycles") != 0 and isinstance(state.get("next"), str):
        return datetime.fromisoformat(state["next"])
    return None


def timer_element(task, timer: TimerEventDefinition) -> str:
    """The BPMN element a timer of this task belongs to: the branch's catch event for an event-based
    gateway (its events live on the gateway), the task's own element otherwise."""
    spec = task.task_spec
    if isinstance(spec, LibraryEventBasedGateway):
        for n, inner in enumerate(spec.event_definition.event_definitions):
            if inner is timer and n < len(spec.outputs):
                return spec.outputs[n].bpmn_id or spec.outputs[n].name
    return spec.bpmn_id or spec.name


class EventBasedGateway(LibraryEventBasedGateway):
    """Takes the branch of the first event that happened, and only that one. The library follows
    every event it has seen, and a message delivered after a timer's deadline, before the scheduler
    fired it, is seen together with the timer: both branches would run."""

    def _run_hook(self, my_task) -> bool:
        seen = my_task.internal_data.get("seen_events", [])
        if len(seen) > 1:
            my_task.internal_data["seen_events"] = seen[:1]
        return super()._run_hook(my_task)


@dataclass(frozen=True)
class StartTimer:
    """A timer start event of a process: the scheduler starts instances on it (engine/start_timers.py)."""

    element_id: str
    kind: str  # date | cycle | duration
    expression: str


_START_KINDS = ((TimeDateEventDefinition, "date"), (CycleTimerEventDefinition, "cycle"),
                (DurationTimerEventDefinition, "duration"))


def take_start_timers(spec) -> list[StartTimer]:
    """The timer start events of a process, made plain start events: the scheduler decides when an
    instance starts; inside the instance, the start event has already happened."""
    found = []
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        if isinstance(task_spec, StartEvent) and isinstance(definition, TimerEventDefinition):
            kind = next(k for cls, k in _START_KINDS if isinstance(definition, cls))
            found.append(StartTimer(task_spec.bpmn_id or task_spec.name, kind, definition.expression))
            task_spec.event_definition = NoneEventDefinition()
    return found


class ServiceTask(SpiffServiceTask):
    """Runs a registered operation. Synchronous operations run inside the transaction; asynchronous
    ones leave the task STARTED and ask the environment to schedule a job; its result completes the
    task in a later transaction."""

    def _execute(self, my_task) -> bool | None:
        env = my_task.workflow.script_engine.environment
        params = {name: p["value"] for name, p in self.evaluate_params(my_task).items()}
        outcome = env.call_operation(my_task, self.operation_name, params)
        if outcome is PENDING:
            return None
        my_task.data[self.result_variable] = outcome
        return True


class _Pending:
    def __repr__(self) -> str:
        return "PENDING"


PENDING: Any = _Pending()


class GridLoopParser(SpiffBpmnParser):
    """SpiffBpmnParser with our service task, event-based gateway and call activity (spiff_calls.py);
    the class table is a copy, never the library's own."""

    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        parsing_names.full_tag("serviceTask"): (ServiceTaskParser, ServiceTask),
        parsing_names.full_tag("eventBasedGateway"): (EventBasedGatewayParser, EventBasedGateway),
        parsing_names.full_tag("callActivity"): (CallActivityParser, CallActivity),
        parsing_names.full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
        **EVENT_SUBPROCESS_PARSERS,
    }

    def get_document_positions(self, root) -> dict:
        """None: outgoing flows keep the file's order. The library sorts them by the diagram's y, so
        moving a shape in a modeler would change which true condition a gateway takes first."""
        return {}


def started_service_task(workflow, task_id):
    """The STARTED service task with this id, or None (already completed, cancelled, unknown)."""
    task = find_task(workflow, task_id)
    if task is None or task.state != TaskState.STARTED or not isinstance(task.task_spec, ServiceTask):
        return None
    return task


def find_task(workflow, task_id: str):
    """The task with this guid anywhere in the workflow (subprocesses included), or None."""
    try:
        return workflow.get_task_from_id(UUID(task_id))
    except (TaskNotFoundException, ValueError):
        return None
