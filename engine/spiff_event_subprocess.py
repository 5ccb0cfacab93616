"""Event sub-processes (`<bpmn:subProcess triggeredByEvent="true">`) as GridLoop runs them.

SpiffWorkflow 3.2 starts an event sub-process of a process in two ways: one whose start event is a
timer waits from the moment the instance starts (its start event is a waiting task like any other);
one whose start event is a message, signal, error or escalation is a *trigger* of the process, started
when such an event reaches the instance and nothing else in it catches it. Two gaps are closed here:

- the library's start-event parser reads no error or escalation definition, so such an event
  sub-process ran at once when the instance started; ours reads them inside an event sub-process;
- the library ignores `isInterrupting`: every event sub-process ran beside the flow. Ours, when the
  start event of an interrupting one (the BPMN default) fires, cancels everything else of the process
  — its flow, the other event sub-processes, the timers they wait for — as BPMN says.

The message and signal triggers are known to the read models (engine/triggers.py), so that a message
or a broadcast finds the instance by the same indexes as a waiting task.
"""

from __future__ import annotations

from collections.abc import Iterator

from SpiffWorkflow.bpmn.parser.event_parsers import (
    CONDITIONAL_EVENT_XPATH,
    ERROR_EVENT_XPATH,
    ESCALATION_EVENT_XPATH,
    MESSAGE_EVENT_XPATH,
    SIGNAL_EVENT_XPATH,
    TIMER_EVENT_XPATH,
)
from SpiffWorkflow.bpmn.specs.defaults import StartEvent as LibraryStartEvent
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import CycleTimerEventDefinition, TimerEventDefinition
from SpiffWorkflow.spiff.parser.event_parsers import SpiffStartEventParser
from SpiffWorkflow.util.task import TaskState

from .parsing_names import full_tag


class StartEvent(LibraryStartEvent):
    """A start event that knows whether it interrupts (it matters only in an event sub-process)."""

    interrupting = True
    in_event_subprocess = False

    def _run_hook(self, my_task) -> bool:
        done = super()._run_hook(my_task)
        if self.in_event_subprocess and self.interrupting:
            interrupt_scope(my_task)
        elif self.in_event_subprocess and not isinstance(self.event_definition, TimerEventDefinition):
            rearm(my_task)
        return done


def interrupt_scope(my_task) -> None:
    """The start event of an interrupting event sub-process fired: cancel every other branch of the
    process it belongs to (the flow and the other event sub-processes), keeping only this one."""
    esp = _event_subprocess_task(my_task)
    if esp is None or esp.parent is None:
        return
    for sibling in list(esp.parent.children):
        if sibling is not esp:
            sibling.cancel()


def rearm(my_task) -> None:
    """A non-interrupting event sub-process started: another one waits for the next such event while
    its scope lasts (a timer's fires once, as in the library)."""
    esp = _event_subprocess_task(my_task)
    if esp is None or esp.parent is None:
        return
    again = esp.parent._add_child(esp.task_spec, TaskState.FUTURE)
    again.triggered = True
    again.task_spec._update(again)


def _event_subprocess_task(my_task):
    parent_id = getattr(my_task.workflow, "parent_task_id", None)
    return None if parent_id is None else my_task.workflow.top_workflow.get_task_from_id(parent_id)


class StartEventParser(SpiffStartEventParser):
    """The library's start-event parser, reading error and escalation start events inside an event
    sub-process (it read them as none start events) and the start event's `isInterrupting`."""

    def create_task(self):
        xpaths = [MESSAGE_EVENT_XPATH, SIGNAL_EVENT_XPATH, TIMER_EVENT_XPATH, CONDITIONAL_EVENT_XPATH]
        inside = in_event_subprocess(self.node)
        if inside:
            xpaths += [ERROR_EVENT_XPATH, ESCALATION_EVENT_XPATH]
        task = self._create_task(self.get_event_definition(xpaths))
        task.in_event_subprocess = inside
        task.interrupting = (self.node.get("isInterrupting") or "true").strip().lower() != "false"
        self.spec.start.connect(task)
        return task


def in_event_subprocess(node) -> bool:
    parent = node.getparent()
    return (parent is not None and parent.tag == full_tag("subProcess")
            and (parent.get("triggeredByEvent") or "").strip().lower() == "true")


PARSER_CLASSES = {full_tag("startEvent"): (StartEventParser, StartEvent)}


def arm_event_subprocesses(spec, subprocess_specs: dict) -> None:
    """Make every event sub-process of `spec` wait from the start of its scope, as the library does
    for those with a timer: its start event is then a waiting task that the read models index like
    any other (message subscriptions, signal subscriptions, the deadline scan). The library keeps the
    others as triggers and, when one fires, connects it to the shared spec, so that every instance
    created afterwards ran it from its start; connected here, once, nothing changes the spec later."""
    for name in list(spec.start.trigger_specs):
        task_spec = spec.task_specs[name]
        if task_spec not in spec.start.outputs:
            spec.start.connect(task_spec)
            task_spec.connect(spec.end)
    spec.start.trigger_specs = []
    for task_spec in spec.start.outputs:
        inner = subprocess_specs.get(getattr(task_spec, "spec", None))
        if inner is not None and any(getattr(s, "in_event_subprocess", False) for s in inner.bpmn_start_events):
            task_spec.event_subprocess = True


def is_event_subprocess(task) -> bool:
    return getattr(task.task_spec, "event_subprocess", False)


def _start_waiting(top, esp_task) -> bool:
    """Whether the event sub-process of this task has not started yet (its start event waits)."""
    sub = top.subprocesses.get(esp_task.id)
    return sub is not None and any(t.has_state(TaskState.WAITING) and getattr(t.task_spec, "in_event_subprocess", False)
                                   for t in sub.tasks.values())


_BUSY = TaskState.READY | TaskState.STARTED | TaskState.WAITING | TaskState.ERROR


def end_idle_event_subprocesses(workflow) -> bool:
    """When the flow of a process (or of an embedded sub-process) has ended, its event sub-processes
    that have not started end with it, so the scope completes (BPMN); the library left the instance
    running until such a start event happened. One already running keeps its scope open. Returns
    whether anything was cancelled (the caller runs the engine again)."""
    top = workflow
    cancelled = False
    for scope in (top, *top.subprocesses.values()):
        if scope.is_completed() or scope.task_tree is None:
            continue
        idle = [c for c in scope.task_tree.children if is_event_subprocess(c) and c.has_state(TaskState.STARTED)
                and _start_waiting(top, c)]
        if not idle:
            continue
        idle_ids = {c.id for c in idle}
        busy = any(t.task_spec.bpmn_id and t.has_state(_BUSY) and t.id not in idle_ids for t in scope.tasks.values())
        if not busy:
            for task in idle:
                task.cancel()
            for join in [t for t in scope.tasks.values() if t.has_state(TaskState.WAITING) and not t.task_spec.bpmn_id]:
                join.task_spec._update(join)  # the end join waited for the branches just cancelled
            cancelled = True
    return cancelled


def lint_event_subprocesses(specs: list) -> Iterator[tuple[str, str]]:
    """(element, problem) for the event sub-process starts GridLoop does not run: a cycle timer (the
    library fires it once, not on every period), an error start event that does not interrupt (BPMN
    has none: the error ends what raised it)."""
    for spec in specs:
        for ts in spec.task_specs.values():
            if not isinstance(ts, StartEvent):
                continue
            element, definition = ts.bpmn_id or ts.name, ts.event_definition
            if not ts.in_event_subprocess:
                continue
            if isinstance(definition, CycleTimerEventDefinition):
                yield element, ("an event sub-process cannot start on a timeCycle: SpiffWorkflow starts it once, "
                                "not on every period; use a timeDuration or a timeDate")
            elif isinstance(definition, ErrorEventDefinition) and not ts.interrupting:
                yield element, ("an error start event always interrupts (BPMN): remove isInterrupting=\"false\" or "
                                "use an escalation")
