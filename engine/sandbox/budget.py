"""One evaluation's budget: steps, sizes and CPU time. Its bound methods are the guards the rewritten
code calls (`_getiter_`, `_tick_`, ...), so a count cannot leak from one evaluation into another,
nor between threads (see engine/sandbox/__init__.py for what costs a step)."""

from __future__ import annotations

import time
import types
from collections.abc import Iterator
from typing import Any

from RestrictedPython import PrintCollector
from RestrictedPython.Guards import guarded_unpack_sequence

from . import limits
from .limits import SandboxLimitError
from .sizes import text_size, walk_size

TEXT = (str, bytes)
SEQUENCES = (str, bytes, list, tuple)
SIZED = frozenset({str, bytes, list, tuple, dict, set, frozenset, range,
                   type({}.keys()), type({}.values()), type({}.items())})


def length(obj: Any) -> int:
    """The size of a built-in container or text, else 0 (generators count their own items)."""
    return len(obj) if type(obj) in SIZED else 0


class BudgetCore:
    __slots__ = ("check_at", "deadline", "left")

    def __init__(self) -> None:
        self.left = limits.MAX_STEPS
        self.check_at = self.left - limits.CLOCK_EVERY
        self.deadline = 0.0  # set at the first look at the clock: reading it costs microseconds here

    # steps and the clock

    def tick(self) -> None:
        """`_tick_`: one `while` test or one call of a script-defined function."""
        self.left -= 1
        if self.left <= self.check_at:
            self._checkpoint()

    def charge(self, steps: int) -> None:
        """Spend `steps`; a charge of CLOCK_EVERY steps or more always looks at the clock."""
        self.left -= steps
        if self.left <= self.check_at:
            self._checkpoint()

    def afford(self, steps: int, what: str) -> None:
        """Before an operation estimated at `steps`: refuse it if the steps left do not cover it."""
        if steps > self.left:
            raise SandboxLimitError(f"{what} would cost about {steps:,} steps; {max(self.left, 0):,} of the "
                                    f"{limits.MAX_STEPS:,} steps of this evaluation are left")
        self.charge(steps)

    def _checkpoint(self) -> None:
        if self.left < 0:
            raise SandboxLimitError(f"more than {limits.MAX_STEPS:,} steps in one evaluation (loop iterations, "
                                    "function calls, items processed by built-ins): an endless or too "
                                    "large loop?")
        now = time.thread_time()
        if not self.deadline:  # the first look: at most CLOCK_EVERY steps (or one charge) ago it began
            self.deadline = now + limits.MAX_SECONDS
        elif now > self.deadline:
            raise SandboxLimitError(f"ran longer than {limits.MAX_SECONDS:g} s of CPU time")
        self.check_at = max(self.left - limits.CLOCK_EVERY, -1)

    def scanned(self, items: int, text: bool = False) -> None:
        """Work done in C: one step per ITEMS_PER_STEP items (characters count ten times less)."""
        steps = items // (limits.ITEMS_PER_STEP * 10 if text else limits.ITEMS_PER_STEP)
        if steps > 0:
            self.charge(steps)

    def building(self, size: int, text: bool, what: str, work: int | None = None) -> None:
        """Before an operation builds a sequence of `size` items: refuse it if too long, else charge it."""
        if size > limits.MAX_ITEMS:
            kind = "a string of {:,} characters" if text else "a sequence of {:,} items"
            raise SandboxLimitError(f"{what} would build {kind.format(size)}; the limit is {limits.MAX_ITEMS:,}")
        self.scanned(size if work is None else work, text)

    def text_of(self, value: Any, what: str) -> None:
        """Before str()/repr()/a format builds the text of `value`: refuse it when it would be longer
        than MAX_ITEMS characters (shared references count each time), else charge it."""
        size = text_size(value, limits.MAX_ITEMS)
        if size > limits.MAX_ITEMS:
            raise SandboxLimitError(f"{what} would build a string of more than {limits.MAX_ITEMS:,} characters "
                                    f"(the text of a structure, shared references counted each time); the "
                                    f"limit is {limits.MAX_ITEMS:,}")
        self.scanned(size, True)

    def cap(self) -> int:
        return max(self.left, 0) * limits.ITEMS_PER_STEP

    def walked(self, value: Any, what: str, bound: int | None = None) -> None:
        """Before C compares or hashes its way through `value` (at most `bound` items when known):
        refuse the walk if the steps left do not cover it, else charge it."""
        cap = self.cap()
        items = walk_size(value, cap if bound is None else min(cap, bound))
        if bound is not None:
            items = min(items, bound)
        if items > cap:
            raise SandboxLimitError(f"{what} on a structure of more than {cap:,} items (shared references counted "
                                    f"each time) would cost more than the {max(self.left, 0):,} steps left of "
                                    f"the {limits.MAX_STEPS:,} of this evaluation")
        if items >= limits.ITEMS_PER_STEP:
            self.afford(items // limits.ITEMS_PER_STEP,
                        f"{what} on a structure of about {items:,} items (shared references counted each time)")

    # iteration

    def getiter(self, obj: Any) -> Iterator[Any]:
        """`_getiter_`: for loops, comprehensions, `yield from` and `*` unpacking. Generators are
        used as they are: every generator a script can reach is its own code (whose loops, calls and
        `yield from` are counted) or one of ours (zip, enumerate), so its items are counted already.
        Everything else is counted item by item, also sized values: a list can grow while a loop runs
        over it, and every step is a chance to look at the clock."""
        if type(obj) is types.GeneratorType:
            return obj
        return self.counted(iter(obj))

    def counted(self, iterator: Iterator[Any]) -> Iterator[Any]:
        for item in iterator:
            self.left -= 1
            if self.left <= self.check_at:
                self._checkpoint()
            yield item

    def _unpack_iter(self, obj: Any) -> Iterator[Any]:
        """`a, b = pair`: sized values are copied in C (charged by size), others are counted."""
        if type(obj) not in SIZED:
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

    # built-in consumers

    def consume(self, arg: Any, sort: bool = False, deep: str = "") -> None:
        """A built-in consumer (list(), sorted(), sum(), ...) called on `arg`: charged by its size
        up front; unsized iterables count their items where they are produced (generators, zip, enumerate).
        `deep` (the consumer's name): it compares or hashes the items, so it is charged by the walk."""
        if deep and type(arg) is not str and type(arg) is not bytes:
            self.walked(arg, deep)
        size = length(arg)
        if sort and size > 1:
            size *= size.bit_length()
        self.scanned(size, type(arg) is str or type(arg) is bytes)

    def sum(self, iterable: Any, /, start: Any = 0) -> Any:
        """sum(): adding lists or tuples concatenates them in C, so check the total size first."""
        if isinstance(start, (list, tuple)):
            if type(iterable) is not list and type(iterable) is not tuple:
                iterable = list(self.getiter(iterable))
            self.building(len(start) + sum(map(length, iterable)), False, "sum()", work=len(iterable))
        else:
            self.consume(iterable)
        return sum(iterable, start)

    def print_collector(self, _getattr_: Any = None) -> PrintCollector:
        return ChargedPrintCollector(self, _getattr_)

    def enumerate(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self.counted(enumerate(*args, **kwargs))

    def zip(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        return self.counted(zip(*args, **kwargs))  # noqa: B905 (the built-in's own default)


class ChargedPrintCollector(PrintCollector):
    """print() output is collected (the script may read it as `printed`); each argument's text is
    checked before print() builds it, and the text is charged as made."""

    def __init__(self, budget: BudgetCore, _getattr_: Any = None) -> None:
        super().__init__(_getattr_)
        self.budget = budget

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        for obj in objects:
            if type(obj) is not str:
                self.budget.text_of(obj, "print()")
        super()._call_print(*objects, **kwargs)

    def write(self, text: str) -> None:
        self.budget.scanned(len(text), True)
        super().write(text)
