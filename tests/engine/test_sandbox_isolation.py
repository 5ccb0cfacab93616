"""GRIDLOOP_SANDBOX_ISOLATION=subprocess: scripts and expressions run in pre-started child processes
with rlimits. Same results and the same refusals as in-process; what the budgets miss, the rlimits
end, and the pool replaces the child; the child holds none of the parent's secrets."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import definitions, instances
from engine.errors import ProcessError
from engine.models import ProcessInstance
from engine.runtime import Runtime
from engine.sandbox import SandboxEnvironment, SandboxError, SandboxLimitError
from engine.sandbox.isolation import IsolatedEvaluator
from tests.conftest import reference_operations
from tests.engine.builders import end, flow, gateway, process, script, seq, start
from tests.engine.support import count


@pytest.fixture(scope="module")
def evaluator():
    pool = IsolatedEvaluator(memory_mb=256)
    yield pool
    pool.close()


@pytest.fixture
def env(evaluator) -> SandboxEnvironment:
    return SandboxEnvironment(isolated=evaluator)


def test_results_cross_the_boundary_as_in_process(env):
    when = datetime(2024, 1, 1, tzinfo=UTC)
    assert env.evaluate("amount * 2 > 100 and level in ('a', 'b')", {"amount": 60, "level": "a"}) is True
    assert env.evaluate("start + timedelta(hours=2)", {"start": when}) == when + timedelta(hours=2)
    assert env.evaluate("timedelta(days=1)", {}) == timedelta(days=1)
    data = {"items": [1, 2, 3]}
    assert env.execute("total = sum(items)\nlabel = f'{total:>4}'\ndef f():\n    return 1", data) is True
    assert data == {"items": [1, 2, 3], "total": 6, "label": "   6"}  # the function stays behind, as in-process


def test_errors_keep_their_kind_for_the_engine_to_word(env):
    with pytest.raises(NameError) as info:
        env.evaluate("inspectr", {})
    assert info.value.name == "inspectr"
    with pytest.raises(ZeroDivisionError):
        env.execute("x = 1 / 0", {})
    with pytest.raises(SandboxError):
        env.evaluate("__import__('os')", {})
    with pytest.raises(SandboxLimitError, match="pow\\(\\) with a 9,966-bit exponent"):
        env.evaluate("pow(3, 10**3000, 10**3000 + 7)", {})
    with pytest.raises(SandboxLimitError, match="the data budget"):
        env.execute("x = [['a' * 1000000] * 1000] * 1000", {})


def test_the_address_space_limit_ends_what_the_budgets_allow(env, evaluator):
    """60 strings of a million characters pass every per-operation budget (60,000 of 100,000 steps);
    a child limited to 64 MB gets MemoryError from RLIMIT_AS instead of growing: the evaluation is
    refused naming the limit, and the next one runs in the same child."""
    small = IsolatedEvaluator(memory_mb=64)
    try:
        with pytest.raises(SandboxLimitError, match=r"ran out of memory: the isolated evaluator may use 64 MB "
                                                    r"\(RLIMIT_AS\)"):
            SandboxEnvironment(isolated=small).execute(
                "keep = []\nfor i in range(60):\n    keep.append('x' * 999990 + str(i))", {})
        assert SandboxEnvironment(isolated=small).evaluate("1 + 1", {}) == 2
    finally:
        small.close()


def test_a_child_that_dies_is_replaced(env, evaluator):
    env.evaluate("1", {})
    (child,) = [c for c in evaluator._all if c.process.poll() is None][:1]
    os.kill(child.process.pid, signal.SIGKILL)
    child.process.wait()
    with pytest.raises(SandboxLimitError, match="the isolated evaluator ended \\(signal 9"):
        env.evaluate("1", {})
    assert env.evaluate("2 + 2", {}) == 4


def test_the_child_holds_no_secret(evaluator, monkeypatch):
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "s3cret-of-the-web-process")
    pool = IsolatedEvaluator(memory_mb=128)
    try:
        SandboxEnvironment(isolated=pool).evaluate("1", {})
        environ = Path(f"/proc/{pool._all[0].process.pid}/environ").read_bytes()
        assert b"s3cret" not in environ and b"GRIDLOOP_" not in environ
    finally:
        pool.close()


@pytest.fixture
def rt_isolated(db, clock, evaluator) -> Runtime:
    runtime = Runtime(db=db, clock=clock, sandbox=evaluator)
    reference_operations(runtime)
    return runtime


def test_a_model_runs_through_the_engine_in_the_child(rt_isolated):
    xml = process("iso", start(), script("s", "total = sum(items)\nbig = total > 5"), gateway("g", default="f_g_b"),
                  end("a"), end("b"), seq("start", "s", "g"), flow("g", "a", "big == True"), flow("g", "b"))
    definition, _ = definitions.deploy(rt_isolated, xml, "admin")
    started = instances.start(rt_isolated, actor="admin", definition_id=definition.id, variables={"items": [1, 2, 3]})
    assert started.instance.status == "completed"


def test_an_attack_through_the_engine_in_the_child_is_a_process_error(rt_isolated):
    xml = process("iso_bomb", start(), script("s", "x = [['a' * 1000000] * 1000] * 1000"), end(),
                  seq("start", "s", "end"))
    definition, _ = definitions.deploy(rt_isolated, xml, "admin")
    with pytest.raises(ProcessError, match=r'^step "s" failed: .*the data budget'):
        instances.start(rt_isolated, actor="admin", definition_id=definition.id)
    assert count(rt_isolated, ProcessInstance) == 0


def test_the_setting_picks_the_isolation_and_bad_values_are_refused(monkeypatch, db):
    from api.settings import Settings
    from api.wiring import make_runtime

    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")
    s = Settings.from_env()
    assert (s.sandbox_isolation, s.sandbox_memory_mb) == ("inprocess", 512)
    assert make_runtime(s, db=db).sandbox is None
    monkeypatch.setenv("GRIDLOOP_SANDBOX_ISOLATION", "Subprocess")
    monkeypatch.setenv("GRIDLOOP_SANDBOX_MEMORY_MB", "128")
    rt = make_runtime(Settings.from_env(), db=db)
    try:
        assert rt.sandbox is not None and rt.sandbox.memory_mb == 128
        assert SandboxEnvironment(isolated=rt.sandbox).evaluate("6 * 7", {}) == 42
    finally:
        rt.sandbox.close()
    for name, value in (("GRIDLOOP_SANDBOX_ISOLATION", "thread"), ("GRIDLOOP_SANDBOX_MEMORY_MB", "10")):
        with monkeypatch.context() as m:
            m.setenv(name, value)
            with pytest.raises(ValueError, match=name):
                Settings.from_env()
