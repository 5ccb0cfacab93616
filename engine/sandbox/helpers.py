"""What scripts can name: the built-ins (RestrictedPython's safe list minus what could escape or
kill the worker), the default helpers (json_loads/json_dumps among them), the static guards, and
which of them an evaluation replaces by a version charged to its budget."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable
from typing import Any

from RestrictedPython import safe_builtins
from RestrictedPython.Guards import full_write_guard

from . import limits
from .guarded import GUARDED_RANGE, Guarded
from .json_budget import OverBudget, bounded_dumps
from .limits import SandboxLimitError
from .methods import MethodGuards
from .operators import OperatorGuards, guarded_pow, guarded_round, reraise_limit


class Budget(OperatorGuards, MethodGuards):
    """One evaluation's budget with every guard the rewritten code may call."""

    __slots__ = ()

    def json_dumps(self, value: Any) -> str:
        """json_dumps(): the text is measured (and refused past MAX_ITEMS characters) before it is built."""
        try:
            text = bounded_dumps(value, limits.MAX_ITEMS)
        except OverBudget:
            raise SandboxLimitError(f"json_dumps() would build more than {limits.MAX_ITEMS:,} characters of "
                                    f"JSON (shared references counted each time); the limit is "
                                    f"{limits.MAX_ITEMS:,}") from None
        self.scanned(len(text), True)
        return text


# name the rewritten code uses → Budget method
# fmt: off
BUDGET_GUARDS: dict[str, str] = {
    "_getiter_": "getiter", "_tick_": "tick", "_getattr_": "getattr", "_getitem_": "getitem",
    "_iter_unpack_sequence_": "iter_unpack_sequence", "_unpack_sequence_": "unpack_sequence",
    "_inplacevar_": "inplacevar", "_add_": "add", "_mul_": "mul", "_mod_": "mod", "_format_": "format",
    "_print_": "print_collector", "_pow_": "pow", "_lshift_": "lshift", "_floordiv_": "floordiv",
    "_compare_": "compare", "_compared_": "compared", "_hashed_": "hashed",
}
# fmt: on


# Removed from RestrictedPython's list: attribute writers, class building, identity leaks, and
# exceptions that are not `Exception`s (raising SystemExit would kill the worker, not the task).
# fmt: off
_UNSAFE_BUILTINS = frozenset({
    "setattr", "delattr", "_getattr_", "__build_class__", "id",
    "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
})
# fmt: on
BUILTINS: dict[str, object] = {k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS}
BUILTINS.update(range=GUARDED_RANGE, pow=guarded_pow, round=guarded_round)


def sandbox_builtin_names() -> frozenset[str]:
    """The built-in names every script and expression may use."""
    return frozenset(BUILTINS)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Backs calls using *args / **kwargs (the starred values are counted by `_getiter_`)."""
    return func(*args, **kwargs)


GUARDS: dict[str, object] = {
    "__builtins__": BUILTINS,
    "__name__": "gridloop_sandbox",
    "_write_": full_write_guard,  # dicts and lists are writable; attribute writes on other objects are not
    "_apply_": _apply,
    "_reraise_limit_": reraise_limit,
}
GUARD_NAMES = frozenset(GUARDS) | frozenset(BUDGET_GUARDS)


def json_loads(text: str) -> Any:
    """Parse JSON text (no hooks, so nothing callable can be smuggled in)."""
    return json.loads(text)


def json_dumps(value: Any) -> str:
    """Serialise a value to JSON text (in an evaluation, Budget.json_dumps stands in for it)."""
    try:
        return bounded_dumps(value, limits.MAX_ITEMS)
    except OverBudget:
        raise SandboxLimitError(f"json_dumps() would build more than {limits.MAX_ITEMS:,} characters of JSON; "
                                f"the limit is {limits.MAX_ITEMS:,}") from None


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


def _plain(b: Budget, f: Any) -> Guarded:
    return Guarded(f, b)


# id of what a name refers to → how an evaluation's budget replaces it
GUARDABLE: dict[int, Callable[[Budget, Any], object]] = {
    **{id(f): _plain for f in (list, tuple, dict, any, all, json_loads)},
    **{id(f): (lambda b, f: Guarded(f, b, deep=True)) for f in (set, frozenset, min, max)},
    id(sorted): lambda b, f: Guarded(f, b, sort=True, deep=True),
    id(str): lambda b, f: Guarded(f, b, call=b.str),
    id(int): lambda b, f: Guarded(f, b, call=b.int),
    id(repr): lambda b, f: b.repr,
    id(hash): lambda b, f: b.hash,
    id(divmod): lambda b, f: b.divmod,
    id(json_dumps): lambda b, f: b.json_dumps,
    id(enumerate): lambda b, f: b.enumerate,
    id(zip): lambda b, f: b.zip,
    id(range): lambda b, f: GUARDED_RANGE,
    id(pow): lambda b, f: b.pow,
    id(guarded_pow): lambda b, f: b.pow,
    id(round): lambda b, f: guarded_round,
    id(sum): lambda b, f: b.sum,
}

