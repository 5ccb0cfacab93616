"""A model with a task outside every lane deploys over HTTP with a warning; its task goes to the
person who started the instance, and to nobody else."""

from __future__ import annotations

LANELESS = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="note_check" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="check"/>
    <bpmn:userTask id="check" name="Check the note"/><bpmn:sequenceFlow id="b" sourceRef="check" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_laneless_task_deploys_with_a_warning_and_goes_to_the_starter(users):
    r = users["admin"].post("/api/v1/process-definition", data=LANELESS, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()
    (warning,) = r.get_json()["warnings"]
    assert warning["element"] == "check" and "not in a lane" in warning["problem"]
    r = users["sup"].post("/api/v1/process-definition/key/note_check/start", json={})
    assert r.status_code == 201, r.get_json()
    iid = r.get_json()["id"]
    (task,) = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"]
    assert task["taskDefinitionKey"] == "check" and task["assignee"] == "sup"
    assert users["insp"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"] == []
    assert users["insp"].post(f"/api/v1/task/{task['id']}/complete", json={}).status_code == 404
    assert users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={}).status_code == 200
    assert users["sup"].get(f"/api/v1/process-instance/{iid}").get_json()["status"] == "completed"
