"""RestrictedPython sandbox for every script and expression SpiffWorkflow evaluates.

Uploading BPMN means uploading code, so nothing from a diagram runs through plain eval/exec:
sources are compiled with RestrictedPython (no `_`-prefixed names or attributes, no imports,
no classes) and run against a small whitelist of builtins plus guard functions.

Every evaluation (one script run, one condition, one expression) also gets a budget, enforced
inside the sandbox without signals or global state (web processes run scripts in threads). Every
charge is made *before* the work it pays for:

* Steps (`MAX_STEPS` per evaluation): each iteration of a `for` loop, comprehension, `while` loop,
  `yield from` or `*` unpacking, and each call of a function or lambda the script defines, is a
  step. Work done in C costs one step per `ITEMS_PER_STEP` items (ten times as many characters):
  built-in consumers, slices, print, the methods that copy, scan or build; comparisons (`==`, `<`,
  `in`) and hash() by what they may walk; big-integer arithmetic (`*`, `**`, pow() with a modulus,
  `//`, `%`, divmod(), int ↔ str) by a cost model over bit lengths (sizes.py), one step per
  `DIGIT_OPS_PER_STEP` digit operations. A structure reached through several references counts each
  time, as C walks it each time.
* Sizes: no single operation builds a str/bytes/list/tuple of more than `MAX_ITEMS` items or an int
  of more than `MAX_INT_BITS` bits; str(), repr(), f-strings, %-formatting, print() and json_dumps()
  measure the text of a structure before building it.
* Data (`MAX_DATA_BYTES`): after a script, the task data it leaves is measured as JSON, stopping at
  the budget, so the engine never starts encoding `[['a' * 10**6] * 1000] * 1000`.
* Time (`MAX_SECONDS` of the thread's CPU time per evaluation), read every `CLOCK_EVERY` steps and
  on every charge that large: the backstop for what the estimates miss.

Going over a limit raises `SandboxLimitError`, naming the budget. The script cannot catch it (every
`except` clause re-raises it), so the script task or condition fails and the change rolls back with
a ProcessError naming the element, like any other script error.

`while` loops are allowed and counted rather than refused: `for` loops over generators, recursion
and lambdas can spin as long as any `while` loop can; with its test counted, `while` is exactly as
bounded as `for`.

Modules: limits (constants, errors), policy (compiling and rewriting), budget / operators /
methods (the guards), sizes (estimates), json_budget (JSON with a byte budget), guarded and
helpers (what scripts can name), environment (what SpiffWorkflow calls).
"""

from .environment import SandboxEnvironment, check_data_size
from .guarded import GUARDED_RANGE
from .helpers import DEFAULT_HELPERS, json_dumps, json_loads, sandbox_builtin_names
from .json_budget import OverBudget, bounded_dumps, json_size
from .limits import (
    MAX_DATA_BYTES,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_SECONDS,
    MAX_STEPS,
    SandboxError,
    SandboxLimitError,
)
from .operators import guarded_pow, guarded_round
from .policy import compile_expression, compile_script

__all__ = [
    "DEFAULT_HELPERS", "GUARDED_RANGE", "MAX_DATA_BYTES", "MAX_INT_BITS", "MAX_ITEMS", "MAX_SECONDS", "MAX_STEPS",
    "OverBudget", "SandboxEnvironment", "SandboxError", "SandboxLimitError", "bounded_dumps", "check_data_size",
    "compile_expression", "compile_script", "guarded_pow", "guarded_round", "json_dumps", "json_loads",
    "json_size", "sandbox_builtin_names",
]
