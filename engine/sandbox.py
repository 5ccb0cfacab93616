"""RestrictedPython sandbox for every script and expression SpiffWorkflow evaluates.

Uploading BPMN means uploading code, so nothing from a diagram runs through plain eval/exec:
sources are compiled with RestrictedPython (no `_`-prefixed names or attributes, no imports,
no classes) and run against a small whitelist of builtins plus guard functions.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import json
import operator
import re
import types
from collections.abc import Callable
from typing import Any

from RestrictedPython import PrintCollector, RestrictingNodeTransformer, compile_restricted, safe_builtins
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

# SpiffWorkflow looks for this filename in tracebacks to report the failing script line.
_FILENAME = "<string>"
_LINE_RE = re.compile(r"Line (\d+)")


class SandboxError(Exception):
    """A script or expression refused by the sandbox at compile time."""

    def __init__(self, source_kind: str, lineno: int, reason: str) -> None:
        self.source_kind = source_kind
        self.lineno = max(1, lineno)
        self.reason = reason
        super().__init__(f"{source_kind} refused by sandbox (line {self.lineno}): {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps the exception picklable for worker queues despite the custom __init__.
        return (type(self), (self.source_kind, self.lineno, self.reason))


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus refusing imports and classes up front (clearer than a NameError)."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed")
        return node


def _refusal(kind: str, exc: SyntaxError) -> SandboxError:
    """RestrictedPython packs its messages ('Line N: ...') into SyntaxError.args[0] as a tuple."""
    payload = exc.args[0] if exc.args else str(exc)
    if isinstance(payload, (tuple, list)):
        reason = "; ".join(str(m) for m in payload)
        match = _LINE_RE.search(reason)
        return SandboxError(kind, int(match.group(1)) if match else 1, reason)
    return SandboxError(kind, exc.lineno or 1, f"{type(exc).__name__}: {exc.msg or payload}")


def _compile(source: str, mode: str, kind: str) -> types.CodeType:
    if not isinstance(source, str):
        raise TypeError(f"{kind} source must be str, not {type(source).__name__}")
    try:
        return compile_restricted(source, filename=_FILENAME, mode=mode, policy=_Policy)
    except SyntaxError as exc:
        raise _refusal(kind, exc) from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise SandboxError(kind, 1, f"{type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> types.CodeType:
    """Compile a BPMN expression; surrounding whitespace from the XML text is ignored."""
    return _compile(source.strip() if isinstance(source, str) else source, "eval", "expression")


@functools.lru_cache(maxsize=4096)
def compile_script(source: str) -> types.CodeType:
    """Compile a BPMN script task / pre- / post-script."""
    return _compile(source, "exec", "script")


_CLOCK_ATTRS = frozenset({"now", "utcnow", "today"})
# fmt: off
_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "@=": operator.imatmul,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior,
    "^=": operator.ixor,
}
# fmt: on


def _getattr(obj: Any, name: str) -> Any:
    """safer_getattr (no `_` names, no str.format) that raises like Python and hides the wall clock."""
    if name in _CLOCK_ATTRS and (
        isinstance(obj, _dt.date) or (isinstance(obj, type) and issubclass(obj, _dt.date))
    ):
        raise AttributeError(f"{name!r} is not available: time comes from the engine")
    return safer_getattr_raise(obj, name)


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """Backs `x += y` and friends, which RestrictedPython rewrites to `x = _inplacevar_(op, x, y)`."""
    return _INPLACE_OPS[op](target, value)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Backs calls using *args / **kwargs."""
    return func(*args, **kwargs)


# Removed from RestrictedPython's list: attribute writers, class building, identity leaks, and
# exceptions that are not `Exception`s (raising SystemExit would kill the worker, not the task).
# fmt: off
_UNSAFE_BUILTINS = frozenset({
    "setattr", "delattr", "_getattr_", "__build_class__", "id",
    "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
})
# fmt: on
_BUILTINS: dict[str, object] = {k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS}

_GUARDS: dict[str, object] = {
    "__builtins__": _BUILTINS,
    "__name__": "gridloop_sandbox",
    "_getattr_": _getattr,
    "_getitem_": operator.getitem,
    "_getiter_": iter,
    "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
    "_unpack_sequence_": guarded_unpack_sequence,
    "_write_": full_write_guard,  # dicts and lists are writable; attribute writes on other objects are not
    "_inplacevar_": _inplacevar,
    "_apply_": _apply,
    "_print_": PrintCollector,  # print() output is collected and discarded
}


def json_loads(text: str) -> Any:
    """Parse JSON text (no hooks, so nothing callable can be smuggled in)."""
    return json.loads(text)


def json_dumps(value: Any) -> str:
    """Serialise a value to JSON text."""
    return json.dumps(value)


# fmt: off
DEFAULT_HELPERS: dict[str, object] = {
    **{f.__name__: f for f in (
        len, min, max, sum, abs, round, sorted, any, all, str, int, float, bool, list, dict, set,
        tuple, range, enumerate, zip, isinstance,
    )},
    "datetime": _dt.datetime,
    "timedelta": _dt.timedelta,
    "timezone": _dt.timezone,
    "json_loads": json_loads,
    "json_dumps": json_dumps,
}
# fmt: on

_JSON_ENCODER = json.JSONEncoder(allow_nan=False)
_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _is_json_value(value: Any) -> bool:
    """What json.dumps accepts without hooks (NaN/inf and cycles excluded); scalars take a fast path."""
    if type(value) in _JSON_SCALARS:
        return True
    try:
        _JSON_ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


class SandboxEnvironment(TaskDataEnvironment):
    """Task data shadows helpers (plain Python scoping) instead of raising; guard names always win."""

    def __init__(self, helpers: dict[str, object] | None = None) -> None:
        # `helpers` replaces DEFAULT_HELPERS; pass {**DEFAULT_HELPERS, ...} to extend it.
        super().__init__(dict(DEFAULT_HELPERS if helpers is None else helpers))

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> Any:
        code = compile_expression(expression)
        namespace = dict(self.globals)
        if external_context:
            namespace.update(external_context)
        namespace.update(context)
        namespace.update(_GUARDS)
        return eval(code, namespace)

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        code = compile_script(script)
        injected = {**self.globals, **(external_context or {})}
        injected = {k: v for k, v in injected.items() if k not in context}
        injected.update(_GUARDS)
        context.update(injected)
        try:
            exec(code, context)
        except SyntaxError as exc:  # e.g. `raise SyntaxError`; SpiffWorkflow's formatter needs a lineno
            exc.lineno = exc.lineno or 1
            raise
        finally:
            self._strip(context, injected)
        return True

    @staticmethod
    def _strip(context: dict[str, Any], injected: dict[str, object]) -> None:
        """Drop what we put in plus anything the serializer would silently turn into null."""
        for key in list(context):
            value = context[key]
            if key in _GUARDS or (key in injected and injected[key] is value) or not _is_json_value(value):
                del context[key]
