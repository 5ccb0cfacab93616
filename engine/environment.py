"""The script environment every loaded workflow gets: the sandbox, the engine's clock, and the
operation registry. A deserialized workflow silently gets SpiffWorkflow's unsafe default engine,
so `attach` is called on every load, without exception."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from .errors import ProcessError
from .operations import OperationContext
from .sandbox import SandboxEnvironment
from .spiff_specs import PENDING

if TYPE_CHECKING:
    from .change import Change


class EngineEnvironment(SandboxEnvironment):
    def __init__(self, change: Change) -> None:
        super().__init__()
        self.change = change
        self.clock = change.rt.clock

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


def attach(workflow, change: Change) -> None:
    workflow.script_engine = PythonScriptEngine(environment=EngineEnvironment(change))
