from datetime import timedelta

from api import accounts
from engine import outbox
from engine.queues import ManualJobQueue


def deploy(users, xml):
    return users["admin"].post("/api/v1/process-definition", data=xml,
                               headers={"Content-Type": "application/xml"})


def test_full_reference_loop_over_http(rt, clock, users, reference_xml):
    r = deploy(users, reference_xml)
    assert r.status_code == 201, r.get_json()
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json={
        "businessKey": "C-9", "variables": {"case_id": "C-9", "value": 10, "grid": "320706001", "handle_due": due}})
    assert r.status_code == 201, r.get_json()
    iid = r.get_json()["id"]
    tasks = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in tasks] == ["review"]
    r = users["sup"].post(f"/api/v1/task/{tasks[0]['id']}/complete", json={"variables": {"approved": True}})
    assert r.status_code == 200, r.get_json()
    # the inspector of grid 320706001 sees the handle task; the other inspector does not
    mine = users["insp"].get("/api/v1/task").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in mine] == ["handle"]
    assert users["insp_other"].get("/api/v1/task").get_json()["items"] == []
    assert users["insp_other"].post(f"/api/v1/task/{mine[0]['id']}/complete", json={}).status_code == 404
    assert users["insp"].post(f"/api/v1/task/{mine[0]['id']}/claim").status_code == 200
    r = users["insp"].post(f"/api/v1/task/{mine[0]['id']}/complete", json={"variables": {"violation": True}})
    assert r.status_code == 200
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    r = users["system"].post("/api/v1/message", json={"messageName": "feedback", "messageId": "fb-1",
                                                      "correlationValue": "C-9", "payload": {"result": "ok"}})
    assert r.status_code == 200 and r.get_json()["messageId"] == "fb-1", r.get_json()
    # another system's message with the same id is its own message, not a repeat of ours
    other = accounts.create_api_key(rt.db, rt.clock.now(), name="another-system", roles=["system"])
    r = users["system"].client.post("/api/v1/message", headers={"X-API-Key": other}, json={
        "messageName": "feedback", "messageId": "fb-1", "correlationValue": "C-9", "payload": {}})
    assert r.status_code == 202 and r.get_json()["duplicate"] is False  # buffered: nobody waits for it now
    verify = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"][0]
    assert users["sup"].post(f"/api/v1/task/{verify['id']}/complete", json={}).status_code == 200
    assert users["leader"].get(f"/api/v1/process-instance/{iid}").get_json()["status"] == "completed"
    history = users["admin"].get(f"/api/v1/process-instance/{iid}/history").get_json()
    assert [e["action"] for e in history][-1] == "instance.completed"
    assert users["admin"].get("/api/v1/audit/verify").get_json()["ok"] is True


def test_openapi_lists_every_route(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/task/{task_id}/complete" in spec["paths"]
    assert spec["paths"]["/api/v1/process-definition"]["post"]["x-roles"] == ["admin"]
