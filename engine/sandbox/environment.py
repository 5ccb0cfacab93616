"""The script environment SpiffWorkflow calls: each `evaluate` / `execute` runs compiled, rewritten
code under a fresh budget; after a script, the task data it leaves is measured as the engine will
serialize it (the data budget) before anything is encoded."""

from __future__ import annotations

import functools
import types
from typing import TYPE_CHECKING, Any, NamedTuple

from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

from . import limits
from .helpers import BUDGET_GUARDS, BUILTINS, DEFAULT_HELPERS, GUARD_NAMES, GUARDABLE, GUARDS, Budget
from .json_budget import OverBudget, json_size
from .limits import SandboxLimitError
from .policy import compile_expression, compile_script, names_used

if TYPE_CHECKING:
    from .isolation import IsolatedEvaluator


class Prepared(NamedTuple):
    """Compiled code plus what an evaluation of it needs: only the budget-bound guards and helpers
    the code can reach are built, so `approved is True` costs what it did before budgets."""

    code: types.CodeType
    guards: tuple[tuple[str, str], ...]  # (name the rewritten code uses, Budget method)
    names: tuple[str, ...]  # the other names: helpers among them may need a charged version


def _prepared(code: types.CodeType) -> Prepared:
    names = names_used(code)
    guards = tuple((name, attr) for name, attr in BUDGET_GUARDS.items() if name in names)
    return Prepared(code, guards, tuple(sorted(names - GUARD_NAMES)))


@functools.lru_cache(maxsize=4096)
def prepare_expression(source: str) -> Prepared:
    return _prepared(compile_expression(source))


@functools.lru_cache(maxsize=4096)
def prepare_script(source: str) -> Prepared:
    return _prepared(compile_script(source))


def check_data_size(context: dict[str, Any], keys: list[str] | None = None) -> None:
    """Refuse task data whose JSON would pass MAX_DATA_BYTES; values JSON cannot hold are dropped
    (the serializer would silently turn them into null). Measuring stops at the budget."""
    left = limits.MAX_DATA_BYTES
    memo: dict[int, int] = {}
    for key in list(context) if keys is None else keys:
        try:
            left -= json_size(context[key], left, memo=memo) + len(key) + 4
        except OverBudget:
            left = -1
        except (TypeError, ValueError, RecursionError):
            del context[key]
            continue
        if left < 0:
            raise SandboxLimitError(f"the task data would take more than {limits.MAX_DATA_BYTES:,} bytes as JSON "
                                    f"(the data budget; shared references counted each time), at {key!r}")


class SandboxEnvironment(TaskDataEnvironment):
    """Task data shadows helpers (plain Python scoping) instead of raising; guard names always win.
    Each call of `evaluate` / `execute` runs under a fresh budget (see engine/sandbox/__init__.py).
    With `isolated`, evaluations run in its child processes instead (isolation.py): default helpers
    only (functions cannot cross the process boundary), and a script's context is replaced by what
    the child left (in-place changes a condition makes stay in the child)."""

    def __init__(self, helpers: dict[str, object] | None = None, isolated: IsolatedEvaluator | None = None) -> None:
        # `helpers` replaces DEFAULT_HELPERS; pass {**DEFAULT_HELPERS, ...} to extend it.
        if isolated is not None and helpers is not None:
            raise ValueError("an isolated sandbox runs the default helpers only")
        super().__init__(dict(DEFAULT_HELPERS if helpers is None else helpers))
        self.isolated = isolated

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> Any:
        prepared = prepare_expression(expression)  # a refusal needs no round trip
        if self.isolated is not None:
            return self.isolated.run("evaluate", expression, context, external_context)
        helpers, guards = self._budgeted(prepared)
        namespace = dict(helpers)
        if external_context:
            namespace.update(external_context)
        namespace.update(context)
        namespace.update(GUARDS)
        namespace.update(guards)
        return eval(prepared.code, namespace)

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        prepared = prepare_script(script)
        if self.isolated is not None:
            result = self.isolated.run("execute", script, context, external_context)
            context.clear()
            context.update(result)
            return True
        helpers, guards = self._budgeted(prepared)
        injected = {**helpers, **(external_context or {})}
        injected = {k: v for k, v in injected.items() if k not in context}
        injected.update(GUARDS)
        injected.update(guards)
        context.update(injected)
        try:
            exec(prepared.code, context)
        except SyntaxError as exc:  # e.g. `raise SyntaxError`; SpiffWorkflow's formatter needs a lineno
            exc.lineno = exc.lineno or 1
            raise
        finally:
            self._strip(context, injected)
        check_data_size(context)
        return True

    def _budgeted(self, prepared: Prepared) -> tuple[dict[str, object], dict[str, object]]:
        """A fresh budget for one evaluation: the helpers with the built-in consumers the code uses
        replaced by charged versions, and the budget-bound guards the code uses."""
        helpers, budget, replaced = self.globals, None, None
        for name in prepared.names:
            value = helpers.get(name, BUILTINS.get(name))  # str, repr: also RestrictedPython builtins
            make = GUARDABLE.get(id(value))
            if make is not None:
                budget = budget or Budget()
                replaced = replaced or dict(helpers)
                replaced[name] = make(budget, value)
        if not prepared.guards:
            return replaced or helpers, {}
        budget = budget or Budget()
        return replaced or helpers, {name: getattr(budget, attr) for name, attr in prepared.guards}

    @staticmethod
    def _strip(context: dict[str, Any], injected: dict[str, object]) -> None:
        """Drop what we put in (guards, helpers the script did not replace)."""
        for key in list(context):
            if key in GUARD_NAMES or (key in injected and injected[key] is context[key]):
                del context[key]
