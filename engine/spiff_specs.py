"""GridLoop's extensions of SpiffWorkflow specs: timers that read the engine's clock and a service
task that dispatches to the operation registry (synchronously, or asynchronously via the outbox).

SpiffWorkflow's own timers call `datetime.now()` inside the library; rather than patching library
globals we swap each parsed timer definition for a subclass that asks the workflow's environment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.exceptions import TaskNotFoundException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as SpiffServiceTask
from SpiffWorkflow.util.task import TaskState

from . import parsing_names


def _now(my_task) -> datetime:
    clock = getattr(my_task.workflow.script_engine.environment, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


class ClockedTimeDate(TimeDateEventDefinition):
    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        if value is None:
            value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat()
            my_task._set_internal_data(event_value=value)
        if TimerEventDefinition.parse_time_or_duration(value) < _now(my_task):
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class ClockedDuration(DurationTimerEventDefinition):
    def has_fired(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        now = _now(my_task)
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            parsed = TimerEventDefinition.parse_iso_duration(expression)
            value = (now + TimerEventDefinition.get_timedelta_from_start(parsed, now)).isoformat()
            my_task._set_internal_data(event_value=value)
        if TimerEventDefinition.get_datetime(value) < now:
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class ClockedCycle(CycleTimerEventDefinition):
    def cycle_complete(self, my_task) -> bool:
        value = my_task._get_internal_data("event_value")
        now = _now(my_task)
        if value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            cycles, start, duration = _parse_cycle(expression, now)
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


def _parse_cycle(expression: str, now: datetime) -> tuple[int, datetime, timedelta]:
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
        definition.event_definitions = [_clocked(d) for d in definition.event_definitions]
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
    """SpiffBpmnParser with our service task; the class table is a copy, never the library's own."""

    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        parsing_names.full_tag("serviceTask"): (ServiceTaskParser, ServiceTask),
    }


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
