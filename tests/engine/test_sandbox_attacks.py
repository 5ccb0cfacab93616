"""The resource attacks of issue 15, deployed and run through the real paths (a script task, a
gateway condition): each is stopped by the budget that names it, before the big allocation or the
long computation. The bound: no attack may add more than 300 MB to the process's peak RSS or use
more than 20 s of CPU (measured by getrusage; unbounded, each took minutes and gigabytes)."""

from __future__ import annotations

import re
import resource

import pytest

from engine import definitions, instances
from engine.errors import ProcessError
from engine.models import ProcessInstance
from engine.parsing import ModelError, parse_model
from tests.engine.builders import end, flow, gateway, process, script, seq, split_join_pairs, start
from tests.engine.support import count

BOMB = "[['a' * 1000000] * 1000] * 1000"  # 16 MB held, 10^12 characters as text or JSON
OTHER_BOMB = "[['a' * 1000000] * 1000] * 1000"  # equal, but not the same strings: == compares them all
DATA = "the data budget"
TEXT = "would build a string of more than 1,000,000 characters"
JSON = "json_dumps() would build more than 1,000,000 characters of JSON"
STEPS = "steps of this evaluation"
STATE = "the state budget"

# name → (expression or statement, where it may run, part of the message naming the budget)
ATTACKS = {
    "data_bomb": (f"x = {BOMB}", ("script",), DATA),
    "json_dumps": (f"json_dumps({BOMB})", ("script", "condition"), JSON),
    "fstring": (f'f"{{{BOMB}}}"', ("script", "condition"), "an f-string " + TEXT),
    "str": (f"str({BOMB})", ("script", "condition"), "str() " + TEXT),
    "repr": (f"repr({BOMB})", ("script", "condition"), "repr() " + TEXT),
    "percent": (f"'%s' % ({BOMB},)", ("script", "condition"), "'%' formatting " + TEXT),
    "print": (f"print({BOMB})", ("script",), "print() " + TEXT),
    "pow_mod": ("pow(3, 10**3000, 10**3000 + 7)", ("script", "condition"),
                "pow() with a 9,966-bit exponent and a 9,966-bit modulus would cost about"),
    "equality": (f"{BOMB} == {OTHER_BOMB}", ("script", "condition"), "'==' on a structure of more than"),
    "membership": (f"['a' * 1000000] * 1000 in {OTHER_BOMB}", ("script", "condition"), "'in' on a structure"),
    "hash": ("hash(((('a' * 1000,) * 1000,) * 1000,) * 1000)", ("script", "condition"), "hash() on a structure"),
    "grow_in_condition": (f"items.append({BOMB})", ("condition",), STATE),
}
CASES = [(name, where) for name, (_, places, _) in sorted(ATTACKS.items()) for where in places]


def _model(key: str, where: str, code: str) -> str:
    if where == "script":
        statement = code if code.startswith(("x =", "print(")) else f"y = {code}"
        return process(key, start(), script("s", statement), end(), seq("start", "s", "end"))
    return process(key, start(), gateway("g", default="f_g_b"), end("a"), end("b"), seq("start", "g"),
                   flow("g", "a", f"({code}) == 1"), flow("g", "b"))


def _usage() -> tuple[float, int]:
    """CPU seconds and peak RSS (MB) of this process so far."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss // 1024


@pytest.mark.parametrize(("name", "where"), CASES)
def test_attack_is_stopped_by_the_budget_that_names_it(rt, name: str, where: str):
    code, _, budget = ATTACKS[name]
    definition, _ = definitions.deploy(rt, _model(f"attack_{name}_{where}", where, code), "admin")
    cpu, rss = _usage()
    with pytest.raises(ProcessError) as info:
        instances.start(rt, actor="intruder", definition_id=definition.id, variables={"items": []})
    spent, peak = _usage()
    assert budget in str(info.value), str(info.value)
    if budget != STATE:  # stopped in the step that ran it, which the error names
        assert str(info.value).startswith(f'step "{"s" if where == "script" else "g"}"'), str(info.value)
    assert peak - rss < 300 and spent - cpu < 20, (peak - rss, spent - cpu)
    assert count(rt, ProcessInstance) == 0  # rolled back, nothing half done


def test_ordinary_data_still_saves(rt):
    """Data well inside the budgets (a long text, a table of a thousand rows) runs and is stored."""
    code = ("rows = [{'id': i, 'name': 'r' + str(i), 'tags': ['a', 'b']} for i in range(1000)]\n"
            "note = 'x' * 500000\nsame = rows == [dict(r) for r in rows]\nhit = 'r5' in [r['name'] for r in rows]\n"
            "text = json_dumps(rows[:100])\nshown = f'{rows[:10]}'")
    definition, _ = definitions.deploy(rt, process("ordinary", start(), script("s", code), end(),
                                                   seq("start", "s", "end")), "admin")
    started = instances.start(rt, actor="admin", definition_id=definition.id)
    assert started.instance.status == "completed"


def _pairs(n: int) -> str:
    return split_join_pairs(n)


def test_a_model_too_large_to_plan_is_refused_with_that_reason():
    cpu, rss = _usage()
    with pytest.raises(ModelError, match="the model is too large to plan: a new instance would have more than 20,000"):
        parse_model(_pairs(19))  # unbounded: 66 s of CPU and 2.4 GB
    spent, peak = _usage()
    assert peak - rss < 300 and spent - cpu < 20, (peak - rss, spent - cpu)
    parse_model(_pairs(6))  # a few pairs plan as before


def test_a_model_lint_refuses_is_not_planned():
    """Lint first, and stop there: the refusal names the lint's problem, not the plan's."""
    cpu, _ = _usage()
    with pytest.raises(ModelError) as info:
        parse_model(_pairs(19).replace("x = 1", "import os", 1))
    spent, _ = _usage()
    assert "import statements are not allowed" in str(info.value) and "too large to plan" not in str(info.value)
    assert spent - cpu < 20


TUPLE_BOMB = "((('a' * 1000,) * 1000,) * 1000,) * 1000"  # hashing it: 10^9 element hashes (not cached)
# Built-ins and syntax that compare or hash what they hold: charged by the walk before C does it.
WALKS = {
    "sorted": (f"sorted([{BOMB}, {OTHER_BOMB}])", "sorted() on a structure"),
    "max": (f"max([{BOMB}, {OTHER_BOMB}])", "max() on a structure"),
    "count": (f"[{BOMB}].count({OTHER_BOMB})", "count() on a structure"),
    "index": (f"[{BOMB}].index({OTHER_BOMB})", "index() on a structure"),
    "set": (f"set([{TUPLE_BOMB}])", "set() on a structure"),
    "dict_display": (f"{{{TUPLE_BOMB}: 1}}", "hashing a key"),
    "set_display": (f"{{{TUPLE_BOMB}}}", "hashing a key"),
    "lookup": (f"{{}}.get({TUPLE_BOMB})", "hashing a key"),
    "subscript": (f"{{}}[{TUPLE_BOMB}]", "hashing a key"),
}


@pytest.mark.parametrize("name", sorted(WALKS))
def test_walks_inside_built_ins_are_charged_before_they_run(name: str):
    from engine.sandbox import SandboxEnvironment, SandboxLimitError

    expression, message = WALKS[name]
    cpu, rss = _usage()
    with pytest.raises(SandboxLimitError, match=re.escape(message)):
        SandboxEnvironment().evaluate(expression, {})
    spent, peak = _usage()
    assert peak - rss < 300 and spent - cpu < 20, (peak - rss, spent - cpu)


def test_a_key_stored_by_subscript_is_charged_and_ordinary_keys_work():
    from engine.sandbox import SandboxEnvironment, SandboxLimitError

    with pytest.raises(SandboxLimitError, match="hashing a key"):
        SandboxEnvironment().execute(f"d = {{}}\nd[{TUPLE_BOMB}] = 1", {})
    data: dict[str, object] = {}
    SandboxEnvironment().execute("d = {'a': 1}\nd['b'] = 2\nk = ('x', 1)\nd[k[0]] = 3\ne = d.get('a')\n"
                                 "del d['b']\nn = len({1, k})\nm = sorted([{'v': 2}, {'v': 1}], key=lambda r: r['v'])",
                                 data)
    assert data["d"] == {"a": 1, "x": 3} and data["e"] == 1 and data["n"] == 2 and data["m"] == [{"v": 1}, {"v": 2}]
