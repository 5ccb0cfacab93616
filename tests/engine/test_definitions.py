"""Deploying models: every refusal names the element and the problem; versions are immutable and
instances stay pinned to the version they started on."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine import definitions, instances, tasks
from engine.errors import Conflict, NotFound, ProcessError
from engine.models import AuditEvent, ProcessDefinition
from engine.parsing import ModelError
from engine.runtime import Runtime
from tests.engine.builders import (
    boundary_timer,
    end,
    flow,
    gateway,
    process,
    script,
    seq,
    service,
    start,
    two_step,
    user,
)
from tests.engine.support import other_process, run_together


def _refusal(rt, xml: str) -> ModelError:
    with pytest.raises(ModelError) as info:
        definitions.deploy(rt, xml, "admin")
    return info.value


def _with_script(code: str) -> str:
    return process("p", start(), script("s", code), end(), seq("start", "s", "end"))


def _with_timer(kind: str, expression: str) -> str:
    return process("p", start(), user("t"), boundary_timer("tm", "t", kind, expression), end(), end("late"),
                   seq("start", "t", "end"), seq("tm", "late"), lanes={"clerk": ["t"]})


def _stored(rt) -> tuple[int, int]:
    with rt.db.session() as s:
        return (s.scalar(select(func.count()).select_from(ProcessDefinition)),
                s.scalar(select(func.count()).select_from(AuditEvent)))


def test_user_task_without_lane_deploys_with_a_warning_naming_the_task(rt):
    xml = process("p", start(), user("t"), end(), seq("start", "t", "end"))
    definition, created = definitions.deploy(rt, xml, "admin")
    (warning,) = definitions.warnings(rt, definition)
    assert created and warning.element_id == "t" and "not in a lane" in warning.message


def test_unknown_service_operation_is_refused_naming_task_and_operation(rt):
    xml = process("p", start(), service("s", "nope.missing"), end(), seq("start", "s", "end"))
    (problem,) = _refusal(rt, xml).problems
    assert problem.element_id == "s"
    assert "unknown service operation" in problem.message and "nope.missing" in problem.message


def test_registered_service_operation_deploys(rt):
    xml = process("p", start(), service("s", "ref.classify", value="1"), end(), seq("start", "s", "end"))
    definition, created = definitions.deploy(rt, xml, "admin")
    assert created and definition.key == "p" and definition.version == 1


@pytest.mark.parametrize("code", [
    "x = __import__('os')",
    "y = {}.__class__",
    "y = ().__class__.__base__.__subclasses__()",
])
def test_script_escapes_are_refused_at_deploy(rt, code):
    (problem,) = _refusal(rt, _with_script(code)).problems
    assert problem.element_id == "s"
    assert "script refused" in problem.message and "starts with \"_\"" in problem.message


def test_escape_in_a_service_parameter_expression_is_refused(rt):
    xml = process("p", start(), service("s", "ref.classify", value="__import__('os')"), end(),
                  seq("start", "s", "end"))
    (problem,) = _refusal(rt, xml).problems
    assert problem.element_id == "s" and "parameter 'value' refused" in problem.message


@pytest.mark.parametrize("expression", ["__import__('os')", "x.__class__", "due +"])
def test_bad_task_property_expression_is_refused_at_deploy(rt, expression):
    xml = process("p", start(), user("t", dueDate=expression), end(), seq("start", "t", "end"), lanes={"clerk": ["t"]})
    (problem,) = _refusal(rt, xml).problems
    assert problem.element_id == "t" and "dueDate" in problem.message


def _gateway_model(condition: str) -> str:
    return process("p", start(), gateway("g", default="f_g_low"), user("high"), user("low"), end(),
                   seq("start", "g"), flow("g", "high", condition), flow("g", "low"), seq("high", "end"),
                   seq("low", "end"), lanes={"clerk": ["high", "low"]})


def test_gateway_condition_that_does_not_compile_is_refused_naming_the_gateway(rt):
    (problem,) = _refusal(rt, _gateway_model("amount >")).problems
    assert problem.element_id == "g"
    assert "condition to 'high'" in problem.message


def test_model_with_a_valid_gateway_condition_deploys_and_routes_by_it(rt):
    definitions.deploy(rt, _gateway_model("amount > 100"), "admin")
    iid = instances.start(rt, actor="u", key="p", variables={"amount": 150}).instance.id
    assert [t.element_id for t in instances.open_tasks(rt, iid)] == ["high"]


def test_timer_with_invalid_iso_literal_is_refused(rt):
    (problem,) = _refusal(rt, _with_timer("timeDuration", '"PTXH"')).problems
    assert problem.element_id == "tm"
    assert "'PTXH' is not a valid ISO 8601 value" in problem.message


def test_unquoted_timer_duration_is_flagged_with_the_quoted_fix(rt):
    (problem,) = _refusal(rt, _with_timer("timeDuration", "PT2H")).problems
    assert problem.element_id == "tm"
    assert "read as a variable name" in problem.message and '"PT2H"' in problem.message


def test_quoted_timer_duration_and_variable_deadline_deploy(rt):
    assert definitions.deploy(rt, _with_timer("timeDuration", '"PT2H"'), "admin")[1]
    assert definitions.deploy(rt, _with_timer("timeDate", "due_at").replace('id="p"', 'id="p2"'), "admin")[1]


def test_malformed_xml_is_refused(rt):
    (problem,) = _refusal(rt, two_step()[:-40]).problems
    assert problem.element_id is None and "not well-formed XML" in problem.message


def test_file_without_an_executable_process_is_refused(rt):
    xml = process("p", start(), end(), seq("start", "end"), executable=False)
    (problem,) = _refusal(rt, xml).problems
    assert problem.element_id is None and "process" in problem.message


def test_every_problem_of_a_model_is_reported_at_once(rt):
    xml = process("p", start(), script("t", "x = __import__('os')"), service("s", "nope.missing"), end(),
                  seq("start", "t", "s", "end"))
    problems = _refusal(rt, xml).problems
    assert {(p.element_id, "refused" in p.message or "unknown" in p.message) for p in problems} == {
        ("t", True), ("s", True)}


def test_refused_deploy_stores_nothing(rt):
    _refusal(rt, _with_script("x = __import__('os')"))
    assert _stored(rt) == (0, 0)


def test_same_bytes_deploy_as_the_same_version(rt):
    first, created = definitions.deploy(rt, two_step(), "admin")
    again, created_again = definitions.deploy(rt, two_step().encode(), "someone-else")
    assert (created, created_again) == (True, False)
    assert (again.id, again.version, again.deployed_by) == (first.id, 1, "admin")
    assert _stored(rt) == (1, 1)  # one definition, one definition.deployed event


def test_changed_model_deploys_as_version_2(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    v2, created = definitions.deploy(rt, two_step(second="other"), "admin")
    assert created and (v1.key, v1.version) == (v2.key, 1) and v2.version == 2
    assert definitions.latest(rt, "two_step").id == v2.id


def _next_element(rt, instance_id: str) -> str:
    (first,) = instances.open_tasks(rt, instance_id)
    assert first.element_id == "first"
    tasks.complete(rt, first.id, "clerk")
    (nxt,) = instances.open_tasks(rt, instance_id)
    return nxt.element_id


def test_running_instance_stays_on_its_version_while_new_starts_use_the_latest(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    old = instances.start(rt, actor="u", key="two_step").instance
    v2, _ = definitions.deploy(rt, two_step(second="other"), "admin")
    new = instances.start(rt, actor="u", key="two_step").instance
    assert (old.definition_id, new.definition_id) == (v1.id, v2.id)
    assert _next_element(rt, old.id) == "second"
    assert _next_element(rt, new.id) == "other"


COLD_CACHE_DEADLOCK = ("engine/change.py:94 loads an uncached spec through SpecCache.get (engine/runtime.py:35), "
                       "which opens a second connection while change_instance holds SQLite's write lock "
                       "(BEGIN IMMEDIATE): the change blocks on itself and fails with 'database is locked'")


def test_pinned_version_is_reloaded_from_the_database_by_another_process(rt):
    definitions.deploy(rt, two_step(), "admin")
    old = instances.start(rt, actor="u", key="two_step").instance
    definitions.deploy(rt, two_step(second="other"), "admin")
    with other_process(rt) as fresh:  # empty spec cache, as after a restart
        assert _next_element(fresh, old.id) == "second"


def test_start_by_definition_id_runs_exactly_that_version(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    definitions.deploy(rt, two_step(second="other"), "admin")
    started = instances.start(rt, actor="u", definition_id=v1.id).instance
    assert started.definition_id == v1.id and _next_element(rt, started.id) == "second"


def test_list_definitions_latest_only_gives_the_newest_version_per_key(rt, reference_xml):
    definitions.deploy(rt, two_step(), "admin")
    definitions.deploy(rt, two_step(second="other"), "admin")
    definitions.deploy(rt, reference_xml, "admin")
    everything = definitions.list_definitions(rt)
    assert [(d.key, d.version) for d in everything] == [("reference_loop", 1), ("two_step", 1), ("two_step", 2)]
    latest = definitions.list_definitions(rt, latest_only=True)
    assert sorted((d.key, d.version) for d in latest) == [("reference_loop", 1), ("two_step", 2)]
    assert [d.version for d in definitions.list_definitions(rt, key="two_step", latest_only=True)] == [2]


def test_concurrent_deploys_get_distinct_versions_and_identical_bytes_one_version(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    models = [two_step(), two_step(), two_step(second="b"), two_step(second="c")]
    results = run_together([(lambda x=x: definitions.deploy(rt, x, "admin")) for x in models])
    assert all(kind == "ok" for kind, _ in results), results
    created = [(d.version, c) for _, (d, c) in results]
    assert sorted(v for v, c in created if c) == [1, 2, 3]
    assert results[0][1][0].id == results[1][1][0].id
    assert [d.version for d in definitions.list_definitions(rt, key="two_step")] == [1, 2, 3]


# -- lifecycle: which version new cases start on, and whether a version takes new cases ---------------

def test_redeploying_an_older_versions_bytes_answers_it_but_does_not_roll_back(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    v2, _ = definitions.deploy(rt, two_step(second="other"), "admin")
    again, created = definitions.deploy(rt, two_step(), "system:bundled")  # as every start redeploys bpmn/
    assert (created, again.id, again.is_latest) == (False, v1.id, False)
    assert definitions.latest(rt, "two_step").id == v2.id


def test_make_latest_rolls_new_starts_back_and_running_instances_stay_pinned(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    definitions.deploy(rt, two_step(second="other"), "admin")
    on_v2 = instances.start(rt, actor="u", key="two_step").instance
    made = definitions.make_latest(rt, v1.id, "ann", "v2 routes to the wrong task")
    assert made.is_latest and definitions.latest(rt, "two_step").id == v1.id
    assert [d.version for d in definitions.list_definitions(rt, latest_only=True)] == [1]
    rolled_back = instances.start(rt, actor="u", key="two_step").instance
    assert rolled_back.definition_id == v1.id and _next_element(rt, rolled_back.id) == "second"
    assert _next_element(rt, on_v2.id) == "other"
    v3, _ = definitions.deploy(rt, two_step(second="third"), "admin")  # a new version is the latest again
    assert definitions.latest(rt, "two_step").id == v3.id


def test_the_database_keeps_one_latest_version_per_key(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    definitions.deploy(rt, two_step(second="other"), "admin")
    with pytest.raises(IntegrityError), rt.db.transaction() as s:
        s.get(ProcessDefinition, v1.id).is_latest = True


def test_suspended_version_refuses_starts_by_key_and_by_id_with_a_conflict(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    running = instances.start(rt, actor="u", key="two_step").instance
    assert definitions.suspend(rt, v1.id, "ann", "roster rebuild").suspended
    for how in ({"key": "two_step"}, {"definition_id": v1.id}):
        with pytest.raises(Conflict, match="version 1 of 'two_step' is suspended"):
            instances.start(rt, actor="u", **how)
    assert _next_element(rt, running.id) == "second"  # running ones go on
    with pytest.raises(Conflict, match="activate it"):
        definitions.make_latest(rt, v1.id, "ann", "why not")
    definitions.activate(rt, v1.id, "ann", "roster ready")
    assert instances.start(rt, actor="u", key="two_step").instance.definition_id == v1.id


def test_lifecycle_of_an_unknown_version_is_not_found(rt):
    for action in (definitions.make_latest, definitions.suspend, definitions.activate):
        with pytest.raises(NotFound, match="4711"):
            action(rt, 4711, "ann", "typo")


# -- a model that fails at run time: the step by name, the problem in words ------------------------------

def _named_script(code: str) -> str:
    return (f'<bpmn:scriptTask id="dispatch" name="派遣 Dispatch"><bpmn:script>{code}</bpmn:script>'
            "</bpmn:scriptTask>")


@pytest.mark.parametrize(("code", "words"), [
    ("who = inspectr", "the model refers to 'inspectr', which this case does not have (did you mean 'inspector'?)"),
    ("x = 1 / 0", "the model divides by zero"),
    ("x = {}['grid']", "the model looks up 'grid', which is not there"),
    ("x = inspector.upper().nope", "the model asks a value for 'nope', which it does not have"),
    ("x = inspector + 1", "the model combines values that do not go together"),
])
def test_run_time_model_error_names_the_step_and_says_what_is_wrong(rt, code, words):
    definition, _ = definitions.deploy(rt, process("p", start(), _named_script(code), end(),
                                                   seq("start", "dispatch", "end")), "admin")
    with pytest.raises(ProcessError) as info:
        instances.start(rt, actor="u", key="p", variables={"inspector": "insp-7"})
    assert info.value.message.startswith(f'step "派遣 Dispatch" (dispatch) failed: {words}')
    assert "Error" not in info.value.message and "Spiff" not in info.value.message
    assert info.value.details == {"element": "dispatch", "elementName": "派遣 Dispatch",
                                  "definitionId": definition.id, "key": "p", "version": 1}
    assert _stored(rt) == (1, 1)  # nothing started, nothing audited but the deploy


def test_failing_condition_of_an_unnamed_gateway_names_its_id(rt):
    definitions.deploy(rt, process("p", start(), gateway("g", default="f_g_b"), end("a"), end("b"),
                                   seq("start", "g"), flow("g", "a", "level > limit"), flow("g", "b")), "admin")
    with pytest.raises(ProcessError, match=r'^step "g" failed: the model refers to \'limit\'') as info:
        instances.start(rt, actor="u", key="p", variables={"level": 3})
    assert info.value.details["elementName"] is None


def test_process_errors_are_counted_per_version(rt):
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    assert definitions.count_process_error(rt, v1.id) == ("two_step", 1)
    assert definitions.count_process_error(rt, v1.id) == ("two_step", 1)
    assert definitions.count_process_error(rt, 4711) is None
    assert definitions.process_error_counts(rt) == [("two_step", 1, 2)]
    assert definitions.get(rt, v1.id).last_process_error_at == rt.clock.now()


def test_concurrent_rollbacks_and_deploys_leave_one_latest_version(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    v1, _ = definitions.deploy(rt, two_step(), "admin")
    v2, _ = definitions.deploy(rt, two_step(second="other"), "admin")
    results = run_together([lambda: definitions.make_latest(rt, v1.id, "ann", "roll back"),
                            lambda: definitions.make_latest(rt, v2.id, "bob", "roll forward"),
                            lambda: definitions.deploy(rt, two_step(second="third"), "admin")])
    assert all(kind == "ok" for kind, _ in results), results
    assert len(definitions.list_definitions(rt, key="two_step", latest_only=True)) == 1
