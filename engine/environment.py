"""The script environment every loaded workflow gets: the sandbox, the engine's clock, and the
operation registry. A deserialized workflow silently gets SpiffWorkflow's unsafe default engine,
so `attach` is called on every load, without exception."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from . import outgoing
from .errors import ProcessError
from .operations import OperationContext
from .sandbox import SandboxEnvironment
from .spiff_specs import PENDING

if TYPE_CHECKING:
    from .change import Change


class EngineEnvironment(SandboxEnvironment):
    def __init__(self, change: Change) -> None:
        super().__init__(isolated=change.rt.sandbox)
        self.change = change
        self.clock = change.rt.clock
        self._thrown: Counter[str] = Counter()  # per task: the rank of each thing it sends (ids derive from it)

    def call_operation(self, my_task, name: str, params: dict[str, Any]) -> Any:
        op = self.change.rt.registry.get(name)
        if op.is_async:
            self.change.schedule_operation(my_task, op, params)
            return PENDING
        ctx = OperationContext(instance_id=self.change.instance.id, task_id=str(my_task.id),
                               element_id=my_task.task_spec.bpmn_id or my_task.task_spec.name, now=self.change.now,
                               emit=self.change.add_job, conn=self.change.conn, move_scope=self.change.move_scope)
        try:
            result = op.handler(params, ctx)
            return json.loads(json.dumps(result))  # task data must stay JSON; fail here, not at save
        except Exception as exc:
            raise ProcessError(f"operation {name!r} failed: {type(exc).__name__}: {exc}",
                               element=ctx.element_id) from exc


    def message_leaves(self, my_task, event) -> None:
        """A thrown message nothing in this instance caught (spiff_events.OutgoingMessage)."""
        outgoing.message(self.change, my_task, event, self._rank(my_task))

    def signal_leaves(self, my_task, name: str, payload: Any) -> None:
        """A thrown signal, for every other waiting instance (spiff_events.BroadcastSignal)."""
        outgoing.signal(self.change, my_task, name, payload, self._rank(my_task))

    def call_process(self, my_task, spec) -> None:
        """A call activity starts its child (spiff_calls.CallActivity, engine/calls.py)."""
        self.change.rt.calls.start(self.change, my_task, spec)

    def call_cancelled(self, my_task, child_id: str) -> None:
        self.change.rt.calls.cancelled(self.change, my_task, child_id)

    def event_escapes(self, my_task, event) -> bool:
        """An error or escalation nothing here caught: True if the instance's caller takes it."""
        return self.change.rt.calls.escapes(self.change, my_task, event)

    def decide(self, my_task, decision_key: str | None) -> dict[str, Any]:
        """A business rule task's outputs: the newest version of its decision (spiff_dmn.DecisionTask)."""
        return self.change.rt.decisions.decide(self.change.conn, my_task, decision_key)

    def _rank(self, my_task) -> int:
        key = str(my_task.id)
        self._thrown[key] += 1
        return self._thrown[key] - 1


def attach(workflow, change: Change) -> None:
    workflow.script_engine = PythonScriptEngine(environment=EngineEnvironment(change))
