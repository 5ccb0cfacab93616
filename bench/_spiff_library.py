"""One model run to its end in memory by SpiffWorkflow itself (SpiffBpmnParser + BpmnWorkflow), with
the driver policy both sides share (bench/spiff_conformance.py). Timers read a controlled clock: the
library calls `datetime.now()` inside its timer module, so for this in-memory run only that module's
`datetime` is replaced by one whose `now()` is the bench's clock."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._spiff_models import Model, is_bpmn, is_dmn

# The driver's policy, the same on both sides: complete the ready user/manual task with the smallest
# element id (no data); when nothing is ready, move the clock by the next step of WAIT_LADDER and let
# timers fire; any progress resets the ladder; the ladder's end, or MAX_ACTIONS, ends the run.
WAIT_LADDER = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=30), timedelta(days=400))
MAX_ACTIONS = 60
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@dataclass
class EndState:
    """How a run ended. outcome: completed | waiting (nothing the policy may do) | error | refused
    (the model was not accepted) | budget (MAX_ACTIONS reached)."""
    outcome: str
    element: str | None = None  # where an error happened
    message: str | None = None  # the refusal or error in words
    completed: frozenset[str] = frozenset()  # element ids of the completed tasks, sub-processes included
    data: Any = None  # the final data when completed (JSON-normalized)
    open_tasks: tuple[str, ...] = ()  # user/manual tasks left ready
    actions: list[str] = field(default_factory=list)  # what the driver did, for the record


class BenchClock:
    def __init__(self, start: datetime = START) -> None:
        self.now_value = start

    def now(self) -> datetime:
        return self.now_value

    def advance(self, delta: timedelta) -> None:
        self.now_value += delta


def normalized(data: Any) -> Any:
    return json.loads(json.dumps(data, default=str, sort_keys=True))


@contextlib.contextmanager
def library_clock(clock: BenchClock) -> Iterator[None]:
    from SpiffWorkflow.bpmn.specs.event_definitions import timer

    class ClockedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # the signature of datetime.now
            value = clock.now()
            return value if tz is None else value.astimezone(tz)

    original = timer.datetime
    timer.datetime = ClockedDatetime
    try:
        yield
    finally:
        timer.datetime = original


def completed_elements(workflow) -> set[str]:
    """Element ids of COMPLETED tasks in the workflow and all its sub-workflows (a walk of every tree:
    the library's iterator does not descend into finished sub-processes)."""
    from SpiffWorkflow.util.task import TaskState

    found: set[str] = set()
    trees = [workflow.task_tree] + [sp.task_tree for sp in getattr(workflow, "subprocesses", {}).values()]
    for root in trees:
        stack = [root]
        while stack:
            task = stack.pop()
            if task.has_state(TaskState.COMPLETED) and task.task_spec.bpmn_id:
                found.add(task.task_spec.bpmn_id)
            stack.extend(task.children)
    return found


def _error_element(exc: BaseException) -> str | None:
    for attr in ("task_spec", "sender"):
        spec = getattr(exc, attr, None)
        if spec is not None and getattr(spec, "bpmn_id", None):
            return spec.bpmn_id
    task = getattr(exc, "task", None)
    if task is not None:
        return task.task_spec.bpmn_id
    return None


def _words(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def run_guarded(model: Model, *, sandbox: bool = True, seconds: float = 30,
                memory_bytes: int = 2 << 30) -> EndState:
    """`run` in a forked child with a time and memory limit: some models make the library recurse
    without end (a process that calls itself)."""
    import multiprocessing
    import resource

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the models' scripts print (the library's own engine lets them): not into the JSON
        try:
            send.send(run(model, sandbox=sandbox))
        except BaseException as exc:  # MemoryError, RecursionError...
            send.send(EndState("error", message=f"the library run failed: {_words(exc)}"))

    process = ctx.Process(target=child, daemon=True)
    process.start()
    try:
        if receive.poll(seconds):
            return receive.recv()
        return EndState("error", message=f"the library did not end within {seconds:g} s")
    except EOFError:
        return EndState("error", message=f"the library run died (exit code {process.exitcode})")
    finally:
        process.kill()
        process.join()


def run(model: Model, *, sandbox: bool = True) -> EndState:
    """Parse the bundle with SpiffBpmnParser and drive the process; `sandbox`: GridLoop's script
    environment (its helpers and restrictions) instead of the library's default."""
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
    from SpiffWorkflow.util.task import TaskState

    from engine.sandbox import SandboxEnvironment

    if not model.process_id:
        return EndState("refused", message="the file is not well-formed XML")
    parser = SpiffBpmnParser()
    try:
        parser.add_bpmn_files([str(p) for p in model.bundle if is_bpmn(p)])
        dmn = [str(p) for p in model.bundle if is_dmn(p)]
        if dmn:
            parser.add_dmn_files(dmn)
        spec = parser.get_spec(model.process_id)
        subprocesses = parser.get_subprocess_specs(model.process_id)
    except Exception as exc:  # the library refuses the model: that is its end state
        return EndState("refused", message=_words(exc))
    engine = PythonScriptEngine(environment=SandboxEnvironment()) if sandbox else PythonScriptEngine()
    clock = BenchClock()
    actions: list[str] = []
    with library_clock(clock):
        try:
            wf = BpmnWorkflow(spec, subprocesses, script_engine=engine)
            wf.do_engine_steps()
            rung = 0
            while len(actions) < MAX_ACTIONS:
                if wf.is_completed():
                    return EndState("completed", completed=frozenset(completed_elements(wf)),
                                    data=normalized(wf.data), actions=actions)
                ready = sorted(wf.get_tasks(state=TaskState.READY, manual=True),
                               key=lambda t: t.task_spec.bpmn_id or t.task_spec.name)
                if ready:
                    actions.append(f"complete {ready[0].task_spec.bpmn_id}")
                    ready[0].run()
                    rung = 0
                elif rung < len(WAIT_LADDER):
                    before = completed_elements(wf)
                    clock.advance(WAIT_LADDER[rung])
                    actions.append(f"wait {WAIT_LADDER[rung]}")
                    wf.refresh_timers()
                    rung = 0 if completed_elements(wf) != before or _advanced(wf, before) else rung + 1
                else:
                    return _waiting(wf, actions)
                wf.do_engine_steps()
            return EndState("budget", completed=frozenset(completed_elements(wf)), actions=actions)
        except Exception as exc:
            return EndState("error", element=_error_element(exc), message=_words(exc), actions=actions)


def _advanced(wf, before: set[str]) -> bool:
    """Did the timers that fired move anything on (checked after the engine's steps)?"""
    wf.do_engine_steps()
    return completed_elements(wf) != before


def _waiting(wf, actions: list[str]) -> EndState:
    from SpiffWorkflow.util.task import TaskState

    open_tasks = sorted(t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.READY, manual=True))
    return EndState("waiting", completed=frozenset(completed_elements(wf)), open_tasks=tuple(open_tasks),
                    actions=actions)
