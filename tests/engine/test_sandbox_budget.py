"""Every evaluation runs under a budget (engine/sandbox.py): steps, sizes and time. Scripts that would
hold the instance lock forever or exhaust memory are stopped with SandboxLimitError, quickly and
before the big allocation; ordinary scripts are untouched; each evaluation starts with a full budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from engine.sandbox import SandboxEnvironment, SandboxLimitError, compile_script, limits


@pytest.fixture
def env() -> SandboxEnvironment:
    return SandboxEnvironment()


STEPS = "more than 100,000 steps"
RANGE = "range() of more than 100,000 items"
TOO_LONG = "the limit is 1,000,000"
TOO_BIG_INT = "bits; the limit is 10,000"

# (script, part of the message)
SCRIPT_ATTACKS = {
    "while_true": ("while True:\n    pass", STEPS),
    "while_condition": ("n = 0\nwhile n >= 0:\n    n += 1", STEPS),
    "for_huge_range": ("for i in range(10**12):\n    pass", RANGE),
    "nested_loops": ("for i in range(99999):\n    for j in range(99999):\n        pass", STEPS),
    "pow_tower": ("x = 10 ** 10 ** 10", "'**' would make an integer of about"),
    "pow_builtin": ("x = pow(10, 10**10)", TOO_BIG_INT),
    "pow_inplace": ("x = 10\nx **= 10**10", TOO_BIG_INT),
    "lshift": ("x = 1 << 10**10", TOO_BIG_INT),
    "squaring": ("x = 3\nfor i in range(64):\n    x = x * x", TOO_BIG_INT),
    "str_repeat": ("x = 'a' * 10**10", "'*' would build a string of 10,000,000,000 characters"),
    "list_repeat": ("x = [0] * 10**10", "'*' would build a sequence of 10,000,000,000 items"),
    "repeat_reversed": ("x = 10**10 * (0,)", TOO_LONG),
    "repeat_inplace": ("x = [0]\nx *= 10**10", TOO_LONG),
    "list_of_range": ("x = list(range(10**9))", RANGE),
    "sum_of_range": ("x = sum(range(10**9))", RANGE),
    "consumer_in_loop": ("for i in range(99999):\n    x = sorted(range(99999))", STEPS),
    "string_doubling": ("s = 'ab'\nfor i in range(64):\n    s = s + s", TOO_LONG),
    "list_doubling": ("l = [1]\nfor i in range(64):\n    l += l", TOO_LONG),
    "extend_doubling": ("l = [1]\nfor i in range(64):\n    l.extend(l)", TOO_LONG),
    "star_doubling": ("l = [1]\nfor i in range(64):\n    l = [*l, *l]", STEPS),
    "loop_over_growing_list": ("l = [1]\nfor x in l:\n    l.append(x)", STEPS),
    "join_shared": ("s = 'x' * 100000\nt = ''.join([s] * 100000)", "join() would build a string"),
    "ljust": ("s = 'x'.ljust(10**10)", TOO_LONG),
    "replace": ("s = ('a' * 1000).replace('a', 'b' * 100000)", "replace() would build"),
    "expandtabs": ("s = ('\\t' * 1000).expandtabs(10**7)", TOO_LONG),
    "fstring_width": ("w = 10**9\ns = f'{1:>{w}}'", "width or precision 1000000000"),
    "percent_width": ("s = '%1000000000d' % 1", "width or precision 1000000000"),
    "percent_star": ("s = '%*d' % (10**9, 1)", "'*' widths are not allowed"),
    "copies_kept": ("big = [0] * 999999\nkeep = []\nfor i in range(99999):\n    keep.append(big[:])", STEPS),
    "recursion": ("def f(n):\n    return 0 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)", STEPS),
    "lambda_recursion": ("f = lambda g, n: 0 if n == 0 else g(g, n - 1) + g(g, n - 1)\nx = f(f, 60)", STEPS),
    "endless_generator": ("def g():\n    while True:\n        yield 1\nx = list(g())", STEPS),
    "yield_from": ("def g():\n    for i in range(99999):\n        yield from range(99999)\nx = sum(g())", STEPS),
    "unpack_huge": ("a, *b = range(10**9)", RANGE),
    "zip_in_loop": ("x = [0] * 99999\nfor i in range(1000):\n    y = list(zip(x, x))", STEPS),
    "print_in_loop": ("s = 'x' * 999999\nfor i in range(99999):\n    print(s)\nlog = printed", STEPS),
    "round_negative_digits": ("x = round(5, -10**9)", TOO_BIG_INT),
    "to_bytes": ("x = (1).to_bytes(10**9, 'big')", TOO_LONG),
    "sum_of_lists": ("x = sum([[0] * 999999] * 1000, [])", "sum() would build a sequence"),
    "str_of_big_list": ("x = [0] * 999999\nkeep = []\nfor i in range(99999):\n    keep.append(str(x))",
                        "str() would build a string of more than 1,000,000 characters"),
}


@pytest.mark.parametrize("name", sorted(SCRIPT_ATTACKS))
def test_script_attack_is_stopped_quickly(env: SandboxEnvironment, name: str) -> None:
    script, message = SCRIPT_ATTACKS[name]
    compile_script(script)  # nothing here is refused at deploy time: the budget is a run-time matter
    data: dict[str, object] = {"kept": 1}
    with pytest.raises(SandboxLimitError, match=re.escape(message)):  # the message names the budget that
        env.execute(script, data)  # stopped it: steps or size, not the wall-clock backstop
    assert data.get("kept") == 1


EXPRESSION_ATTACKS = [
    "10 ** 10 ** 10",
    "len('a' * 10**10)",
    "len([0] * 10**10)",
    "sum(range(10**9))",
    "len([i for i in range(10**6)])",
    "sum(x * y for x in range(99999) for y in range(99999))",
    "(lambda f: f(f, 60))(lambda g, n: 0 if n == 0 else g(g, n - 1) + g(g, n - 1))",
]


@pytest.mark.parametrize("expression", EXPRESSION_ATTACKS)
def test_expression_attack_is_stopped(env: SandboxEnvironment, expression: str) -> None:
    with pytest.raises(SandboxLimitError):
        env.evaluate(expression, {})


def test_a_script_cannot_catch_a_limit(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {}
    script = ("try:\n    while True:\n        pass\nexcept Exception as e:\n    caught = str(e)\n"
              "try:\n    x = 'a' * 10**10\nexcept:\n    caught = 'size'\n")
    with pytest.raises(SandboxLimitError, match="steps"):
        env.execute(script, data)
    assert "caught" not in data
    with pytest.raises(SandboxLimitError, match="would build"):
        env.execute("try:\n    x = 'a' * 10**10\nexcept Exception:\n    caught = 1", data)
    assert "caught" not in data


def test_other_errors_are_still_catchable(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {}
    env.execute("try:\n    x = 1 / 0\nexcept ZeroDivisionError:\n    x = -1", data)
    assert data == {"x": -1}


def test_the_clock_stops_work_that_costs_few_steps(env: SandboxEnvironment, monkeypatch) -> None:
    """`x in big` is one step but a scan of the whole list: the wall clock is the backstop."""
    monkeypatch.setattr(limits, "MAX_SECONDS", 0.1)
    with pytest.raises(SandboxLimitError, match=r"ran longer than 0\.1 s"):
        env.execute("big = list(range(99999))\nfor i in range(90000):\n    hit = -1 in big", {})


def test_limits_are_module_constants(env: SandboxEnvironment, monkeypatch) -> None:
    script = "n = 0\nfor i in range(500):\n    for j in range(5):\n        n += 1"
    env.execute(script, {})
    monkeypatch.setattr(limits, "MAX_STEPS", 1000)
    with pytest.raises(SandboxLimitError, match="more than 1,000 steps"):
        env.execute(script, {})
    with pytest.raises(SandboxLimitError, match="range"):
        env.evaluate("len(range(1001))", {})
    monkeypatch.setattr(limits, "MAX_ITEMS", 10)
    with pytest.raises(SandboxLimitError, match=r"the limit is 10$"):
        env.evaluate("'-' * 11", {})
    monkeypatch.setattr(limits, "MAX_INT_BITS", 64)
    with pytest.raises(SandboxLimitError, match="bits"):
        env.evaluate("2 ** 65", {})


def test_the_budget_is_per_evaluation(env: SandboxEnvironment) -> None:
    """Each run may use most of the budget; a failed run leaves nothing behind for the next one."""
    big = "n = 0\nfor i in range(90000):\n    n += 1"
    for _ in range(3):
        data: dict[str, object] = {}
        env.execute(big, data)
        assert data["n"] == 90000
    assert env.evaluate("sum(1 for i in range(90000))", {}) == 90000
    with pytest.raises(SandboxLimitError):
        env.execute("while True:\n    pass", {})
    assert env.evaluate("len([i for i in range(90000)])", {}) == 90000
    data = {}
    env.execute(big, data)
    assert data["n"] == 90000


def test_a_function_made_in_one_evaluation_is_charged_there(env: SandboxEnvironment) -> None:
    """Guards are bound to the evaluation that made them, so they never share a count."""
    spin = env.evaluate("lambda: [i for i in range(90000)]", {})
    assert env.evaluate("len([i for i in range(90000)])", {}) == 90000
    assert len(spin()) == 90000  # the first call fits the lambda's own budget ...
    with pytest.raises(SandboxLimitError):
        spin()  # ... the second does not: it is still that evaluation's budget


ALLOWED_SCRIPTS = [
    ("total = 0\nfor x in items:\n    total += x", {"total": 6}),
    ("evens = [i for i in items if i % 2 == 0]\nsq = {i: i * i for i in items}",
     {"evens": [2], "sq": {1: 1, 2: 4, 3: 9}}),
    ("n = 0\nwhile n < 10:\n    n += 1", {"n": 10}),
    ("def fact(k):\n    return 1 if k <= 1 else k * fact(k - 1)\nf = fact(20)", {"f": 2432902008176640000}),
    ("big = 2 ** 1000\nbits = big.bit_length()\np = pow(3, 4, 5)\ns = 1 << 100", {"bits": 1001, "p": 1, "s": 2**100}),
    ("x = 10 ** 300 // 10 ** 299\ny = 2.5 ** 2\nz = -2 ** 3", {"x": 10, "y": 6.25, "z": -8}),
    ("r = round(1234, -2)\nf = round(2.5)\nb = list((258).to_bytes(2, 'big'))\nl = sum([[1], [2]], [])",
     {"r": 1200, "f": 2, "b": [1, 2], "l": [1, 2]}),
    ("s = ''\nfor i in range(300):\n    s = s + str(i) + ','\nn = len(s)", {"n": 1090}),
    ("parts = []\nfor x in items:\n    parts.append(f'{x:>3}')\ns = '|'.join(parts)", {"s": "  1|  2|  3"}),
    ("line = '-' * 80\nrow = [0] * 5\npad = 'ab'.ljust(5, '.')", {"line": "-" * 80, "row": [0] * 5, "pad": "ab..."}),
    ("s = '%5.2f|%s' % (3.14159, 'a')\nt = '%(x)03d' % {'x': 7}", {"s": " 3.14|a", "t": "007"}),
    ("a, *b = items\nc = [*b, *b]\nd = (*items,)", {"a": 1, "b": [2, 3], "c": [2, 3, 2, 3], "d": (1, 2, 3)}),
    ("ok = isinstance(items, list) and isinstance('s', (int, str)) and isinstance(range(2), range)", {"ok": True}),
    ("d = dict.fromkeys(['a', 'b'], 0)\nd.update({'c': 1})\nj = str.join('-', ['x', 'y'])",
     {"d": {"a": 0, "b": 0, "c": 1}, "j": "x-y"}),
    ("l = list(range(5))\nl.extend([5, 6])\nl.sort(reverse=True)\nhead = l[:2]\ncopy = l.copy()",
     {"head": [6, 5], "copy": [6, 5, 4, 3, 2, 1, 0]}),
    ("pairs = sorted({'b': 2, 'a': 1}.items())\nz = list(zip(items, 'abc'))\ne = list(enumerate('xy', 1))",
     {"pairs": [("a", 1), ("b", 2)], "z": [(1, "a"), (2, "b"), (3, "c")], "e": [(1, "x"), (2, "y")]}),
    ("m = max(items, key=lambda v: -v)\ns = sum(x for x in items)\nt = min(4, 3)\nu = any(x > 2 for x in items)",
     {"m": 1, "s": 6, "t": 3, "u": True}),
    ("w = 'a b c'.split()\nr = 'hello'.replace('l', 'L')\nc = tuple('ab')\nq = json_dumps({'k': [1]})",
     {"w": ["a", "b", "c"], "r": "heLLo", "c": ("a", "b"), "q": '{"k": [1]}'}),
    ("for k, v in {'a': 1}.items():\n    key = k + str(v)\nfor i, (p, q) in enumerate([(1, 2)]):\n    s = i + p + q",
     {"key": "a1", "s": 3}),
    ("print('hi', 1)\nlog = printed", {"log": "hi 1\n"}),
    ("when = datetime(2024, 1, 2, tzinfo=timezone.utc) + timedelta(days=1)\nday = f'{when:%Y-%m-%d}'",
     {"day": "2024-01-03"}),
    ("def gen():\n    yield from items\n    yield 4\nall_ = list(gen())\nrepr_ = repr(items) + f'{items!r}'",
     {"all_": [1, 2, 3, 4], "repr_": "[1, 2, 3][1, 2, 3]"}),
]


@pytest.mark.parametrize(("script", "expected"), ALLOWED_SCRIPTS)
def test_ordinary_scripts_still_work(env: SandboxEnvironment, script: str, expected: dict) -> None:
    data: dict[str, object] = {"items": [1, 2, 3]}
    env.execute(script, data)
    for key, value in expected.items():
        assert data[key] == value


def test_ordinary_expressions_still_work(env: SandboxEnvironment) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert env.evaluate("amount * 2 > 100 and level in ('a', 'b')", {"amount": 60, "level": "a"}) is True
    assert env.evaluate("'%s-%03d' % (grid, n)", {"grid": "G1", "n": 7}) == "G1-007"
    assert env.evaluate("f'{site}/{n:04d}'", {"site": "s", "n": 3}) == "s/0003"
    assert env.evaluate("sorted(readings)[len(readings) // 2]", {"readings": list(range(10_001))}) == 5000
    assert env.evaluate("(start + timedelta(hours=2)).isoformat()", {}, {"start": start}).startswith("2024-01-01T02")
    assert env.evaluate("x ** 0.5", {"x": 16}) == 4.0


def test_task_data_still_shadows_guarded_helpers(env: SandboxEnvironment) -> None:
    assert env.evaluate("list + sum", {"list": 1, "sum": 2}) == 3
    data = {"sorted": "data"}
    env.execute("y = sorted", data)
    assert data == {"sorted": "data", "y": "data"}


def test_guards_and_helpers_do_not_leak_into_task_data(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {}
    env.execute("x = list(range(3))\ny = [i for i in x]\nz = 2 ** 3\nw = f'{z}'", data)
    assert data == {"x": [0, 1, 2], "y": [0, 1, 2], "z": 8, "w": "8"}
