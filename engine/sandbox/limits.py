"""The budget of one evaluation and the errors it raises. Modules of the sandbox read these constants
at call time (`limits.MAX_STEPS`), so a test may lower one for a run."""

from __future__ import annotations

from typing import Any

MAX_STEPS = 100_000  # per evaluation: loop iterations, calls of script-defined functions, ...
ITEMS_PER_STEP = 100  # ... and one step per this many items a built-in copies, scans or compares
MAX_ITEMS = 1_000_000  # the longest str/bytes/list/tuple one operation may build (also str/repr/JSON text)
MAX_INT_BITS = 10_000  # the largest int `**`, pow(), `*` and `<<` may build (about 3,000 digits)
DIGIT_OPS_PER_STEP = 1_000  # big-integer work: 30-bit digit operations that cost one step
MAX_SECONDS = 2.0  # CPU time of the evaluating thread per evaluation
MAX_DATA_BYTES = 16_000_000  # the JSON a script's task data may take when the engine serializes it
CLOCK_EVERY = 64  # steps between two looks at the clock; any charge this large looks at once


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
    """A script or expression went over its budget (steps, size, data or time) at run time."""


def too_many_bits(what: str, bits: int) -> SandboxLimitError:
    return SandboxLimitError(f"{what} would make an integer of about {bits:,} bits; the limit is {MAX_INT_BITS:,}")
