"""Built-in types and functions as scripts see them: calling one is checked by the evaluation's
budget, while isinstance() and issubclass() still work and attribute access (`dict.fromkeys`) goes
to the real one through the `_getattr_` guard, which unwraps it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import limits
from .budget import SIZED
from .limits import SandboxLimitError

if TYPE_CHECKING:
    from .budget import BudgetCore


class Guarded:
    __slots__ = ("_budget", "_call", "_deep", "_real", "_sort")

    def __init__(self, real: Any, budget: BudgetCore | None = None, sort: bool = False,
                 call: Callable[..., Any] | None = None, deep: bool = False) -> None:
        self._real, self._budget, self._sort, self._call = real, budget, sort, call
        self._deep = f"{getattr(real, '__name__', 'a built-in')}()" if deep else ""  # it compares or hashes items

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._call is not None:
            return self._call(*args, **kwargs)
        if args and type(args[0]) in SIZED:  # list(x), sorted(x), sum(x, 0), min(x): the iterable comes first
            assert self._budget is not None  # helpers.py gives one to every Guarded without `call`
            self._budget.consume(args[0], self._sort, self._deep)
        return self._real(*args, **kwargs)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._real)

    def __subclasscheck__(self, cls: type) -> bool:
        return issubclass(cls, self._real)

    def __repr__(self) -> str:
        return repr(self._real)


class GuardedRange(Guarded):
    __slots__ = ()

    def __call__(self, *args: Any) -> range:
        result = range(*args)
        try:
            size = len(result)
        except OverflowError:
            size = limits.MAX_STEPS + 1
        if size > limits.MAX_STEPS:
            raise SandboxLimitError(f"range() of more than {limits.MAX_STEPS:,} items (the step budget); "
                                    "a loop over it could not finish")
        return result


GUARDED_RANGE = GuardedRange(range)


def unwrapped(obj: Any) -> Any:
    return obj._real if isinstance(obj, Guarded) else obj
