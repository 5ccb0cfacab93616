"""Defence in depth: a model that escaped the deploy lint (inserted straight into the table) still runs
every script and expression in the sandbox, also after the workflow was saved and loaded again."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine import definitions, instances, tasks
from engine.errors import ProcessError
from engine.models import AuditEvent, ProcessDefinition, ProcessInstance
from engine.parsing import parse_model
from tests.engine.builders import boundary_timer, end, flow, gateway, process, script, seq, service, start, user
from tests.engine.support import count, open_task

ESCAPES = {
    "import": "__import__('os').system('touch {path}')",
    "open": "open('{path}', 'w').write('pwned')",
    "subclasses": "[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'FileIO'][0]('{path}', 'w')",
    "format": "'{{0.__class__}}'.format(1) or open('{path}', 'w')",
}


def _insert_unlinted(rt, xml: str, key: str) -> int:
    """What a compromised or buggy deploy path would leave: a definition row nobody linted."""
    parse_model(xml, require_lint=False)  # it parses; the lint is what we bypass
    with rt.db.transaction() as s:
        row = ProcessDefinition(key=key, version=1, name=key, bpmn_xml=xml, deployed_by="intruder",
                                sha256=hashlib.sha256(xml.encode()).hexdigest(), deployed_at=rt.clock.now())
        s.add(row)
        s.flush()
        return row.id


def _model(where: str, code: str) -> str:
    if where == "script":
        return process("evil", start(), script("s", code), end(), seq("start", "s", "end"))
    if where == "condition":
        return process("evil", start(), gateway("g", default="f_g_b"), end("a"), end("b"), seq("start", "g"),
                       flow("g", "a", f"({code}) == 1"), flow("g", "b"))
    if where == "parameter":
        return process("evil", start(), service("s", "ref.classify", value=code), end(), seq("start", "s", "end"))
    if where == "timer":
        return process("evil", start(), user("t"), boundary_timer("tm", "t", "timeDuration", f"({code}) or 'PT1H'"),
                       end(), end("late"), seq("start", "t", "end"), seq("tm", "late"), lanes={"clerk": ["t"]})
    if where == "task_property":
        return process("evil", start(), user("t", dueDate=code), end(), seq("start", "t", "end"),
                       lanes={"clerk": ["t"]})
    raise AssertionError(where)


@pytest.mark.parametrize("escape", sorted(ESCAPES))
@pytest.mark.parametrize("where", ["script", "condition", "parameter", "timer", "task_property"])
def test_unlinted_escape_fails_at_run_time_without_side_effect(rt, tmp_path: Path, where: str, escape: str):
    target = tmp_path / "pwned"
    definition_id = _insert_unlinted(rt, _model(where, ESCAPES[escape].format(path=target)), "evil")
    events = count(rt, AuditEvent)
    with pytest.raises(ProcessError):
        instances.start(rt, actor="intruder", definition_id=definition_id)
    assert not target.exists()
    assert count(rt, ProcessInstance) == 0 and count(rt, AuditEvent) == events


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_escape_after_a_save_and_load_is_still_sandboxed(rt, tmp_path: Path, escape: str):
    """The first step waits for a person; the script runs on a workflow loaded back from the database."""
    target = tmp_path / "pwned"
    xml = process("evil", start(), user("first"), script("s", ESCAPES[escape].format(path=target)), end(),
                  seq("start", "first", "s", "end"), lanes={"clerk": ["first"]})
    iid = instances.start(rt, actor="intruder", definition_id=_insert_unlinted(rt, xml, "evil")).instance.id
    first = open_task(rt, iid, "first")
    before = instances.get(rt, iid).revision
    with pytest.raises(ProcessError):
        tasks.complete(rt, first.id, "intruder")
    assert not target.exists()
    assert instances.get(rt, iid).revision == before and tasks.get(rt, first.id).status == "open"


# --- the per-evaluation budget (engine/sandbox.py) -----------------------------------------------

BUDGET_ATTACKS = {
    "while_true": "while True:\n    pass",
    "for_huge_range": "for i in range(10**12):\n    pass",
    "pow_tower": "x = 10 ** 10 ** 10",
    "str_repeat": "x = 'a' * 10**10",
    "list_repeat": "x = [0] * 10**10",
    "list_of_range": "x = list(range(10**9))",
    "recursion": "def f(n):\n    return 0 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)",
}


@pytest.mark.parametrize("attack", sorted(BUDGET_ATTACKS))
def test_over_budget_script_rolls_back_the_change(rt, attack: str):
    """Such scripts deploy (the lint cannot decide termination); at run time the change fails with a
    ProcessError naming the script task, and the instance still waits at the previous task."""
    xml = process("budget", start(), user("first"), script("s", BUDGET_ATTACKS[attack]), end(),
                  seq("start", "first", "s", "end"), lanes={"clerk": ["first"]})
    definition, _ = definitions.deploy(rt, xml, "admin")
    iid = instances.start(rt, actor="clerk", definition_id=definition.id).instance.id
    first = open_task(rt, iid, "first")
    before = instances.get(rt, iid)
    events = count(rt, AuditEvent)
    with pytest.raises(ProcessError, match="was stopped") as info:  # in words, no class names
        tasks.complete(rt, first.id, "clerk")
    assert info.value.details["element"] == "s"
    after = instances.get(rt, iid)
    assert (after.revision, after.status, after.state) == (before.revision, "running", before.state)
    assert tasks.get(rt, first.id).status == "open" and count(rt, AuditEvent) == events


def test_over_budget_condition_rolls_back_the_start(rt):
    xml = process("budget_cond", start(), gateway("g", default="f_g_b"), end("a"), end("b"), seq("start", "g"),
                  flow("g", "a", "sum(x for x in range(99999) for y in range(99999)) == 1"), flow("g", "b"))
    definition, _ = definitions.deploy(rt, xml, "admin")
    events = count(rt, AuditEvent)
    with pytest.raises(ProcessError, match="was stopped") as info:  # in words, no class names
        instances.start(rt, actor="clerk", definition_id=definition.id)
    assert info.value.details["element"] == "g" and "steps" in str(info.value)  # the reason, not only the type
    assert count(rt, ProcessInstance) == 0 and count(rt, AuditEvent) == events


def test_budget_is_fresh_for_every_script_run(rt):
    """Three script tasks in one change, each using most of a budget, all run."""
    busy = "n = 0\nfor i in range(90000):\n    n += 1\nruns = runs + 1"
    xml = process("busy", start(), script("s1", busy), script("s2", busy), script("s3", busy), end(),
                  seq("start", "s1", "s2", "s3", "end"))
    definition, _ = definitions.deploy(rt, xml, "admin")
    result = instances.start(rt, actor="clerk", definition_id=definition.id, variables={"runs": 0})
    done = instances.get(rt, result.instance.id)
    assert done.status == "completed"


@pytest.mark.parametrize("where", ["script", "condition", "parameter", "timer", "task_property"])
def test_over_budget_code_anywhere_fails_the_start_without_a_trace(rt, where: str):
    definition, _ = definitions.deploy(rt, _model(where, "len('a' * 10**10)"), "admin")
    events = count(rt, AuditEvent)
    with pytest.raises(ProcessError) as info:
        instances.start(rt, actor="clerk", definition_id=definition.id)
    assert info.value.details["element"]
    assert count(rt, ProcessInstance) == 0 and count(rt, AuditEvent) == events
