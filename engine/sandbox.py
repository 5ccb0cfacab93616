"""RestrictedPython sandbox for every script and expression SpiffWorkflow evaluates.

Uploading BPMN means uploading code, so nothing from a diagram runs through plain eval/exec:
sources are compiled with RestrictedPython (no `_`-prefixed names or attributes, no imports,
no classes) and run against a small whitelist of builtins plus guard functions.

Every evaluation (one script run, one condition, one expression) also gets a budget, enforced
inside the sandbox without signals or global state (web processes run scripts in threads). The
policy rewrites the code so the budget sees what it needs to:

* Steps (`MAX_STEPS` per evaluation): each iteration of a `for` loop, comprehension, `while` loop,
  `yield from` or `*` unpacking, and each call of a function or lambda the script defines, is a
  step. Work done in C on the script's behalf costs one step per `ITEMS_PER_STEP` items (ten times
  as many characters): the built-in consumers (list, tuple, set, dict, sorted, sum, min, max, any,
  all, str, repr), slices, print, and the str/bytes/list/dict/set methods that copy, scan or build
  (join, replace, split, extend, copy, sort, ...). So one evaluation makes at most about 10 million
  items or 100 million characters, and loops over data of ordinary size are not noticed.
* Sizes: no single operation builds a str/bytes/list/tuple of more than `MAX_ITEMS` items (`*`, `+`,
  `+=`, `*=`, sum of lists, join, replace, ljust/rjust/center/zfill, expandtabs, translate, extend,
  int.to_bytes, widths in %-formatting and f-string format specs) or an int of more than
  `MAX_INT_BITS` bits (`**`, pow(), `*`, `<<`, round() to negative digits), and range() refuses more
  than `MAX_STEPS` items. Sizes are checked before the work is done: `'a' * 10**10` and
  `10 ** 10 ** 10` never allocate anything.
* Time (`MAX_SECONDS` of wall clock per evaluation, looked at every 64 steps): the backstop for
  operations that cost one step each but scan a lot, e.g. `x in big_list` in a loop.

Going over a limit raises `SandboxLimitError`. The script cannot catch it (every `except` clause
re-raises it), so the script task or condition fails and the change rolls back with a ProcessError
naming the element, like any other script error.

`while` loops are allowed and counted rather than refused: the budget is needed anyway, because
`for` loops over generators, recursion and lambdas can spin as long as any `while` loop can; with
its test counted, `while` is exactly as bounded as `for`, and refusing it would only forbid an
ordinary construct without making anything safer (no deploy-time check can decide termination).

Not bounded: one C-level operation on a structure built from shared references (repr, ==, hash or
json of `[[s] * 1000] * 1000` with a long `s` walks far more than it holds). Closing that needs a
separate process with resource limits.
"""

from __future__ import annotations

import ast
import datetime as _dt
import functools
import json
import math
import operator
import re
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from RestrictedPython import PrintCollector, RestrictingNodeTransformer, compile_restricted, safe_builtins
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

# SpiffWorkflow looks for this filename in tracebacks to report the failing script line.
_FILENAME = "<string>"
_LINE_RE = re.compile(r"Line (\d+)")

MAX_STEPS = 100_000  # per evaluation: loop iterations, calls of script-defined functions, ...
ITEMS_PER_STEP = 100  # ... and one step per this many items a built-in copies or scans
MAX_ITEMS = 1_000_000  # the longest str/bytes/list/tuple one operation may build
MAX_INT_BITS = 10_000  # the largest int `**`, pow(), `*` and `<<` may build (about 3,000 digits)
MAX_SECONDS = 2.0  # wall clock per evaluation
_CLOCK_EVERY = 64  # steps between two looks at the clock


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


class SandboxLimitError(Exception):
    """A script or expression went over its budget (steps, size or time) at run time."""


def _name(id_: str, like: ast.AST) -> ast.Name:
    return ast.copy_location(ast.Name(id=id_, ctx=ast.Load()), like)


def _call(func: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
    return ast.copy_location(ast.Call(func=_name(func, like), args=args, keywords=[]), like)


def _ticked(expr: ast.expr) -> ast.expr:
    """`_tick_() or expr`: counts a step, then evaluates to `expr` (`_tick_` returns None)."""
    return ast.copy_location(ast.BoolOp(op=ast.Or(), values=[_call("_tick_", [], expr), expr]), expr)


_BINOP_GUARDS: dict[type, str] = {
    ast.Add: "_add_", ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Mod: "_mod_",
}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus refusing imports and classes up front (clearer than a NameError),
    plus the rewrites the budget needs (see the module docstring). Generated nodes use `_`-names,
    which scripts themselves may not, and are built after the user's nodes were checked."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> ast.AST:
        self.error(node, "import statements are not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self.error(node, "class definitions are not allowed")
        return node

    def visit_While(self, node: ast.While) -> ast.AST:
        """Counted, not refused (see the module docstring): `while t:` → `while _tick_() or t:`."""
        node = self.node_contents_visit(node)
        node.test = _ticked(node.test)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node = super().visit_FunctionDef(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_tick_", [], node)), node.body[0]))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        node = super().visit_Lambda(node)
        node.body = _ticked(node.body)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        node = super().visit_ExceptHandler(node)
        node.body.insert(0, ast.copy_location(ast.Expr(_call("_reraise_limit_", [], node)), node.body[0]))
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.node_contents_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        return node if guard is None else _call(guard, [node.left, node.right], node)

    def visit_Starred(self, node: ast.Starred) -> ast.AST:
        node = self.node_contents_visit(node)
        if isinstance(node.ctx, ast.Load):  # [*x, *x], f(*x): counted like a loop over x
            node.value = _call("_getiter_", [node.value], node.value)
        return node

    def visit_YieldFrom(self, node: ast.YieldFrom) -> ast.AST:
        node = self.node_contents_visit(node)
        node.value = _call("_getiter_", [node.value], node.value)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        """f'{x!r:>{w}}' → f'{_format_(x, f">{w}", 114)}': widths are checked before formatting and
        the text made is charged."""
        node = self.node_contents_visit(node)
        spec = node.format_spec or ast.copy_location(ast.Constant(""), node)
        node.value = _call("_format_", [node.value, spec, ast.copy_location(ast.Constant(node.conversion), node)],
                           node)
        node.format_spec, node.conversion = None, -1
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


def _names_used(code: types.CodeType) -> set[str]:
    """Every global (and attribute) name the code and its nested functions refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_used(const)
    return names


class _Prepared(NamedTuple):
    """Compiled code plus what an evaluation of it needs: only the budget-bound guards and helpers
    the code can reach are built, so `approved == True` costs what it did before budgets."""

    code: types.CodeType
    guards: tuple[tuple[str, str], ...]  # (name the rewritten code uses, _Budget method)
    names: tuple[str, ...]  # the other names: helpers among them may need a charged version


def _prepared(code: types.CodeType) -> _Prepared:
    names = _names_used(code)
    guards = tuple((name, attr) for name, attr in _BUDGET_GUARDS.items() if name in names)
    return _Prepared(code, guards, tuple(sorted(names - _GUARD_NAMES)))


@functools.lru_cache(maxsize=4096)
def _prepare_expression(source: str) -> _Prepared:
    return _prepared(compile_expression(source))


@functools.lru_cache(maxsize=4096)
def _prepare_script(source: str) -> _Prepared:
    return _prepared(compile_script(source))


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


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Backs calls using *args / **kwargs (the starred values are counted by `_getiter_`)."""
    return func(*args, **kwargs)


# --- limits that need no budget ------------------------------------------------------------------

_TEXT = (str, bytes)
_SEQUENCES = (str, bytes, list, tuple)


def _too_many_bits(what: str, bits: int) -> SandboxLimitError:
    return SandboxLimitError(f"{what} would make an integer of about {bits:,} bits; "
                             f"the limit is {MAX_INT_BITS:,}")


def _reraise_limit() -> None:
    """First statement of every `except` clause: a limit cannot be caught by the script."""
    exc = sys.exc_info()[1]
    if isinstance(exc, SandboxLimitError):
        raise exc


def guarded_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    """`**`, `**=` and pow(): refuses int results of more than MAX_INT_BITS bits before computing them."""
    if mod is not None:
        if isinstance(mod, int) and mod.bit_length() > MAX_INT_BITS:
            raise _too_many_bits("pow()", mod.bit_length())
        return pow(base, exp, mod)
    if isinstance(base, int) and isinstance(exp, int) and exp > 1 and not -1 <= base <= 1:
        try:
            bits = int(exp * math.log2(abs(base)))
        except OverflowError:  # an exponent beyond float range
            bits = exp * (abs(base).bit_length() - 1)
        if bits > MAX_INT_BITS:
            raise _too_many_bits("'**'", bits)
    return base**exp


def guarded_round(number: Any, ndigits: Any = None) -> Any:
    """round(): rounding an int to -n digits computes 10**n first."""
    if isinstance(number, int) and isinstance(ndigits, int) and ndigits < 0:
        bits = -ndigits * 10 // 3  # log2(10) > 10/3
        if bits > MAX_INT_BITS:
            raise _too_many_bits("round()", bits)
    return round(number, ndigits)


def guarded_lshift(value: Any, shift: Any) -> Any:
    if isinstance(value, int) and isinstance(shift, int) and value and shift > 0:
        bits = value.bit_length() + shift
        if bits > MAX_INT_BITS:
            raise _too_many_bits("'<<'", bits)
    return value << shift


_PERCENT_SPEC = re.compile(r"%%|%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PERCENT_SPEC_BYTES = re.compile(_PERCENT_SPEC.pattern.encode())
_DIGITS = re.compile(r"\d+")


def _check_width(run: str | bytes, where: str) -> None:
    if len(run) > 7 or int(run) > MAX_ITEMS:
        raise SandboxLimitError(f"width or precision {run.decode() if isinstance(run, bytes) else run} "
                                f"in {where}; the limit is {MAX_ITEMS:,}")


def _check_percent_format(fmt: str | bytes) -> None:
    pattern = _PERCENT_SPEC if isinstance(fmt, str) else _PERCENT_SPEC_BYTES
    for match in pattern.finditer(fmt):
        for run in match.groups():
            if run in ("*", b"*"):
                raise SandboxLimitError("'*' widths are not allowed in %-formatting; write the width "
                                        "into the format")
            if run is not None:
                _check_width(run, "%-formatting")


class _Guarded:
    """A built-in type or function as scripts see it: calling it is checked, isinstance() and
    issubclass() still work, and attribute access (`dict.fromkeys`) goes to the real one through
    the `_getattr_` guard, which unwraps it."""

    __slots__ = ("_budget", "_real", "_sort")

    def __init__(self, real: Any, budget: _Budget | None = None, sort: bool = False) -> None:
        self._real, self._budget, self._sort = real, budget, sort

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and type(args[0]) in _SIZED:  # list(x), sorted(x), sum(x, 0), min(x): the iterable comes first
            self._budget.consume(args[0], self._sort)
        return self._real(*args, **kwargs)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._real)

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._real)

    def __repr__(self) -> str:
        return repr(self._real)


class _GuardedRange(_Guarded):
    __slots__ = ()

    def __call__(self, *args: Any) -> range:
        result = range(*args)
        try:
            size = len(result)
        except OverflowError:
            size = MAX_STEPS + 1
        if size > MAX_STEPS:
            raise SandboxLimitError(f"range() of more than {MAX_STEPS:,} items (the step budget); "
                                    "a loop over it could not finish")
        return result


GUARDED_RANGE = _GuardedRange(range)


# --- the per-evaluation budget -------------------------------------------------------------------

_CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_TEXT_SIZE_METHODS = frozenset({"join", "replace", "ljust", "rjust", "center", "zfill", "expandtabs",
                                "translate"})
# fmt: off
_CONTAINER_METHODS = frozenset({
    "extend", "copy", "count", "index", "remove", "sort", "reverse", "update", "fromkeys", "union",
    "intersection", "difference", "symmetric_difference", "intersection_update", "difference_update",
    "symmetric_difference_update", "issubset", "issuperset", "isdisjoint",
})
# fmt: on
_GROWING_METHODS = frozenset({"extend", "update", "fromkeys", "intersection_update", "difference_update",
                              "symmetric_difference_update"})
_UNBOUND = object()
_SMALL_TEXT = ITEMS_PER_STEP * 10  # shorter results of str + str cost nothing and cannot be too long
_SMALL_INT = 1 << 62  # products of smaller ints cannot be too large
# In-place operators that cannot blow up on int/float targets.
_NUMERIC_INPLACE = {op: f for op, f in _INPLACE_OPS.items() if op not in ("*=", "**=", "<<=")}


_SIZED = frozenset({str, bytes, list, tuple, dict, set, frozenset, range,
                    type({}.keys()), type({}.values()), type({}.items())})


def _length(obj: Any) -> int:
    """The size of a built-in container or text, else 0 (generators count their own items)."""
    return len(obj) if type(obj) in _SIZED else 0


class _ChargedPrintCollector(PrintCollector):
    """print() output is collected (the script may read it as `printed`) and charged as text made."""

    def __init__(self, budget: _Budget, _getattr_: Any = None) -> None:
        super().__init__(_getattr_)
        self.budget = budget

    def write(self, text: str) -> None:
        self.budget.scanned(len(text), True)
        super().write(text)


class _Budget:
    """One evaluation's steps and deadline. Its bound methods are the guards RestrictedPython's
    rewritten code calls (`_getiter_`, `_tick_`, `_getattr_`, ...), so the count cannot leak from
    one evaluation into another, nor between threads."""

    __slots__ = ("check_at", "deadline", "left")

    def __init__(self) -> None:
        self.left = MAX_STEPS
        self.check_at = MAX_STEPS - _CLOCK_EVERY
        self.deadline = time.perf_counter() + MAX_SECONDS

    # steps

    def tick(self) -> None:
        """`_tick_`: one `while` test or one call of a script-defined function."""
        self.left -= 1
        if self.left <= self.check_at:
            self._checkpoint()

    def charge(self, steps: int) -> None:
        self.left -= steps
        if self.left <= self.check_at:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self.left < 0:
            raise SandboxLimitError(f"more than {MAX_STEPS:,} steps in one evaluation (loop iterations, "
                                    "function calls, items processed by built-ins): an endless or too "
                                    "large loop?")
        if time.perf_counter() > self.deadline:
            raise SandboxLimitError(f"ran longer than {MAX_SECONDS:g} s")
        self.check_at = max(self.left - _CLOCK_EVERY, -1)

    def scanned(self, items: int, text: bool = False) -> None:
        """Work done in C: one step per ITEMS_PER_STEP items (characters count ten times less)."""
        steps = items // (ITEMS_PER_STEP * 10 if text else ITEMS_PER_STEP)
        if steps > 0:
            self.charge(steps)

    def building(self, size: int, text: bool, what: str, work: int | None = None) -> None:
        """Before an operation builds a sequence of `size` items: refuse it if too long, else charge it."""
        if size > MAX_ITEMS:
            kind = "a string of {:,} characters" if text else "a sequence of {:,} items"
            raise SandboxLimitError(f"{what} would build {kind.format(size)}; the limit is {MAX_ITEMS:,}")
        self.scanned(size if work is None else work, text)

    # iteration

    def getiter(self, obj: Any) -> Iterator[Any]:
        """`_getiter_`: for loops, comprehensions, `yield from` and `*` unpacking. Generators are
        used as they are: every generator a script can reach is its own code (whose loops, calls and
        `yield from` are counted) or one of ours (zip, enumerate), so its items are counted already.
        Everything else is counted item by item, also sized values: a list can grow while a loop runs
        over it, and every step is a chance to look at the clock."""
        if type(obj) is types.GeneratorType:
            return obj
        return self._counted(iter(obj))

    def _counted(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for item in iterator:
            self.left -= 1
            if self.left <= self.check_at:
                self._checkpoint()
            yield item

    def _unpack_iter(self, obj: Any) -> Iterator[Any]:
        """`a, b = pair`: sized values are copied in C (charged by size), others are counted."""
        if type(obj) not in _SIZED:
            return self.getiter(obj)
        self.scanned(len(obj))
        return iter(obj)

    def iter_unpack_sequence(self, it: Any, spec: dict[str, Any], _getiter: Any) -> Iterator[Any]:
        """`for a, b in pairs`: one step per pair, not one per pair plus one per item."""
        unpack = self._unpack_iter
        for ob in self.getiter(it):
            yield guarded_unpack_sequence(ob, spec, unpack)

    def unpack_sequence(self, it: Any, spec: dict[str, Any], _getiter: Any) -> list[Any]:
        return guarded_unpack_sequence(it, spec, self._unpack_iter)

    def consume(self, arg: Any, sort: bool = False) -> None:
        """A built-in consumer (list(), sorted(), sum(), str(), ...) called on `arg`: charged by its size
        up front; unsized iterables count their items where they are produced (generators, zip, enumerate)."""
        size = _length(arg)
        if sort and size > 1:
            size *= size.bit_length()
        self.scanned(size, type(arg) is str or type(arg) is bytes)

    def sum(self, iterable: Any, /, start: Any = 0) -> Any:
        """sum(): adding lists or tuples concatenates them in C, so check the total size first."""
        if isinstance(start, (list, tuple)):
            if type(iterable) is not list and type(iterable) is not tuple:
                iterable = list(self.getiter(iterable))
            self.building(len(start) + sum(map(_length, iterable)), False, "sum()", work=len(iterable))
        else:
            self.consume(iterable)
        return sum(iterable, start)

    def print_collector(self, _getattr_: Any = None) -> PrintCollector:
        return _ChargedPrintCollector(self, _getattr_)

    def enumerate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._counted(enumerate(*args, **kwargs))

    def zip(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self._counted(zip(*args, **kwargs))  # noqa: B905 (the built-in's own default)

    # operators

    def add(self, a: Any, b: Any) -> Any:
        kind = type(a)
        if kind is int or kind is float:
            return a + b
        if kind is str and type(b) is str:
            if len(a) + len(b) >= _SMALL_TEXT:
                self.building(len(a) + len(b), True, "'+'")
            return a + b
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            self.building(len(a) + len(b), isinstance(a, _TEXT), "'+'")
        return a + b

    def mul(self, a: Any, b: Any) -> Any:
        kind = type(a)
        if kind is float or type(b) is float:
            return a * b
        if kind is int and type(b) is int and -_SMALL_INT < a < _SMALL_INT and -_SMALL_INT < b < _SMALL_INT:
            return a * b
        if isinstance(a, int):
            if isinstance(b, int):
                bits = a.bit_length() + b.bit_length()
                if bits > MAX_INT_BITS:
                    raise _too_many_bits("'*'", bits)
            elif isinstance(b, _SEQUENCES):
                self.building(len(b) * a, isinstance(b, _TEXT), "'*'")
        elif isinstance(b, int) and isinstance(a, _SEQUENCES):
            self.building(len(a) * b, isinstance(a, _TEXT), "'*'")
        return a * b

    def mod(self, a: Any, b: Any) -> Any:
        if isinstance(a, _TEXT):
            _check_percent_format(a)
            result = a % b
            self.scanned(len(result), True)
            return result
        return a % b

    def format(self, value: Any, spec: str, conversion: int) -> str:
        """`_format_`: an f-string field; widths are checked before formatting."""
        for run in _DIGITS.findall(spec) if spec else ():
            _check_width(run, "a format spec")
        if conversion == 115:
            value = str(value)
        elif conversion == 114:
            value = repr(value)
        elif conversion == 97:
            value = ascii(value)
        result = format(value, spec)
        self.scanned(len(result), True)
        return result

    def inplacevar(self, op: str, target: Any, value: Any) -> Any:
        """Backs `x += y` and friends, which RestrictedPython rewrites to `x = _inplacevar_(op, x, y)`."""
        kind = type(target)
        if (kind is int or kind is float) and op in _NUMERIC_INPLACE:
            return _NUMERIC_INPLACE[op](target, value)
        if op == "+=":
            if kind is list:  # extends in place: check before it grows
                self.building(len(target) + _length(value), False, "'+='", work=_length(value))
                target += value
                return target
            return self.add(target, value)
        if op == "*=":
            if kind is list and isinstance(value, int):
                self.building(len(target) * value, False, "'*='")
                target *= value
                return target
            return self.mul(target, value)
        if op == "**=":
            return guarded_pow(target, value)
        if op == "<<=":
            return guarded_lshift(target, value)
        if op == "%=":
            return self.mod(target, value)
        return _INPLACE_OPS[op](target, value)

    # item and attribute access

    def getitem(self, obj: Any, key: Any) -> Any:
        """`_getitem_`: slices copy, so they are charged by the size of the copy."""
        if type(key) is slice:
            result = obj[key]
            self.scanned(_length(result), isinstance(result, _TEXT))
            return result
        return obj[key]

    def getattr(self, obj: Any, name: str) -> Any:
        """`_getattr_`: the sandbox's attribute rules, plus checked versions of the methods that copy,
        scan or build sequences (str/bytes methods on long strings, join, replace, extend, ...)."""
        if type(obj) is _Guarded or type(obj) is _GuardedRange:
            obj = obj._real
        value = _getattr(obj, name)
        kind = type(obj)
        if kind is str or kind is bytes:
            if name in _TEXT_SIZE_METHODS or len(obj) >= ITEMS_PER_STEP * 10:
                return self._method(value, name, obj)
        elif kind in _CONTAINERS:
            if name in _CONTAINER_METHODS:
                return self._method(value, name, obj)
        elif name == "to_bytes" and isinstance(obj, int):
            return self._method(value, name, obj)
        elif kind is type and callable(value) and (
            obj is str or obj is bytes or (obj in _CONTAINERS and name in _CONTAINER_METHODS)
        ):
            return self._method(value, name, _UNBOUND)  # str.join(sep, parts), dict.fromkeys(keys)
        return value

    def _method(self, func: Callable[..., Any], name: str, owner: Any) -> Callable[..., Any]:
        check = self._check_method

        def call(*args: Any, **kwargs: Any) -> Any:
            if owner is not _UNBOUND:
                return func(*check(name, owner, args, kwargs), **kwargs)
            if not args or name in ("fromkeys", "maketrans"):  # class and static methods
                return func(*check(name, None, args, kwargs), **kwargs)
            return func(args[0], *check(name, args[0], args[1:], kwargs), **kwargs)

        return call

    def _check_method(self, name: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Charge and size-check one method call before it runs; returns the arguments to call it with."""
        if isinstance(target, _TEXT):
            self.scanned(len(target), True)
            if name in _TEXT_SIZE_METHODS:
                return self._check_text_method(name, target, args, kwargs)
            return args
        if name == "to_bytes":  # (1).to_bytes(10**9): the length is the size of the result
            length = args[0] if args else kwargs.get("length", 1)
            if isinstance(length, int):
                self.building(length, True, what="to_bytes()")
            return args
        added = sum(_length(a) for a in args)
        if name == "extend" and type(target) is list:
            self.building(len(target) + added, False, "extend()", work=added)
        elif name == "sort":
            self.consume(target, sort=True)
        elif name in _GROWING_METHODS:  # work in proportion to what is added
            self.scanned(added)
        else:  # copies and scans of the whole container
            self.scanned(_length(target) + added)
        return args

    def _check_text_method(self, name: str, target: str | bytes, args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> tuple[Any, ...]:
        what = f"{name}()"
        if name == "join" and args:
            parts = args[0]
            if type(parts) is not list and type(parts) is not tuple:
                parts = list(self.getiter(parts))
                args = (parts, *args[1:])
            try:
                size = sum(map(len, parts)) + len(target) * max(len(parts) - 1, 0)
            except TypeError:  # not strings: join raises its own error
                size = 0
            self.scanned(len(parts))
            self.building(size, True, what)
        elif name in ("ljust", "rjust", "center", "zfill") and args and isinstance(args[0], int):
            self.building(args[0], True, what)
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(tabsize, int):
                tabs = target.count("\t" if isinstance(target, str) else b"\t")
                self.building(len(target) + tabs * max(tabsize, 0), True, what)
        elif name == "replace" and len(args) >= 2 and all(isinstance(a, type(target)) for a in args[:2]):
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = target.count(old) if old else len(target) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            self.building(len(target) + hits * (len(new) - len(old)), True, what)
        elif name == "translate" and isinstance(target, str) and args and isinstance(args[0], dict):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            self.building(len(target) * max(longest, 1), True, what)
        return args


# name the rewritten code uses → _Budget method
# fmt: off
_BUDGET_GUARDS: dict[str, str] = {
    "_getiter_": "getiter", "_tick_": "tick", "_getattr_": "getattr", "_getitem_": "getitem",
    "_iter_unpack_sequence_": "iter_unpack_sequence", "_unpack_sequence_": "unpack_sequence",
    "_inplacevar_": "inplacevar", "_add_": "add", "_mul_": "mul", "_mod_": "mod", "_format_": "format",
    "_print_": "print_collector",
}
# fmt: on

_GUARDABLE: dict[int, Callable[[_Budget, Any], object]] = {
    **{id(f): (lambda b, f: _Guarded(f, b)) for f in (list, tuple, set, frozenset, dict, min, max, any, all,
                                                      str, repr)},
    id(sorted): lambda b, f: _Guarded(f, b, sort=True),
    id(enumerate): lambda b, f: b.enumerate,
    id(zip): lambda b, f: b.zip,
    id(range): lambda b, f: GUARDED_RANGE,
    id(pow): lambda b, f: guarded_pow,
    id(round): lambda b, f: guarded_round,
    id(sum): lambda b, f: b.sum,
}


# Removed from RestrictedPython's list: attribute writers, class building, identity leaks, and
# exceptions that are not `Exception`s (raising SystemExit would kill the worker, not the task).
# fmt: off
_UNSAFE_BUILTINS = frozenset({
    "setattr", "delattr", "_getattr_", "__build_class__", "id",
    "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
})
# fmt: on
_BUILTINS: dict[str, object] = {k: v for k, v in safe_builtins.items() if k not in _UNSAFE_BUILTINS}
_BUILTINS.update(range=GUARDED_RANGE, pow=guarded_pow, round=guarded_round)



def sandbox_builtin_names() -> frozenset[str]:
    """The built-in names every script and expression may use."""
    return frozenset(_BUILTINS)


_GUARDS: dict[str, object] = {
    "__builtins__": _BUILTINS,
    "__name__": "gridloop_sandbox",
    "_write_": full_write_guard,  # dicts and lists are writable; attribute writes on other objects are not
    "_apply_": _apply,
    "_pow_": guarded_pow,
    "_lshift_": guarded_lshift,
    "_reraise_limit_": _reraise_limit,
}
_GUARD_NAMES = frozenset(_GUARDS) | frozenset(_BUDGET_GUARDS)


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
_GUARDABLE.update({id(f): (lambda b, f: _Guarded(f, b)) for f in (json_loads, json_dumps)})

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
    """Task data shadows helpers (plain Python scoping) instead of raising; guard names always win.
    Each call of `evaluate` / `execute` runs under a fresh budget (see the module docstring)."""

    def __init__(self, helpers: dict[str, object] | None = None) -> None:
        # `helpers` replaces DEFAULT_HELPERS; pass {**DEFAULT_HELPERS, ...} to extend it.
        super().__init__(dict(DEFAULT_HELPERS if helpers is None else helpers))

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> Any:
        prepared = _prepare_expression(expression)
        helpers, guards = self._budgeted(prepared)
        namespace = dict(helpers)
        if external_context:
            namespace.update(external_context)
        namespace.update(context)
        namespace.update(_GUARDS)
        namespace.update(guards)
        return eval(prepared.code, namespace)

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        prepared = _prepare_script(script)
        helpers, guards = self._budgeted(prepared)
        injected = {**helpers, **(external_context or {})}
        injected = {k: v for k, v in injected.items() if k not in context}
        injected.update(_GUARDS)
        injected.update(guards)
        context.update(injected)
        try:
            exec(prepared.code, context)
        except SyntaxError as exc:  # e.g. `raise SyntaxError`; SpiffWorkflow's formatter needs a lineno
            exc.lineno = exc.lineno or 1
            raise
        finally:
            self._strip(context, injected)
        return True

    def _budgeted(self, prepared: _Prepared) -> tuple[dict[str, object], dict[str, object]]:
        """A fresh budget for one evaluation: the helpers with the built-in consumers the code uses
        replaced by charged versions, and the budget-bound guards the code uses."""
        helpers, budget, replaced = self.globals, None, None
        for name in prepared.names:
            value = helpers.get(name, _BUILTINS.get(name))  # str, repr: also RestrictedPython builtins
            make = _GUARDABLE.get(id(value))
            if make is not None:
                budget = budget or _Budget()
                replaced = replaced or dict(helpers)
                replaced[name] = make(budget, value)
        if not prepared.guards:
            return replaced or helpers, {}
        budget = budget or _Budget()
        return replaced or helpers, {name: getattr(budget, attr) for name, attr in prepared.guards}

    @staticmethod
    def _strip(context: dict[str, Any], injected: dict[str, object]) -> None:
        """Drop what we put in plus anything the serializer would silently turn into null."""
        for key in list(context):
            value = context[key]
            if key in _GUARD_NAMES or (key in injected and injected[key] is value) or not _is_json_value(value):
                del context[key]
