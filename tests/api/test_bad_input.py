"""Bad input gets a clear 4xx with the error shape, and changes nothing."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.models import AuditEvent, ProcessDefinition, ProcessInstance


def counts(rt):
    with rt.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (ProcessDefinition, ProcessInstance,
                                                                            AuditEvent))


def deploy(users, xml):
    return users["admin"].post("/api/v1/process-definition", data=xml, headers={"Content-Type": "application/xml"})


@pytest.fixture
def deployed(users, reference_xml):
    assert deploy(users, reference_xml).status_code == 201


def start_body(clock, **over):
    due = (clock.now() + timedelta(hours=4)).isoformat()
    return {"variables": {"case_id": "C-1", "value": 1, "grid": "320706001", "handle_due": due}, **over}


def error(r):
    body = r.get_json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


def test_malformed_json_is_400(rt, users, deployed):
    before = counts(rt)
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", data="{not json",
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and error(r)["code"] == "bad_request"
    assert counts(rt) == before


def test_json_array_body_is_400(users, deployed):
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json=[1, 2])
    assert r.status_code == 400


def test_wrong_content_type_is_415(users, deployed):
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", data="x=1",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_wrong_types_and_unknown_fields_are_422_with_field_messages(rt, clock, users, deployed):
    before = counts(rt)
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start",
                          json={"variables": "not an object", "businessKey": 7, "extra": 1})
    assert r.status_code == 422
    fields = error(r)["fields"]
    assert {"variables", "businessKey", "extra"} <= set(fields)
    assert counts(rt) == before


def test_variable_names_that_are_not_identifiers_are_422(rt, clock, users, deployed):
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json=start_body(clock))
    task = users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]
    before = counts(rt)
    r = users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={"variables": {"__class__": 1, "a-b": 2}})
    assert r.status_code == 422 and error(r)["code"] == "invalid_input"
    assert counts(rt) == before


def test_unknown_ids_are_404(users, deployed):
    assert users["sup"].get("/api/v1/process-instance/00000000-0000-0000-0000-000000000000").status_code == 404
    assert users["sup"].post("/api/v1/task/nope/complete", json={}).status_code == 404
    assert users["sup"].post("/api/v1/process-definition/key/no_such_process/start", json={}).status_code == 404
    assert users["admin"].post("/api/v1/incident/4242/retry").status_code == 404


def test_second_completion_is_409_and_changes_nothing(rt, clock, users, deployed):
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json=start_body(clock))
    task = users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]
    assert users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={}).status_code == 200
    before = counts(rt)
    r = users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={})
    assert r.status_code == 409 and error(r)["code"] == "conflict"
    assert counts(rt) == before


def test_bpmn_problems_are_400_naming_each_element(rt, users):
    bad = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="t">
  <bpmn:process id="bad" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="laneless"/>
    <bpmn:userTask id="laneless"/><bpmn:sequenceFlow id="b" sourceRef="laneless" targetRef="evil"/>
    <bpmn:scriptTask id="evil"><bpmn:script>__import__('os').system('id')</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="c" sourceRef="evil" targetRef="svc"/>
    <bpmn:serviceTask id="svc"><bpmn:extensionElements>
      <spiffworkflow:serviceTaskOperator id="no.such.op"/></bpmn:extensionElements></bpmn:serviceTask>
    <bpmn:sequenceFlow id="d" sourceRef="svc" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""
    before = counts(rt)
    r = deploy(users, bad)
    assert r.status_code == 400
    problems = {p["element"]: p["problem"] for p in error(r)["details"]["problems"]}
    assert set(problems) == {"evil", "svc"}  # a task outside every lane is a warning, not a refusal
    assert "no.such.op" in problems["svc"]
    assert counts(rt) == before


@pytest.mark.parametrize("body", ["", "<not-xml", "<a/>"])
def test_empty_or_broken_xml_is_400(users, body):
    r = deploy(users, body)
    assert r.status_code == 400, r.get_json()


def test_oversize_body_is_413(app, users):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    r = deploy(users, "<x>" + "a" * 5000 + "</x>")
    assert r.status_code == 413


def test_correlate_needs_exactly_one_target(users):
    r = users["system"].post("/api/v1/message", json={"messageName": "feedback", "messageId": "m"})
    assert r.status_code == 422 and "correlationValue" in error(r)["fields"]
    r = users["system"].post("/api/v1/message", json={"messageName": "feedback", "messageId": "m",
                                                      "correlationValue": "C", "processInstanceId": "x" * 36})
    assert r.status_code == 422


def test_query_parameters_are_validated(users):
    r = users["sup"].get("/api/v1/task?limit=100000&sort=sideways")
    assert r.status_code == 422 and {"limit", "sort"} <= set(error(r)["fields"])
    r = users["sup"].get("/api/v1/process-instance?startedAfter=yesterday")
    assert r.status_code == 422


@pytest.mark.parametrize("body,fragment", [
    ('{"variables": {"a": NaN}}', "not valid JSON"),
    ('{"variables": {"a": "x\\u0000y"}}', "NUL"),
    ('{"variables": ' + '{"a": ' * 40 + '1' + '}' * 40 + '}', "nested"),
    ('{"variables": ' + '[' * 5000 + ']' * 5000 + '}', "nested"),
])
def test_hostile_json_is_400_and_changes_nothing(rt, users, deployed, body, fragment):
    before = counts(rt)
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", data=body,
                          headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and fragment in error(r)["message"], r.get_json()
    assert counts(rt) == before


def test_nul_in_the_url_and_huge_offsets_are_4xx(users):
    assert users["sup"].get("/api/v1/task/abc%00def").status_code == 400
    assert users["sup"].get("/api/v1/process-instance?businessKey=%00").status_code == 400
    assert users["sup"].get("/api/v1/task?offset=99999999999999999999").status_code == 422


def test_a_model_in_another_encoding_deploys(users, reference_xml):
    gbk = reference_xml.replace('encoding="UTF-8"', 'encoding="GBK"').replace("Review the alarm", "甄别告警")
    r = users["admin"].post("/api/v1/process-definition", data=gbk.encode("gbk"),
                            headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()


def test_overlong_names_and_doctypes_are_refused_at_deploy(users, reference_xml):
    long_name = reference_xml.replace('name="Review the alarm"', f'name="{"长" * 401}"')
    r = deploy(users, long_name)
    assert r.status_code == 400 and "longer than 400" in str(error(r)["details"]["problems"])
    evil = reference_xml.replace('<?xml version="1.0" encoding="UTF-8"?>',
                                 '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>')
    assert deploy(users, evil).status_code == 400


def test_delegation_only_to_someone_who_could_do_the_task(rt, clock, users, deployed):
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json=start_body(clock))
    review = users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]
    url = f"/api/v1/task/{review['id']}/delegate"
    assert users["sup"].post(url, json={"userId": "nobody-at-all"}).status_code == 422
    assert users["sup"].post(url, json={"userId": "insp"}).status_code == 422  # an inspector, not a supervisor
    assert users["sup"].post(f"/api/v1/task/{review['id']}/claim", json={"userId": "insp"}).status_code == 422
