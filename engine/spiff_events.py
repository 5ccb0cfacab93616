"""Messages and signals that leave an instance. SpiffWorkflow delivers a thrown event only inside the
workflow that threw it (a message nobody there catches is kept in `bpmn_events`, a signal that some
task there catches goes no further). GridLoop swaps each parsed message and signal definition for a
subclass that, after the library's own throw, hands what must leave to the workflow's environment:
the engine writes it to the outbox, and a job delivers it after commit (messages.py, signals.py).

Errors and escalations that nothing in the instance catches are handed to the environment too (a
called instance reports them to its caller). Catching and throwing definitions are swapped alike:
SpiffWorkflow matches an event to a catcher by the definition's class and name."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.event_types import ThrowingEvent
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition as SpiffError
from SpiffWorkflow.spiff.specs.event_definitions import EscalationEventDefinition as SpiffEscalation
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition as SpiffMessage
from SpiffWorkflow.spiff.specs.event_definitions import SignalEventDefinition as SpiffSignal


def _environment(my_task) -> Any:
    return my_task.workflow.script_engine.environment


class OutgoingMessage(SpiffMessage):
    """A message definition whose uncaught throws leave the instance (through `message_leaves`)."""

    def throw(self, my_task) -> None:
        top = my_task.workflow.top_workflow
        before = len(top.bpmn_events)
        super().throw(my_task)  # caught here if a task of this instance waits for it
        leaves = getattr(_environment(my_task), "message_leaves", None)
        if leaves is not None and len(top.bpmn_events) > before:
            leaves(my_task, top.bpmn_events.pop())


class BroadcastSignal(SpiffSignal):
    """A signal definition whose throws also reach every other waiting instance (`signal_leaves`):
    a signal is a broadcast, whether or not a task of this instance caught it too."""

    def throw(self, my_task) -> None:
        leaves = getattr(_environment(my_task), "signal_leaves", None)
        if leaves is None:
            super().throw(my_task)
            return
        payload = None if self.expression is None else my_task.workflow.script_engine.evaluate(my_task, self.expression)
        event = BpmnEvent(self, payload=payload)
        my_task.workflow.top_workflow.event_manager.catch(event, internal=False)  # this instance's own waiters
        leaves(my_task, self.name, payload)


class _Escaping:
    """An error or escalation nothing in this instance caught: the library keeps it in `bpmn_events`;
    a called instance hands it to its environment, which reports it to the calling instance, where a
    boundary event on the call activity may catch it (engine/calls.py)."""

    def throw(self, my_task) -> None:
        top = my_task.workflow.top_workflow
        before = len(top.bpmn_events)
        super().throw(my_task)  # type: ignore[misc]
        escapes = getattr(_environment(my_task), "event_escapes", None)
        if escapes is not None and len(top.bpmn_events) > before and escapes(my_task, top.bpmn_events[-1]):
            top.bpmn_events.pop()


class EscapingError(_Escaping, SpiffError):
    pass


class EscapingEscalation(_Escaping, SpiffEscalation):
    pass


_SWAPPED = {SpiffMessage: OutgoingMessage, SpiffSignal: BroadcastSignal, SpiffError: EscapingError,
            SpiffEscalation: EscapingEscalation}


def _swapped(definition):
    if isinstance(definition, MultipleEventDefinition):
        definition.event_definitions = [_swapped(d) for d in definition.event_definitions]
        return definition
    target = _SWAPPED.get(type(definition))
    if target is None:
        return definition
    swapped = object.__new__(target)
    swapped.__dict__.update(definition.__dict__)
    return swapped


def use_engine_events(spec) -> None:
    """Replace the message and signal definitions of a parsed spec with the engine's, in place."""
    for task_spec in spec.task_specs.values():
        definition = getattr(task_spec, "event_definition", None)
        if definition is not None:
            task_spec.event_definition = _swapped(definition)


def _inner(definition) -> list:
    return list(getattr(definition, "event_definitions", [definition]))


def lint_thrown_messages(specs: list) -> Iterator[tuple[str, str]]:
    """(element, problem) for every message thrown without correlation properties that nothing in the
    same model catches: another instance could not be told apart from any other, so it would never
    arrive anywhere."""
    caught = {d.name for s in specs for ts in s.task_specs.values() if not isinstance(ts, ThrowingEvent)
              for d in _inner(getattr(ts, "event_definition", None)) if isinstance(d, SpiffMessage)}
    for s in specs:
        for ts in s.task_specs.values():
            if not isinstance(ts, ThrowingEvent):
                continue
            for d in _inner(getattr(ts, "event_definition", None)):
                if isinstance(d, SpiffMessage) and not d.correlation_properties and d.name not in caught:
                    yield (ts.bpmn_id or ts.name, f"message '{d.name}' leaves the instance without correlation "
                                                  "properties: add a bpmn:correlationProperty with a retrieval "
                                                  "expression for it, so that it can reach one waiting instance")
