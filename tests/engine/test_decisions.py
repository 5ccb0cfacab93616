"""DMN decision tables: deployed and versioned per decision, evaluated by business rule tasks with the
newest version of their key when they run, every hit policy with its failures in words a modeller
understands, and every cell compiled and run by the sandbox. On PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import decisions, definitions, incidents, instances, tasks, timers
from engine.errors import ProcessError
from engine.models import AuditEvent, DecisionDefinition, ProcessInstance
from engine.parsing import ModelError
from tests.engine.builders import user
from tests.engine.dmn_models import deciding, dmn, table

SEVERITY = table("severity", ["value / limit"], ["level"], [
    ([">= 2"], ['"urgent"']),
    (["1.5 <= ? < 2"], ['"high"']),
    (["< 1.5"], ['"normal"']),
])


def _decide(rt, decision_xml: str, variables: dict, key: str = "t") -> dict:
    """Deploy the decision (once per content) and a process evaluating it; its variables at the end."""
    decisions.deploy(rt, dmn(decision_xml), "admin")
    definitions.deploy(rt, deciding(f"p_{key}", key), "admin")
    started = instances.start(rt, actor="u", key=f"p_{key}", variables=variables)
    assert started.instance.status == "completed"
    return instances.variables(rt, started.instance.id)


def _fails(rt, decision_xml: str, variables: dict, key: str = "t") -> str:
    decisions.deploy(rt, dmn(decision_xml), "admin")
    definitions.deploy(rt, deciding(f"p_{key}", key), "admin")
    with pytest.raises(ProcessError) as caught:
        instances.start(rt, actor="u", key=f"p_{key}", variables=variables)
    with rt.db.session() as s:
        assert s.query(ProcessInstance).count() == 0  # nothing half done
    return caught.value.message


# -- deploy and versions -------------------------------------------------------------------------

def test_each_decision_of_a_file_gets_its_key_and_version_and_the_same_bytes_keep_theirs(rt):
    other = table("other", ["x"], ["y"], [(["1"], ["2"])])
    first = decisions.deploy(rt, dmn(SEVERITY, other), "admin")
    assert [(d.key, d.version, d.hit_policy, created) for d, created in first] == [
        ("severity", 1, "UNIQUE", True), ("other", 1, "UNIQUE", True)]
    again = decisions.deploy(rt, dmn(SEVERITY, other), "admin")
    assert [(d.id, created) for d, created in again] == [(d.id, False) for d, _c in first]
    changed = table("severity", ["value / limit"], ["level"], [([">= 3"], ['"urgent"'])])
    (v2, created), = decisions.deploy(rt, dmn(changed), "admin")
    assert (v2.key, v2.version, created) == ("severity", 2, True)
    assert [(d.key, d.version) for d in decisions.list_definitions(rt, latest_only=True)] == [
        ("other", 1), ("severity", 2)]
    assert [d.version for d in decisions.list_definitions(rt, key="severity")] == [1, 2]
    assert "value / limit" in decisions.get(rt, v2.id).dmn_xml
    with rt.db.session() as s:
        deployed = s.scalars(select(AuditEvent).where(AuditEvent.action == "decision.deployed")).all()
    assert sorted((e.details["key"], e.details["version"]) for e in deployed) == [
        ("other", 1), ("severity", 1), ("severity", 2)]


@pytest.mark.parametrize(("decision", "expected"), [
    (table("t", ["x"], ["y"], [(["1"], ["2"])], hit_policy="RULE ORDER"), "hit policy 'RULE ORDER' is not supported"),
    (table("t", ["x"], ["y"], [(["1"], ["2"])], hit_policy="FIRST", aggregation="SUM"),
     "aggregation 'SUM' is not supported"),
    (table("t", ["x"], ["y"], [(["1"], ['"a"'])], hit_policy="PRIORITY"), "a PRIORITY table lists each output's"),
    (table("t", ["x"], ["y"], [(["1"], ['"c"'])], hit_policy="PRIORITY", output_values={"y": '"a","b"'}),
     "rule 1, output 'y': '\"c\"' is not one of the output's values"),
    (table("t", [""], ["y"], [(["1"], ["2"])]), "has no expression (the variable or expression it tests)"),
    (table("t", ["x"], ["1y"], [(["1"], ["2"])]), "needs a name that is a variable"),
    (table("t", ["x"], ["y", "y.z"], [(["1"], ["2", "3"])]), "'y' is a variable and 'y.z' a key inside it"),
    (table("t", ["x"], ["y"], [(["1", "2"], ["2"])]), "rule 1 has 2 input and 1 output cells"),
    (table("t", ["x"], ["y"], [([">>> 1"], ["2"])]), "rule 1, input 'x': '>>> 1' is neither a value"),
    (table("t", ["x"], ["y"], [(["__import__('os')"], ["2"])]), "rule 1, input 'x'"),
    (table("t", ["x"], ["y"], [(["1"], ["().__class__.__base__.__subclasses__()"])]), "rule 1, output 'y'"),
    (table("t", ["_secret"], ["y"], [(["1"], ["2"])]), "input '_secret'"),
])
def test_a_table_that_cannot_run_as_written_is_refused_naming_decision_rule_and_column(rt, decision, expected):
    with pytest.raises(ModelError) as caught:
        decisions.deploy(rt, dmn(decision), "admin")
    assert any(p.element_id == "t" and expected in p.message for p in caught.value.problems), caught.value.problems
    assert decisions.list_definitions(rt) == []


def test_rule_annotations_and_descriptions_need_no_id(rt):
    annotated = SEVERITY.replace('<rule id="rule_severity_1">',
                                 '<rule id="rule_severity_1"><description>twice</description>'
                                 '<annotationEntry><text>twice the limit</text></annotationEntry>')
    assert "annotationEntry" in annotated
    ((deployed, created),) = decisions.deploy(rt, dmn(annotated), "admin")
    assert created and deployed.key == "severity"


def test_a_file_that_is_not_dmn_or_defines_nothing_is_refused(rt):
    with pytest.raises(ModelError, match="not a DMN file"):
        decisions.deploy(rt, deciding("p", "t"), "admin")  # BPMN
    with pytest.raises(ModelError, match="defines no decision"):
        decisions.deploy(rt, dmn(), "admin")
    with pytest.raises(ModelError, match="not well-formed"):
        decisions.deploy(rt, "<definitions", "admin")
    with pytest.raises(ModelError, match="two decisions of the file have this id"):
        decisions.deploy(rt, dmn(SEVERITY, SEVERITY), "admin")


# -- business rule tasks -------------------------------------------------------------------------

def test_a_business_rule_task_sets_the_decisions_outputs(rt):
    assert _decide(rt, SEVERITY, {"value": 30, "limit": 10}, "severity")["level"] == "urgent"
    assert _decide(rt, SEVERITY, {"value": 16, "limit": 10}, "severity")["level"] == "high"
    assert _decide(rt, SEVERITY, {"value": 1, "limit": 10}, "severity")["level"] == "normal"


def test_a_conditional_input_expression_is_compared_as_a_whole(rt):
    # SpiffWorkflow writes `input + cell`: `x / y if y > 0 else 0.0` `< 1.5` would read `... else (0.0 < 1.5)`
    ratio = table("t", ["x / y if y > 0 else 0.0"], ["level"], [([">= 2"], ['"urgent"']), (["< 2"], ['"normal"'])])
    assert _decide(rt, ratio, {"x": 5, "y": 2})["level"] == "urgent"
    assert _decide(rt, ratio, {"x": 5, "y": 0})["level"] == "normal"


def test_dotted_outputs_set_keys_of_a_map_and_keep_its_other_keys(rt):
    decision = table("t", ["x"], ["severity.level", "severity.ratio"], [(["-"], ['"high"', "x / 2"])])
    assert _decide(rt, decision, {"x": 3, "severity": {"source": "station"}})["severity"] == {
        "source": "station", "level": "high", "ratio": 1.5}


def test_the_task_evaluates_the_newest_version_when_it_runs_not_when_the_instance_started(rt):
    decisions.deploy(rt, dmn(table("t", ["x"], ["y"], [(["-"], ['"v1"'])])), "admin")
    definitions.deploy(rt, deciding("p", "t", before=user("before")), "admin")
    iid = instances.start(rt, actor="u", key="p", variables={"x": 1}).instance.id
    decisions.deploy(rt, dmn(table("t", ["x"], ["y"], [(["-"], ['"v2"'])])), "admin")
    (task,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, task.id, "u")
    assert instances.variables(rt, iid)["y"] == "v2"


def test_a_process_naming_a_decision_that_is_not_deployed_is_refused_at_deploy(rt):
    with pytest.raises(ModelError) as caught:
        definitions.deploy(rt, deciding("p", "nowhere"), "admin")
    (problem,) = caught.value.problems
    assert problem.element_id == "decide" and "decision 'nowhere', which is not deployed" in problem.message
    assert definitions.list_definitions(rt) == []


def test_a_decision_setting_a_variable_the_task_does_not_declare_stops_the_task(rt):
    decisions.deploy(rt, dmn(table("t", ["x"], ["y", "z"], [(["-"], ["1", "2"])])), "admin")
    definitions.deploy(rt, deciding("p", "t", outputs="y"), "admin")
    with pytest.raises(ProcessError, match=r"sets z, which the task does not declare in its outputs \(y\)"):
        instances.start(rt, actor="u", key="p", variables={"x": 1})


# -- hit policies --------------------------------------------------------------------------------

def test_unique_gives_the_one_matching_rule_and_none_when_nothing_matches(rt):
    assert _decide(rt, SEVERITY, {"value": 2, "limit": 1}, "severity")["level"] == "urgent"
    no_match = table("t", ["x"], ["y"], [(["1"], ['"one"'])])
    assert _decide(rt, no_match, {"x": 5})["y"] is None


def test_unique_with_two_matching_rules_fails_in_words_and_saves_nothing(rt):
    overlapping = table("t", ["x"], ["y"], [([">= 1"], ['"a"']), (["< 0"], ['"b"']), ([">= 2"], ['"c"'])])
    message = _fails(rt, overlapping, {"x": 3})
    assert message == ("step \"Decide t\" (decide) failed: decision 't' (version 1, hit policy UNIQUE): rules 1 and 3 "
                       "all match for x = 3, but a UNIQUE table allows only one; make the rules exclusive, or use the "
                       "hit policy FIRST or PRIORITY; nothing was saved, tell an administrator")


def test_first_gives_the_first_matching_rule_in_table_order(rt):
    first = table("t", ["x"], ["y"], [(["< 0"], ['"neg"']), ([">= 1"], ['"a"']), ([">= 2"], ['"b"'])],
                  hit_policy="FIRST")
    assert _decide(rt, first, {"x": 3})["y"] == "a"


def test_priority_gives_the_matching_rule_whose_output_ranks_highest(rt):
    rules = [([">= 1"], ['"normal"']), ([">= 2"], ['"urgent"']), ([">= 1.5"], ['"high"'])]
    ranked = table("t", ["x"], ["level"], rules, hit_policy="PRIORITY",
                   output_values={"level": '"urgent","high","normal"'})
    assert _decide(rt, ranked, {"x": 1.6})["level"] == "high"
    assert _decide(rt, ranked, {"x": 9})["level"] == "urgent"


def test_priority_fails_in_words_when_a_computed_output_is_not_a_ranked_value(rt):
    computed = table("t", ["x"], ["level"], [(["-"], ["label"])], hit_policy="PRIORITY",
                     output_values={"level": '"urgent","normal"'})
    message = _fails(rt, computed, {"x": 1, "label": "medium"})
    assert "rule 1 gives \"medium\" for 'level', which is not one of the values a PRIORITY table ranks" in message


def test_any_gives_the_output_the_matching_rules_agree_on(rt):
    agreeing = table("t", ["x", "kind"], ["y"], [([">= 1", "-"], ['"yes"']), (["-", '"smoke"'], ['"yes"']),
                                                 (["< 0", "-"], ['"no"'])], hit_policy="ANY")
    assert _decide(rt, agreeing, {"x": 2, "kind": "smoke"})["y"] == "yes"


def test_any_with_conflicting_outputs_fails_in_words(rt):
    conflicting = table("t", ["x", "kind"], ["y"], [([">= 1", "-"], ['"yes"']), (["-", '"smoke"'], ['"no"'])],
                        hit_policy="ANY")
    message = _fails(rt, conflicting, {"x": 2, "kind": "smoke"})
    assert ("rules 1 and 2 both match for x = 2, kind = \"smoke\" but give different values for 'y' (\"yes\" and "
            "\"no\"); in an ANY table every matching rule must give the same output") in message


COLLECTED = [([">= 1"], ["10", '"a"']), ([">= 2"], ["5", '"b"']), (["< 0"], ["7", '"c"']), ([">= 3"], ["", '"d"'])]


def test_collect_gives_every_matching_rules_output_as_a_list(rt):
    collect = table("t", ["x"], ["points", "tag"], COLLECTED, hit_policy="COLLECT")
    assert _decide(rt, collect, {"x": 3}) | {"x": 3} == {"x": 3, "points": [10, 5, None], "tag": ["a", "b", "d"]}
    assert _decide(rt, collect, {"x": -5})["points"] == [7]
    assert _decide(rt, collect, {"x": 0.5})["tag"] == []


@pytest.mark.parametrize(("aggregation", "x", "expected"), [
    ("SUM", 3, 15), ("MIN", 3, 5), ("MAX", 3, 10), ("COUNT", 3, 2),
    ("SUM", 0.5, None), ("MIN", 0.5, None), ("COUNT", 0.5, 0),
])
def test_collect_aggregates_with_sum_min_max_count(rt, aggregation, x, expected):
    aggregated = table("t", ["x"], ["points"], [(ins, outs[:1]) for ins, outs in COLLECTED], hit_policy="COLLECT",
                       aggregation=aggregation)
    assert _decide(rt, aggregated, {"x": x})["points"] == expected


def test_collect_sum_of_something_that_is_not_a_number_fails_in_words(rt):
    text = table("t", ["x"], ["points"], [(["-"], ["1"]), (["-"], ['"many"'])], hit_policy="COLLECT",
                 aggregation="SUM")
    assert "SUM adds numbers, but a matching rule gives \"many\" for 'points'" in _fails(rt, text, {"x": 1})


# -- the sandbox ---------------------------------------------------------------------------------

def test_a_cell_naming_what_the_case_does_not_have_fails_in_words(rt):
    typo = table("t", ["x"], ["y"], [(["? > limt"], ['"over"'])])
    message = _fails(rt, typo, {"x": 1, "limit": 0})
    assert "rule 1, input 'x' ('? > limt') uses 'limt', which this case does not have" in message


def test_cells_run_in_the_sandbox_within_the_budget_of_a_script(rt):
    greedy = table("t", ["x"], ["y"], [(["-"], ["sum(range(10 ** 12))"])])
    message = _fails(rt, greedy, {"x": 1})
    assert "rule 1, output 'y' ('sum(range(10 ** 12))') was stopped" in message
    sneaky = table("u", ["x"], ["y"], [(["-"], ["getattr(x, '__class__')"])])
    assert "rule 1, output 'y'" in _fails(rt, sneaky, {"x": 1}, "u")


def test_a_decision_failing_after_a_timer_is_an_incident_in_words(rt, clock):
    wait = ('<bpmn:intermediateCatchEvent id="before"><bpmn:timerEventDefinition>'
            '<bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>')
    decisions.deploy(rt, dmn(table("t", ["x"], ["y"], [([">= 1"], ['"a"']), ([">= 2"], ['"b"'])])), "admin")
    definitions.deploy(rt, deciding("p", "t", before=wait), "admin")
    iid = instances.start(rt, actor="u", key="p", variables={"x": 5}).instance.id
    clock.advance(timedelta(hours=1, seconds=1))
    timers.fire_due(rt)
    (incident,) = incidents.query(rt)[0]
    assert incident.instance_id == iid
    assert "rules 1 and 2 all match for x = 5, but a UNIQUE table allows only one" in incident.message
    assert "Traceback" not in incident.message and "Exception" not in incident.message


def test_a_decision_is_read_again_from_the_database_after_a_restart(rt, db, clock):
    from engine.runtime import Runtime

    decisions.deploy(rt, dmn(SEVERITY), "admin")
    definitions.deploy(rt, deciding("p", "severity"), "admin")
    fresh = Runtime(db=db, clock=clock)  # an empty cache, as after a restart
    started = instances.start(fresh, actor="u", key="p", variables={"value": 3, "limit": 2})
    assert instances.variables(fresh, started.instance.id)["level"] == "high"
    with db.session() as s:
        assert s.scalar(select(DecisionDefinition.version)) == 1
