"""Decision tables over HTTP, end to end: an administrator deploys a .dmn file, then a BPMN model whose
business rule task uses it; a supervisor starts a case and sees the decision's output in its
variables. Roles, bad files and a failing table answer as the API's other errors do."""

from __future__ import annotations

import io

from tests.engine.builders import end, process, seq, start, user
from tests.engine.dmn_models import dmn, rule_task, table

SEVERITY = dmn(table("alarm_level", ["value / limit"], ["severity.level", "severity.ratio"], [
    ([">= 2"], ['"urgent"', "round(value / limit, 3)"]),
    (["1.5 <= ? < 2"], ['"high"', "round(value / limit, 3)"]),
    (["< 1.5"], ['"normal"', "round(value / limit, 3)"]),
]))
XML = {"Content-Type": "application/xml"}


def _model(key: str = "graded", decision: str = "alarm_level") -> str:
    return process(key, start(), rule_task("classify", decision, outputs="severity"),
                   user("review", candidateScope="'3207'"), end(), seq("start", "classify", "review", "end"),
                   lanes={"supervisor": ["review"]})


def test_deploy_a_decision_then_a_model_using_it_and_see_its_output_in_a_case(users):
    admin, sup = users["admin"], users["sup"]
    r = admin.post("/api/v1/decision-definition", data=SEVERITY, headers=XML)
    assert r.status_code == 201, r.get_json()
    (deployed,) = r.get_json()["decisions"]
    assert (deployed["key"], deployed["version"], deployed["hitPolicy"], deployed["created"]) == (
        "alarm_level", 1, "UNIQUE", True)
    again = admin.post("/api/v1/decision-definition", data={"file": (io.BytesIO(SEVERITY.encode()), "s.dmn")},
                       content_type="multipart/form-data")
    assert again.status_code == 200 and again.get_json()["decisions"][0]["id"] == deployed["id"]
    assert admin.post("/api/v1/process-definition", data=_model(), headers=XML).status_code == 201

    started = sup.post("/api/v1/process-definition/key/graded/start",
                       json={"scope": "3207", "variables": {"value": 42.0, "limit": 20}})
    assert started.status_code == 201, started.get_json()
    variables = sup.get(f"/api/v1/process-instance/{started.get_json()['id']}/variables").get_json()
    assert variables["severity"] == {"level": "urgent", "ratio": 2.1}

    listed = sup.get("/api/v1/decision-definition?key=alarm_level").get_json()
    assert [(d["key"], d["version"]) for d in listed] == [("alarm_level", 1)]
    one = users["leader"].get(f"/api/v1/decision-definition/{deployed['id']}").get_json()
    assert one["dmnXml"] == SEVERITY and one["deployedBy"] == "admin"


def test_only_an_administrator_deploys_and_inspectors_do_not_read_decisions(users):
    assert users["sup"].post("/api/v1/decision-definition", data=SEVERITY, headers=XML).status_code == 403
    assert users["anonymous"].post("/api/v1/decision-definition", data=SEVERITY, headers=XML).status_code == 401
    assert users["insp"].get("/api/v1/decision-definition").status_code == 403
    assert users["admin"].get("/api/v1/decision-definition").get_json() == []


def test_a_bad_file_is_refused_with_its_problems_and_nothing_is_deployed(users):
    admin = users["admin"]
    bad = dmn(table("t", ["x"], ["y"], [(["__import__('os')"], ["1"])], hit_policy="OUTPUT ORDER"))
    r = admin.post("/api/v1/decision-definition", data=bad, headers=XML)
    assert r.status_code == 400
    problems = r.get_json()["error"]["details"]["problems"]
    assert {p["element"] for p in problems} == {"t"}
    assert any("OUTPUT ORDER" in p["problem"] for p in problems)
    assert admin.post("/api/v1/decision-definition", data=b"", headers=XML).status_code == 400
    assert admin.post("/api/v1/decision-definition", data=SEVERITY, headers={"Content-Type": "text/plain"}
                      ).status_code == 415
    assert admin.get("/api/v1/decision-definition").get_json() == []
    assert admin.get("/api/v1/decision-definition/99").status_code == 404


def test_a_model_whose_decision_is_not_deployed_is_refused_naming_the_task(users):
    r = users["admin"].post("/api/v1/process-definition", data=_model(decision="nowhere"), headers=XML)
    assert r.status_code == 400
    (problem,) = r.get_json()["error"]["details"]["problems"]
    assert problem["element"] == "classify" and "decision 'nowhere', which is not deployed" in problem["problem"]


def test_a_table_that_cannot_decide_answers_the_starter_in_words(users):
    admin = users["admin"]
    overlapping = dmn(table("alarm_level", ["value"], ["severity.level"], [([">= 1"], ['"a"']), ([">= 2"], ['"b"'])]))
    assert admin.post("/api/v1/decision-definition", data=overlapping, headers=XML).status_code == 201
    assert admin.post("/api/v1/process-definition", data=_model(), headers=XML).status_code == 201
    r = users["sup"].post("/api/v1/process-definition/key/graded/start",
                          json={"scope": "3207", "variables": {"value": 5, "limit": 1}})
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "process_error"
    assert "rules 1 and 2 all match for value = 5, but a UNIQUE table allows only one" in error["message"]
    assert "Traceback" not in error["message"]


def _bundle(caller, files: dict[str, str]):
    parts = [(io.BytesIO(text.encode()), name) for name, text in files.items()]
    return caller.post("/api/v1/deployment", data={"file": parts}, content_type="multipart/form-data")


def test_a_bundle_carries_a_decision_and_the_model_using_it_all_or_nothing(users):
    admin, sup = users["admin"], users["sup"]
    broken = dmn(table("alarm_level", ["value"], ["severity.level"], [(["__import__('os')"], ['"a"'])]))
    refused = _bundle(admin, {"graded.bpmn": _model(), "alarm_level.dmn": broken})
    assert refused.status_code == 400
    (problem,) = refused.get_json()["error"]["details"]["problems"]
    assert (problem["file"], problem["element"]) == ("alarm_level.dmn", "alarm_level")
    assert admin.get("/api/v1/decision-definition").get_json() == []
    assert admin.get("/api/v1/process-definition").get_json() == []

    r = _bundle(admin, {"graded.bpmn": _model(), "alarm_level.dmn": SEVERITY})
    assert r.status_code == 201, r.get_json()
    files = {f["name"]: f for f in r.get_json()["files"]}
    (decision,) = files["alarm_level.dmn"]["decisions"]
    assert (decision["key"], decision["version"], decision["created"]) == ("alarm_level", 1, True)
    assert admin.get(f"/api/v1/decision-definition/{decision['decisionId']}").get_json()["deploymentId"] == \
        r.get_json()["id"]
    started = sup.post("/api/v1/process-definition/key/graded/start",
                       json={"scope": "3207", "variables": {"value": 31, "limit": 20}})
    variables = sup.get(f"/api/v1/process-instance/{started.get_json()['id']}/variables").get_json()
    assert variables["severity"] == {"level": "high", "ratio": 1.55}
    again = _bundle(admin, {"graded.bpmn": _model(), "alarm_level.dmn": SEVERITY})
    assert again.status_code == 200
    assert {f["name"]: f for f in again.get_json()["files"]}["alarm_level.dmn"]["decisions"][0]["created"] is False


def test_a_bundle_whose_model_is_refused_stores_none_of_its_decisions(users):
    admin = users["admin"]
    r = _bundle(admin, {"graded.bpmn": _model(decision="alarm_levl"), "alarm_level.dmn": SEVERITY,
                        "twice.dmn": SEVERITY})
    assert r.status_code == 400
    problems = r.get_json()["error"]["details"]["problems"]
    assert [(p["file"], p["element"]) for p in problems] == [("twice.dmn", "alarm_level")]  # parse: each decision once
    r = _bundle(admin, {"graded.bpmn": _model(decision="alarm_levl"), "alarm_level.dmn": SEVERITY})
    assert r.status_code == 400
    (problem,) = r.get_json()["error"]["details"]["problems"]
    assert (problem["file"], problem["element"]) == ("graded.bpmn", "classify")
    assert "decision 'alarm_levl', which is not deployed" in problem["problem"]
    assert admin.get("/api/v1/decision-definition").get_json() == []
