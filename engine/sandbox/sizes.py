"""Estimates made before an operation runs: how long its text would be (str, repr, f-strings, %),
how many items a comparison or hash may walk, and what big-integer arithmetic costs.

A structure reached through several references is measured once (by id) but counted each time,
as repr, == and json write or walk it each time: `[[s] * 1000] * 1000` costs a million `s`, and
measuring it costs two thousand looks. Every estimate stops as soon as it passes its cap, so
measuring is never dearer than the budget it protects.
"""

from __future__ import annotations

import math
from typing import Any

_CONTAINERS = (list, tuple, set, frozenset, dict)
_VIEWS: tuple[type[Any], ...] = (type({}.keys()), type({}.values()), type({}.items()))
_FLAT = frozenset({int, float, bool, type(None)})
_FIXED_TEXT = {bool: 5, type(None): 4, float: 24, complex: 50}
_DIGIT_BITS = 30  # CPython's int digit
_LOG10_2 = math.log10(2)


def int_digits(value: int) -> int:
    """An upper bound of len(str(value)) without converting it."""
    return int(value.bit_length() * _LOG10_2) + 2


def str_repr_size(text: str) -> int:
    """len(repr(text)) or a bound of it: printable text is quoted as it is, else escapes (at most 4x)."""
    return len(text) + 2 if len(text) < 64 or text.isprintable() else 4 * len(text) + 2


def text_size(value: Any, cap: int) -> int:
    """About len(repr(value)) (also str() of a container), or a number above `cap` once it passes it."""
    return _text(value, {}, set(), cap)


def _text(value: Any, memo: dict[int, int], open_: set[int], cap: int) -> int:
    kind = type(value)
    if kind is str:
        return str_repr_size(value)
    if kind is int:
        return int_digits(value)
    fixed = _FIXED_TEXT.get(kind)
    if fixed is not None:
        return fixed
    if kind is bytes or kind is bytearray:
        return 4 * len(value) + 14
    if not isinstance(value, _CONTAINERS + _VIEWS):
        return 100  # dates, ranges, functions: short
    key = id(value)
    known = memo.get(key)
    if known is not None:
        return known
    if key in open_:  # a structure that contains itself: repr writes '[...]'
        return 5
    open_.add(key)
    size = 16
    if kind is dict:
        for k, v in value.items():
            size += _text(k, memo, open_, cap) + _text(v, memo, open_, cap) + 4
            if size > cap:
                break
    else:
        for item in value:
            size += _text(item, memo, open_, cap) + 2
            if size > cap:
                break
    open_.discard(key)
    memo[key] = size
    return size


def walk_size(value: Any, cap: int) -> int:
    """About how many items ==, <, `in` or hash() may look at in `value` (characters count ten times
    less), or a number above `cap` once it passes it."""
    return _walk(value, {}, set(), cap)


def _walk(value: Any, memo: dict[int, int], open_: set[int], cap: int) -> int:
    kind = type(value)
    if kind is str or kind is bytes:
        return len(value) // 10 + 1
    if not isinstance(value, _CONTAINERS + _VIEWS):
        return 1
    key = id(value)
    known = memo.get(key)
    if known is not None:
        return known
    if key in open_:
        return 1
    if (kind is list or kind is tuple) and len(value) > 8:
        kinds = set(map(type, value))  # flat data is measured at C speed
        if kinds <= _FLAT:
            return len(value) + 1
        if kinds == {str}:
            return len(value) + 1 + sum(map(len, value)) // 10
    open_.add(key)
    size = 1
    items = value.items() if kind is dict else value
    for item in items:
        size += _walk(item, memo, open_, cap)
        if size > cap:
            break
    open_.discard(key)
    memo[key] = size
    return size


def is_structure(value: Any) -> bool:
    """Whether comparing or hashing `value` may take more than a glance."""
    kind = type(value)
    return kind is str or kind is bytes or isinstance(value, _CONTAINERS + _VIEWS)


# --- big integers: cost in 30-bit digit operations, estimated from bit lengths -------------------

def _digits(bits: int) -> int:
    return bits // _DIGIT_BITS + 1


def mul_cost(a: int, b: int) -> int:
    """Schoolbook bound (CPython switches to Karatsuba above 70 digits, which only costs less)."""
    return _digits(a.bit_length()) * _digits(b.bit_length())


def div_cost(a: int, b: int) -> int:
    """`//`, `%`, divmod(): long division, divisor digits times quotient digits."""
    da, db = _digits(a.bit_length()), _digits(b.bit_length())
    return db * max(da - db + 1, 1)


def pow_cost(base: int, exp: int, mod: int | None) -> int:
    """Square-and-multiply: per exponent bit, up to two products and (with a modulus) two reductions."""
    if mod is None:
        result = _digits(max(exp, 0) * max(base.bit_length(), 1))
        return result * result
    width = _digits(mod.bit_length())
    return max(abs(exp).bit_length(), 1) * 4 * width * width + _digits(base.bit_length()) * width


def int_text_cost(digits: int) -> int:
    """int ↔ decimal text is quadratic in CPython."""
    words = digits // 9 + 1
    return words * words
