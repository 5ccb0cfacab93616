"""Item and attribute access: slices charged by the size of the copy, and checked versions of the
methods that copy, scan or build sequences (str/bytes methods on long strings, join, replace,
extend, sort, ...), each charged and size-checked before it runs."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import safer_getattr_raise

from . import limits
from .budget import TEXT, BudgetCore, length
from .guarded import unwrapped

CONTAINERS = frozenset({list, tuple, dict, set, frozenset})
_TEXT_SIZE_METHODS = frozenset({"join", "replace", "ljust", "rjust", "center", "zfill", "expandtabs",
                                "translate"})
# fmt: off
CONTAINER_METHODS = frozenset({
    "extend", "copy", "count", "index", "remove", "sort", "reverse", "update", "fromkeys", "union",
    "intersection", "difference", "symmetric_difference", "intersection_update", "difference_update",
    "symmetric_difference_update", "issubset", "issuperset", "isdisjoint", "get", "pop", "setdefault", "add",
    "discard",
})
# fmt: on
_GROWING_METHODS = frozenset({"extend", "update", "fromkeys", "intersection_update", "difference_update",
                              "symmetric_difference_update"})
_COMPARING_METHODS = frozenset({"count", "index", "remove"})
_KEYED_METHODS = frozenset({"get", "pop", "setdefault", "add", "discard", "remove"})  # O(1) but for hashing
_UNBOUND = object()
_CLOCK_ATTRS = frozenset({"now", "utcnow", "today"})


def sandbox_getattr(obj: Any, name: str) -> Any:
    """safer_getattr (no `_` names, no str.format) that raises like Python and hides the wall clock."""
    if name in _CLOCK_ATTRS and (
        isinstance(obj, _dt.date) or (isinstance(obj, type) and issubclass(obj, _dt.date))
    ):
        raise AttributeError(f"{name!r} is not available: time comes from the engine")
    return safer_getattr_raise(obj, name)


class MethodGuards(BudgetCore):
    __slots__ = ()


    def getitem(self, obj: Any, key: Any) -> Any:
        """`_getitem_`: slices copy, so they are charged by the size of the copy."""
        if type(key) is slice:
            result = obj[key]
            self.scanned(length(result), isinstance(result, TEXT))
            return result
        if type(key) is tuple:
            self.hashed(key)
        return obj[key]

    def hashed(self, key: Any) -> Any:
        """`_hashed_`: a dict or set key; a tuple's hash is computed afresh each time, over all it holds."""
        if type(key) is tuple:
            self.walked(key, "hashing a key")
        return key

    def getattr(self, obj: Any, name: str) -> Any:
        """`_getattr_`: the sandbox's attribute rules, plus checked versions of the methods that copy,
        scan or build sequences (str/bytes methods on long strings, join, replace, extend, ...)."""
        obj = unwrapped(obj)
        value = sandbox_getattr(obj, name)
        kind = type(obj)
        if kind is str or kind is bytes:
            if name in _TEXT_SIZE_METHODS or len(obj) >= limits.ITEMS_PER_STEP * 10:
                return self._method(value, name, obj)
        elif kind in CONTAINERS:
            if name in CONTAINER_METHODS:
                return self._method(value, name, obj)
        elif name == "to_bytes" and isinstance(obj, int):
            return self._method(value, name, obj)
        elif kind is type and callable(value) and (
            obj is str or obj is bytes or (obj in CONTAINERS and name in CONTAINER_METHODS)
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
        if isinstance(target, TEXT):
            self.scanned(len(target), True)
            if name in _TEXT_SIZE_METHODS:
                return self._check_text_method(name, target, args, kwargs)
            return args
        if name == "to_bytes":  # (1).to_bytes(10**9): the length is the size of the result
            count = args[0] if args else kwargs.get("length", 1)
            if isinstance(count, int):
                self.building(count, True, what="to_bytes()")
            return args
        added = sum(length(a) for a in args)
        if name == "extend" and type(target) is list:
            self.building(len(target) + added, False, "extend()", work=added)
        elif name == "sort":
            self.consume(target, sort=True, deep="sort()")
        elif name in _COMPARING_METHODS and type(target) is list:  # compare the argument with each item
            self.walked(target, f"{name}()")
        elif name in _KEYED_METHODS:
            if args:
                self.hashed(args[0])
        elif name in _GROWING_METHODS:  # work in proportion to what is added
            self.scanned(added)
        else:  # copies and scans of the whole container
            self.scanned(length(target) + added)
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
                tabs = target.count("\t") if isinstance(target, str) else target.count(b"\t")
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


