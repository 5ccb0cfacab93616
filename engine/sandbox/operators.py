"""Checked operators: sizes refused before anything is built, big-integer work charged by its cost
model (sizes.py) before it runs, text of structures measured before str/repr/format build it, and
comparisons charged by what they may walk."""

from __future__ import annotations

import builtins
import math
import operator
import re
import sys
from collections.abc import Callable
from typing import Any

from . import limits
from .budget import SEQUENCES, TEXT, BudgetCore, length
from .limits import SandboxLimitError, too_many_bits
from .sizes import div_cost, int_digits, int_text_cost, is_structure, mul_cost, pow_cost, walk_size

# fmt: off
INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "@=": operator.imatmul,
    "<<=": operator.ilshift, ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior,
    "^=": operator.ixor,
}
COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}
# fmt: on
# In-place operators that cannot blow up on int/float targets.
_NUMERIC_INPLACE = {op: f for op, f in INPLACE_OPS.items() if op not in ("*=", "**=", "<<=", "%=", "//=")}
_SMALL_TEXT = limits.ITEMS_PER_STEP * 10  # shorter results of str + str cost nothing and cannot be too long
_SMALL_INT = 1 << 62  # products of smaller ints cannot be too large
_BIG_INT_BITS = 2_000  # below this, int arithmetic is cheaper than estimating it
_HASHED: tuple[type[Any], ...] = (dict, set, frozenset, type({}.keys()))
_SCALARS = frozenset({int, float, bool, type(None)})  # == or < with one of these on a side is O(1)
_PERCENT_SPEC = re.compile(r"%%|%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_PERCENT_SPEC_BYTES = re.compile(_PERCENT_SPEC.pattern.encode())
_DIGITS = re.compile(r"\d+")


def reraise_limit() -> None:
    """First statement of every `except` clause: a limit cannot be caught by the script."""
    exc = sys.exc_info()[1]
    if isinstance(exc, SandboxLimitError):
        raise exc


def result_bits(base: Any, exp: Any) -> int:
    """The size of base ** exp for ints, 0 when it is small or not an int power."""
    if not (isinstance(base, int) and isinstance(exp, int)) or exp <= 1 or -1 <= base <= 1:
        return 0
    try:
        return int(exp * math.log2(abs(base)))
    except OverflowError:  # an exponent beyond float range
        return exp * (abs(base).bit_length() - 1)


def guarded_pow(base: Any, exp: Any, mod: Any = None) -> Any:
    """pow() outside an evaluation's budget: refuses int results of more than MAX_INT_BITS bits."""
    if mod is not None:
        if isinstance(mod, int) and mod.bit_length() > limits.MAX_INT_BITS:
            raise too_many_bits("pow()", mod.bit_length())
        return pow(base, exp, mod)
    bits = result_bits(base, exp)
    if bits > limits.MAX_INT_BITS:
        raise too_many_bits("'**'", bits)
    return base**exp


def guarded_round(number: Any, ndigits: Any = None) -> Any:
    """round(): rounding an int to -n digits computes 10**n first."""
    if isinstance(number, int) and isinstance(ndigits, int) and ndigits < 0:
        bits = -ndigits * 10 // 3  # log2(10) > 10/3
        if bits > limits.MAX_INT_BITS:
            raise too_many_bits("round()", bits)
    return round(number, ndigits)


def check_width(run: str | bytes, where: str) -> None:
    if len(run) > 7 or int(run) > limits.MAX_ITEMS:
        raise SandboxLimitError(f"width or precision {run.decode() if isinstance(run, bytes) else run} "
                                f"in {where}; the limit is {limits.MAX_ITEMS:,}")


def _check_percent_format(fmt: str | bytes) -> None:
    matches = _PERCENT_SPEC.finditer(fmt) if isinstance(fmt, str) else _PERCENT_SPEC_BYTES.finditer(fmt)
    for match in matches:
        for run in match.groups():
            if run in ("*", b"*"):
                raise SandboxLimitError("'*' widths are not allowed in %-formatting; write the width "
                                        "into the format")
            if run is not None:
                check_width(run, "%-formatting")


def _big(*values: Any) -> bool:
    return any(type(v) is int and v.bit_length() > _BIG_INT_BITS for v in values)


class OperatorGuards(BudgetCore):
    __slots__ = ()

    def int_work(self, digit_ops: int, what: str) -> None:
        """Big-integer work estimated at `digit_ops`, charged before it runs."""
        self.afford(digit_ops // limits.DIGIT_OPS_PER_STEP, what)

    def add(self, a: Any, b: Any) -> Any:
        kind = type(a)
        if kind is int or kind is float:
            return a + b
        if kind is str and type(b) is str:
            if len(a) + len(b) >= _SMALL_TEXT:
                self.building(len(a) + len(b), True, "'+'")
            return a + b
        if isinstance(a, SEQUENCES) and isinstance(b, SEQUENCES):
            self.building(len(a) + len(b), isinstance(a, TEXT), "'+'")
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
                if bits > limits.MAX_INT_BITS:
                    raise too_many_bits("'*'", bits)
                self.int_work(mul_cost(a, b), "'*'")
            elif isinstance(b, SEQUENCES):
                self.building(len(b) * a, isinstance(b, TEXT), "'*'")
        elif isinstance(b, int) and isinstance(a, SEQUENCES):
            self.building(len(a) * b, isinstance(a, TEXT), "'*'")
        return a * b

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        """`**`, `**=` and pow(): the size of the result and the cost of computing it are checked
        first; pow(b, e, m) costs per bit of `e` however small its result is."""
        if mod is not None:
            if isinstance(mod, int) and mod.bit_length() > limits.MAX_INT_BITS:
                raise too_many_bits("pow()", mod.bit_length())
            if isinstance(base, int) and isinstance(exp, int) and isinstance(mod, int):
                self.int_work(pow_cost(base, exp, mod), f"pow() with a {exp.bit_length():,}-bit exponent and "
                                                        f"a {mod.bit_length():,}-bit modulus")
            return pow(base, exp, mod)
        bits = result_bits(base, exp)
        if bits > limits.MAX_INT_BITS:
            raise too_many_bits("'**'", bits)
        if bits > _BIG_INT_BITS:
            self.int_work(pow_cost(base, exp, None), "'**'")
        return base**exp

    def lshift(self, value: Any, shift: Any) -> Any:
        if isinstance(value, int) and isinstance(shift, int) and value and shift > 0:
            bits = value.bit_length() + shift
            if bits > limits.MAX_INT_BITS:
                raise too_many_bits("'<<'", bits)
        return value << shift

    def floordiv(self, a: Any, b: Any) -> Any:
        if _big(a, b) and type(b) is int and b:
            self.int_work(div_cost(a, b), "'//'")
        return a // b

    def divmod(self, a: Any, b: Any) -> Any:
        if _big(a, b) and type(b) is int and b:
            self.int_work(div_cost(a, b), "divmod()")
        return divmod(a, b)

    def mod(self, a: Any, b: Any) -> Any:
        if isinstance(a, TEXT):
            _check_percent_format(a)
            for arg in (b if type(b) is tuple else (b,)):
                if is_structure(arg) or type(arg) is int:
                    self.text_of(arg, "'%' formatting")
            result = a % b
            self.scanned(len(result), True)
            return result
        if _big(a, b) and type(b) is int and b:
            self.int_work(div_cost(a, b), "'%'")
        return a % b

    def int(self, *args: Any, **kwargs: Any) -> int:
        """int(text) is quadratic in the digits (as is str(int), see `text_of`)."""
        if args and isinstance(args[0], TEXT):
            self.int_work(int_text_cost(len(args[0])), "int()")
        return int(*args, **kwargs)

    def text_of(self, value: Any, what: str) -> None:
        if type(value) is int:
            if value.bit_length() > _BIG_INT_BITS:
                self.int_work(int_text_cost(int_digits(value)), what)
            return
        super().text_of(value, what)

    def str(self, *args: Any, **kwargs: Any) -> str:
        if len(args) == 1 and not kwargs and type(args[0]) is not str:
            self.text_of(args[0], "str()")
        elif args:
            self.consume(args[0])
        return str(*args, **kwargs)

    def repr(self, value: Any) -> builtins.str:
        self.text_of(value, "repr()")
        return repr(value)

    def format(self, value: Any, spec: builtins.str, conversion: builtins.int) -> builtins.str:
        """`_format_`: an f-string field; widths are checked and the text is measured before formatting."""
        for run in _DIGITS.findall(spec) if spec else ():
            check_width(run, "a format spec")
        if conversion == 114 or conversion == 97 or (type(value) is not str and (is_structure(value)
                                                                                 or type(value) is int)):
            self.text_of(value, "an f-string")
        if conversion == 115:
            value = str(value)
        elif conversion == 114:
            value = repr(value)
        elif conversion == 97:
            value = ascii(value)
        result = format(value, spec)
        self.scanned(len(result), True)
        return result

    # comparisons

    def compare(self, a: Any, op: builtins.str, b: Any) -> Any:
        """`_compare_`: ==, <, `in` ... walk structures in C; charged by what they may walk first.
        Equality and order walk at most the smaller side; `in` a dict or set hashes the key; `in` a
        list or tuple compares the key with each item, at most the key's size each."""
        if (type(a) in _SCALARS or type(b) in _SCALARS) and op != "in" and op != "not in":
            return COMPARISONS[op](a, b)
        if is_structure(a) or is_structure(b):
            what = f"'{op}'"
            if op != "in" and op != "not in":
                if is_structure(a) and is_structure(b):
                    self.walked(a if length(a) <= length(b) else b, what)
            elif isinstance(b, _HASHED):
                self.walked(a, what)
            elif isinstance(b, TEXT):
                self.scanned(len(b), True)
            elif type(b) is list or type(b) is tuple:
                cap = self.cap()
                per_item = walk_size(a, cap) if is_structure(a) else 1
                if per_item * len(b) >= limits.ITEMS_PER_STEP:
                    self.walked(b, what, per_item * len(b))
        return COMPARISONS[op](a, b)

    def compared(self, value: Any) -> Any:
        """`_compared_`: an operand of a chained comparison, charged by its size."""
        if is_structure(value):
            self.walked(value, "a comparison")
        return value

    def hash(self, value: Any) -> builtins.int:
        if is_structure(value):
            self.walked(value, "hash()")
        return hash(value)

    def inplacevar(self, op: builtins.str, target: Any, value: Any) -> Any:
        """Backs `x += y` and friends, which RestrictedPython rewrites to `x = _inplacevar_(op, x, y)`."""
        kind = type(target)
        if (kind is int or kind is float) and op in _NUMERIC_INPLACE:
            return _NUMERIC_INPLACE[op](target, value)
        if op == "+=":
            if kind is list:  # extends in place: check before it grows
                self.building(len(target) + length(value), False, "'+='", work=length(value))
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
            return self.pow(target, value)
        if op == "<<=":
            return self.lshift(target, value)
        if op == "%=":
            return self.mod(target, value)
        if op == "//=":
            return self.floordiv(target, value)
        return INPLACE_OPS[op](target, value)
