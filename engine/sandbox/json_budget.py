"""JSON with a byte budget. Before any text is written, a measuring pass counts the exact length
json.dumps would produce and stops as soon as the count passes the budget; only a value that fits
is then encoded (by the C encoder, at full speed). A structure reached through several references
is measured once and counted each time, so `[['a' * 10**6] * 1000] * 1000` is refused after a
few thousand looks instead of growing the process towards 10^12 bytes."""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

_FIXED = {bool: 5, type(None): 4}


class OverBudget(Exception):
    """The value's JSON is longer than the budget (`size` is how far the count got)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def json_size(value: Any, budget: int, *, compact: bool = False, lenient: bool = False,
              memo: dict[int, int] | None = None) -> int:
    """The length of json.dumps(value) (default or compact separators, ensure_ascii); raises
    OverBudget past `budget`, and, unless `lenient`, TypeError/ValueError where json.dumps would
    (NaN, a cycle, a type JSON has not). Lenient counts such values as short (the engine's state
    encoder writes them with `default=str`). `memo` may be shared by calls over the same data."""
    sizer = _Sizer(budget, compact, lenient, {} if memo is None else memo)
    size = sizer.size(value)
    if size > budget:
        raise OverBudget(size)
    return size


class _Sizer:
    __slots__ = ("budget", "item_sep", "key_sep", "lenient", "memo", "open")

    def __init__(self, budget: int, compact: bool, lenient: bool, memo: dict[int, int]) -> None:
        self.budget, self.lenient, self.memo = budget, lenient, memo
        self.item_sep, self.key_sep = (1, 1) if compact else (2, 2)
        self.open: set[int] = set()

    def size(self, value: Any) -> int:
        kind = type(value)
        if kind is str:
            return len(encode_basestring_ascii(value))
        if kind is int:
            return len(int.__repr__(value))
        fixed = _FIXED.get(kind)
        if fixed is not None:
            return fixed if value is not True else 4
        if kind is float:
            if math.isfinite(value):
                return len(float.__repr__(value))
            return self._refuse(ValueError(f"Out of range float values are not JSON compliant: {value!r}"))
        if isinstance(value, (list, tuple, dict)):
            return self._container(value)
        if isinstance(value, (str, int, float)):  # subclasses: as json.dumps treats them
            return self.size(str(value) if isinstance(value, str) else int(value) if isinstance(value, int)
                             else float(value))
        return self._refuse(TypeError(f"Object of type {kind.__name__} is not JSON serializable"))

    def _refuse(self, exc: Exception) -> int:
        if self.lenient:
            return 64
        raise exc

    def _container(self, value: list | tuple | dict) -> int:
        key = id(value)
        known = self.memo.get(key)
        if known is not None:
            return known
        if key in self.open:
            if self.lenient:
                return 64
            raise ValueError("Circular reference detected")
        self.open.add(key)
        budget, size = self.budget, 2 + self.item_sep * max(len(value) - 1, 0)
        if type(value) is dict or isinstance(value, dict):
            for k, v in value.items():
                size += self._key(k) + self.key_sep + self.size(v)
                if size > budget:
                    raise OverBudget(size)
        else:
            for item in value:
                size += self.size(item)
                if size > budget:
                    raise OverBudget(size)
        self.open.discard(key)
        self.memo[key] = size
        return size

    def _key(self, k: Any) -> int:
        kind = type(k)
        if kind is str:
            return len(encode_basestring_ascii(k))
        if kind is bool or k is None:
            return self.size(k) + 2
        if kind is int or kind is float:
            return self.size(k) + 2
        return self._refuse(TypeError(f"keys must be str, int, float, bool or None, not {kind.__name__}"))


def bounded_dumps(value: Any, budget: int) -> str:
    """json.dumps(value), refused with OverBudget before anything is written when it would be longer.
    What json.dumps itself refuses (a cycle, a type JSON has not) it still refuses, in its words."""
    json_size(value, budget, lenient=True)
    return json.dumps(value)
