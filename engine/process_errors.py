"""What a model's failure is, in words a supervisor understands: the error SpiffWorkflow wrapped,
the element it happened at and that element's name. The log keeps the Python exception."""

from __future__ import annotations

import difflib

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException

from .errors import EngineError, ProcessError
from .sandbox import SandboxLimitError


def describe(exc: Exception) -> str:
    """The error in words a supervisor understands, without exception class names: SpiffWorkflow
    wraps a script's or condition's error (keeping only its type name), so the original is looked
    up along the chain; a sandbox budget says which budget stopped the script."""
    if isinstance(exc, ProcessError):  # ours, already in words; an operation's names its cause's type
        cause = exc.__cause__
        text = exc.message
        return text.replace(f"{type(cause).__name__}: ", "") if cause is not None else text
    original = original_error(exc)
    if str(original).startswith("No conditions satisfied"):  # an exclusive gateway without a default flow
        return "none of the gateway's conditions holds for these values (the model expects other values here)"
    if isinstance(original, SandboxLimitError):
        return f"the model's script or condition was stopped: {original}"
    if isinstance(original, EngineError):
        return original.message
    if isinstance(original, NameError):
        name = getattr(original, "name", None) or str(original)
        known = list(getattr(getattr(exc, "task", None), "data", None) or ())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"the model refers to '{name}', which this case does not have{hint}"
    if isinstance(original, ZeroDivisionError):
        return "the model divides by zero"
    if isinstance(original, KeyError):
        return f"the model looks up {original}, which is not there"
    if isinstance(original, AttributeError):
        name = getattr(original, "name", None)
        return f"the model asks a value for '{name}', which it does not have" if name else \
            f"the model asks a value for something it does not have ({original})"
    if isinstance(original, TypeError):  # Python's own wording stays in the log
        return "the model combines values that do not go together (e.g. text and a number)"
    if isinstance(original, ValueError):
        return "the model met a value it cannot use"
    if isinstance(original, RecursionError):
        return "the model nests too deeply"
    text = str(original).strip() or str(exc).strip()
    return f"the model failed ({text})" if text else "the model failed"


def original_error(exc: BaseException) -> BaseException:
    """The first error along the chain that is not SpiffWorkflow's wrapper of it."""
    seen: BaseException | None = exc
    while seen is not None:
        if not isinstance(seen, SpiffWorkflowException):
            return seen
        seen = seen.__cause__ or seen.__context__
    return exc


def element_of(exc: Exception) -> str | None:
    task_spec = _spec_of(exc)
    return getattr(task_spec, "bpmn_id", None) or getattr(task_spec, "name", None)


def _spec_of(exc: Exception):
    task_spec = getattr(exc, "task_spec", None)
    if task_spec is None:
        task = getattr(exc, "task", None)  # SpiffWorkflow's errors carry the task, others have none
        if task is not None:
            task_spec = task.task_spec
    return task_spec


def element_name(workflow: BpmnWorkflow, element: str | None, exc: Exception) -> str | None:
    """The element's name in the model (e.g. "派遣 Dispatch"), for people; None if it has none."""
    spec = _spec_of(exc)
    if getattr(spec, "bpmn_id", None) != element:
        specs = [workflow.spec, *workflow.subprocess_specs.values()]
        spec = next((t for w in specs for t in w.task_specs.values() if t.bpmn_id == element), None)
    return getattr(spec, "bpmn_name", None) or None
