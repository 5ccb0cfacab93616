"""The sandbox must refuse code-execution tricks from uploaded BPMN while running ordinary scripts."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from engine.sandbox import (
    DEFAULT_HELPERS,
    SandboxEnvironment,
    SandboxError,
    compile_expression,
    compile_script,
)


@pytest.fixture
def env() -> SandboxEnvironment:
    return SandboxEnvironment()


def _data() -> dict[str, object]:
    return {"x": {"a": 1}, "f": None, "items": [1, 2, 3], "when": "2024-01-01"}


# (source, exception expected from both evaluate and execute)
ATTACKS = [
    ("__import__('os').system('id')", SandboxError),
    ("().__class__.__base__.__subclasses__()", SandboxError),
    ("[].__class__", SandboxError),
    ("(lambda: 0).__globals__", SandboxError),
    ("f.__code__", SandboxError),
    ("x._private", SandboxError),
    ("(i for i in items).gi_frame", SandboxError),
    ("(i for i in items).gi_code", SandboxError),
    ("eval('1')", SandboxError),
    ("exec('x=1')", SandboxError),
    ("__builtins__", SandboxError),
    ("breakpoint()", SandboxError),
    ("open('/etc/passwd').read()", NameError),
    ("getattr(x, '__class__')", NameError),
    ("type(1)", NameError),
    ("globals()", NameError),
    ("vars()", NameError),
    ("locals()", NameError),
    ("dir()", NameError),
    ("compile('1', 'f', 'eval')", NameError),
    ("setattr(x, 'a', 1)", NameError),
    ("delattr(x, 'a')", NameError),
    ("id(x)", NameError),
    ("SystemExit", NameError),
    ("KeyboardInterrupt", NameError),
    ("'{0.__class__}'.format(1)", NotImplementedError),
    ("str.format('{0.__class__}', 1)", NotImplementedError),
    ("'{a}'.format_map(x)", NotImplementedError),
    ("datetime.now()", AttributeError),
    ("datetime.utcnow()", AttributeError),
    ("datetime(2024, 1, 1).today()", AttributeError),
]


@pytest.mark.parametrize(("source", "error"), ATTACKS)
def test_attack_refused_in_expression(env: SandboxEnvironment, source: str, error: type) -> None:
    with pytest.raises(error):
        env.evaluate(source, _data())


@pytest.mark.parametrize(("source", "error"), ATTACKS)
def test_attack_refused_in_script(env: SandboxEnvironment, source: str, error: type) -> None:
    data = _data()
    with pytest.raises(error):
        env.execute(f"result = {source}", data)
    assert "result" not in data
    assert data == _data()


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ("import os\nos.system('touch {path}')", SandboxError),
        ("from os import system\nsystem('touch {path}')", SandboxError),
        ("__import__('os').system('touch {path}')", SandboxError),
        ("open('{path}', 'w').write('x')", NameError),
        ("class A:\n    pass", SandboxError),
        ("def g():\n    yield 1\nframe = g().gi_frame", SandboxError),
        ("try:\n    1 / 0\nexcept Exception as e:\n    tb = e.__traceback__", SandboxError),
        ("x.attr = 1", AttributeError),
        ("raise SystemExit(1)", NameError),
    ],
)
def test_script_only_attacks_have_no_side_effect(
    env: SandboxEnvironment, tmp_path: Path, script: str, error: type
) -> None:
    target = tmp_path / "pwned"
    with pytest.raises(error):
        env.execute(script.format(path=target), _data())
    assert not target.exists()


def test_attribute_write_on_non_container_refused(env: SandboxEnvironment) -> None:
    with pytest.raises(TypeError):
        env.execute("when_obj.year = 1", {}, {"when_obj": datetime(2024, 1, 1)})


@pytest.mark.parametrize(
    ("source", "kind", "lineno"),
    [
        ("a = 1\nb = 2\nimport os", "script", 3),
        ("x = (", "script", 1),
        ("return 1", "script", 1),
        ("x = 'a\x00'", "script", 1),
        ("1 +", "expression", 1),
        ("a.__class__", "expression", 1),
        ("1" + " + 1" * 100_000, "expression", 1),
    ],
)
def test_sandbox_error_carries_line_number(source: str, kind: str, lineno: int) -> None:
    compile_fn = compile_script if kind == "script" else compile_expression
    with pytest.raises(SandboxError) as info:
        compile_fn(source)
    assert info.value.source_kind == kind
    assert info.value.lineno == lineno
    assert info.value.reason
    assert isinstance(info.value.args[0], str)


def test_sandbox_error_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(SandboxError("script", 4, "no")))
    assert (err.source_kind, err.lineno, err.reason) == ("script", 4, "no")


@pytest.mark.parametrize(
    ("expression", "data", "expected"),
    [
        ("approved == True", {"approved": True}, True),
        ("amount > 100 and category in ('a', 'b')", {"amount": 150, "category": "b"}, True),
        ("amount > 100 and category in ('a', 'b')", {"amount": 150, "category": "c"}, False),
        ("'PT2H'", {}, "PT2H"),
        ("x.get('k', 0)", {"x": {"k": 5}}, 5),
        ("x.get('missing', 0)", {"x": {}}, 0),
        ("name.upper()", {"name": "grid"}, "GRID"),
        ("[i * 2 for i in items if i > 1]", {"items": [1, 2, 3]}, [4, 6]),
        ("{k: v for k, v in pairs}", {"pairs": [["a", 1]]}, {"a": 1}),
        ("f'{site}-{len(items)}'", {"site": "n1", "items": [1, 2]}, "n1-2"),
        ("sorted(items, key=lambda i: -i)[0]", {"items": [1, 3, 2]}, 3),
        ("max(items) + min(items) + sum(items)", {"items": [1, 2]}, 6),
        ("'%s/%d' % (a, b)", {"a": "x", "b": 2}, "x/2"),
        ("json_loads(raw)['n']", {"raw": '{"n": 3}'}, 3),
        ("json_dumps({'a': 1})", {}, '{"a": 1}'),
        ("\n    y == 42\n  ", {"y": 42}, True),
    ],
)
def test_allowed_expressions(env: SandboxEnvironment, expression: str, data: dict, expected: object) -> None:
    assert env.evaluate(expression, data) == expected


def test_expression_reads_external_context_and_datetime_math(env: SandboxEnvironment) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    result = env.evaluate("start + timedelta(hours=2)", {}, {"start": start})
    assert result == start + timedelta(hours=2)
    iso = env.evaluate("(start + timedelta(days=1)).isoformat()", {}, {"start": start})
    assert iso.startswith("2024-01-02")


def test_task_data_wins_over_external_context_in_expressions(env: SandboxEnvironment) -> None:
    assert env.evaluate("v", {"v": "data"}, {"v": "external"}) == "data"


def test_evaluate_does_not_touch_context(env: SandboxEnvironment) -> None:
    data = {"a": 1}
    env.evaluate("a + 1", data, {"b": 2})
    assert data == {"a": 1}


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("result = {'ok': True, 'n': len(items)}", {"result": {"ok": True, "n": 3}}),
        ("total = 0\nfor x in items:\n    total += x", {"total": 6, "x": 3}),
        ("d = {}\nd['a'] = 1\ndel d['a']\nd['b'] = [1]", {"d": {"b": [1]}}),
        ("items.append(4)\nitems.extend([5])", {"items": [1, 2, 3, 4, 5]}),
        ("s = 'a'\ns += 'b'\nl = [1]\nl *= 2\nn = 7\nn //= 2", {"s": "ab", "l": [1, 1], "n": 3}),
        ("a, (b, c) = 1, (2, 3)", {"a": 1, "b": 2, "c": 3}),
        ("evens = [i for i in items if i % 2 == 0]", {"evens": [2]}),
        ("def double(v):\n    return v * 2\nr = double(*[4])", {"r": 8}),
        ("msg = f'{len(items)} items'", {"msg": "3 items"}),
        ("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    err = str(e)", {"err": "division by zero"}),
        ("print('hello')\nlog = printed", {"log": "hello\n"}),
    ],
)
def test_allowed_scripts(env: SandboxEnvironment, script: str, expected: dict) -> None:
    data: dict[str, object] = {"items": [1, 2, 3]}
    assert env.execute(script, data) is True
    for key, value in expected.items():
        assert data[key] == value


def test_execute_strips_non_json_values_and_keeps_json_ones(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {"module_like": json, "kept": {"nested": [1, "a", None, 2.5, True]}}
    script = (
        "when = datetime(2024, 1, 1)\n"
        "delta = timedelta(hours=1)\n"
        "tags = {1, 2}\n"
        "nan = float('nan')\n"
        "fn = lambda: 1\n"
        "gen = (i for i in [1])\n"
        "bad_nested = {'ok': 1, 'when': when}\n"
        "pair = (1, 2)\n"
        "plain = {'n': 1, 's': 'x', 'l': [1.5, None]}\n"
    )
    env.execute(script, data)
    assert data == {
        "kept": {"nested": [1, "a", None, 2.5, True]},
        "pair": (1, 2),
        "plain": {"n": 1, "s": "x", "l": [1.5, None]},
    }
    json.dumps(data)


def test_execute_removes_helpers_guards_and_external_context(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {}
    env.execute("y = ext + 1", data, {"ext": 1})
    assert data == {"y": 2}


def test_task_data_may_shadow_helpers_and_is_kept(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {"max": 7, "sum": "not a function"}
    env.execute("m = max + 1", data)
    assert data == {"max": 7, "sum": "not a function", "m": 8}
    assert env.evaluate("max * 2", {"max": 4}) == 8


def test_data_cannot_replace_guards(env: SandboxEnvironment) -> None:
    data = {"_getattr_": None, "x": {"k": 1}}
    assert env.evaluate("x.get('k')", data) == 1
    copy = dict(data)
    env.execute("y = x.get('k')", copy)
    assert copy["y"] == 1


def test_runtime_errors_propagate_and_context_is_cleaned(env: SandboxEnvironment) -> None:
    data: dict[str, object] = {"a": 1}
    with pytest.raises(ZeroDivisionError):
        env.execute("b = 2\nc = a / 0", data)
    assert data == {"a": 1, "b": 2}
    with pytest.raises(KeyError):
        env.evaluate("x['nope']", {"x": {}})


def test_runtime_syntax_error_gets_a_line_number(env: SandboxEnvironment) -> None:
    with pytest.raises(SyntaxError) as info:
        env.execute("raise SyntaxError('custom')", {})
    assert info.value.lineno == 1


def test_augmented_item_assignment_is_refused_at_compile_time() -> None:
    # RestrictedPython limitation: write `d['k'] = d['k'] + 1` instead.
    with pytest.raises(SandboxError):
        compile_script("d = {'k': 1}\nd['k'] += 1")


def test_compile_cache_returns_same_code_object() -> None:
    assert compile_expression("a == 1") is compile_expression("a == 1")
    assert compile_script("b = 2") is compile_script("b = 2")
    assert compile_expression("a == 1") is not compile_expression("a == 2")


def test_non_string_source_is_rejected() -> None:
    with pytest.raises(TypeError):
        compile_script(b"x = 1")  # type: ignore[arg-type]


def test_custom_helpers_replace_defaults() -> None:
    env = SandboxEnvironment(helpers={"double": lambda v: v * 2})
    assert env.evaluate("double(21)", {}) == 42
    with pytest.raises(NameError):
        env.evaluate("sum([])", {})  # len/str/int... stay: they are RestrictedPython safe builtins
    extended = SandboxEnvironment(helpers={**DEFAULT_HELPERS, "double": lambda v: v * 2})
    assert extended.evaluate("len([double(1)])", {}) == 1


def test_default_helpers_expose_no_modules() -> None:
    assert not any(type(v).__name__ == "module" for v in DEFAULT_HELPERS.values())
    assert "type" not in DEFAULT_HELPERS


# --- SpiffWorkflow integration ----------------------------------------------------------------

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="defs" targetNamespace="http://gridloop.test">
  <bpmn:process id="proc" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:scriptTask id="script" scriptFormat="python">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:script>{script}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="gw" default="f4">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="end_ok"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_other"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="script"/>
    <bpmn:sequenceFlow id="f2" sourceRef="script" targetRef="gw"/>
    <bpmn:sequenceFlow id="f3" sourceRef="gw" targetRef="end_ok">
      <bpmn:conditionExpression>{condition}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f4" sourceRef="gw" targetRef="end_other"/>
  </bpmn:process>
</bpmn:definitions>
"""


def _workflow(script: str, condition: str = "y == 42") -> BpmnWorkflow:
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(BPMN.format(script=script, condition=condition).encode())
    spec = parser.get_spec("proc")
    subs = parser.get_subprocess_specs("proc")
    engine = PythonScriptEngine(environment=SandboxEnvironment())
    return BpmnWorkflow(spec, subs, script_engine=engine)


def _completed_spec_names(wf: BpmnWorkflow) -> set[str]:
    return {t.task_spec.name for t in wf.get_tasks(state=TaskState.COMPLETED)}


def test_spiff_workflow_runs_under_sandbox() -> None:
    wf = _workflow("x = 2\ny = x * 21")
    wf.do_engine_steps()
    assert wf.is_completed()
    assert wf.data["y"] == 42
    completed = _completed_spec_names(wf)
    assert "end_ok" in completed
    assert "end_other" not in completed


def test_spiff_workflow_refuses_malicious_script() -> None:
    target = Path("/tmp/pwned_gridloop")
    target.unlink(missing_ok=True)
    wf = _workflow("__import__('os').system('touch /tmp/pwned_gridloop')")
    with pytest.raises(WorkflowTaskException) as info:
        wf.do_engine_steps()
    assert info.value.error_type == "SandboxError"
    assert not target.exists()
    assert not wf.is_completed()


def test_spiff_workflow_refuses_malicious_condition(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    wf = _workflow("y = 42", condition=f"open('{target}', 'w') is None")
    with pytest.raises(WorkflowTaskException):
        wf.do_engine_steps()
    assert not target.exists()
