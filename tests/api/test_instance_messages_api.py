"""Messages between instances and signals, driven through the REST API as a client would: deploy the
two pools of a collaboration, start them, work the tasks, and let the outbox deliver."""

from __future__ import annotations

from sqlalchemy import select

from api.settings import Settings
from api.wiring import make_runtime
from engine import outbox
from engine.models import Message
from engine.queues import ManualJobQueue
from tests.engine.collaboration import alarm, collaboration, guarded, listener
from workflows.tenants import tenant_prefix

GRID = "320706001000001"  # within the supervisor's scope 3207 (tests/api/conftest.py)


def _deploy(users, xml: str) -> None:
    r = users["admin"].post("/api/v1/process-definition", data=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()


def _start(caller, key: str, **body) -> dict:
    r = caller.post(f"/api/v1/process-definition/key/{key}/start", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _tasks(caller, instance_id: str) -> list[dict]:
    return caller.get(f"/api/v1/task?processInstanceId={instance_id}").get_json()["items"]


def _deliver(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def test_an_order_tells_a_warehouse_that_is_not_waiting_yet_over_http(rt, users):
    _deploy(users, collaboration("warehouse", prepare=True, role="supervisor"))
    _deploy(users, collaboration("order", throw="send_task"))
    sup = users["sup"]
    warehouse = _start(sup, "warehouse", scope=GRID, variables={"order_id": "O-7", "grid": GRID})
    order = _start(sup, "order", scope=GRID, variables={"order_id": "O-7", "qty": 12})
    assert order["status"] == "completed"
    assert _deliver(rt) == 1  # the warehouse still prepares: the message is kept for it
    (prepare,) = _tasks(sup, warehouse["id"])
    assert prepare["taskDefinitionKey"] == "prepare"
    r = sup.post(f"/api/v1/task/{prepare['id']}/complete", json={})
    assert r.status_code == 200, r.get_json()
    (check,) = _tasks(sup, warehouse["id"])  # it took the kept message as it began to wait
    assert check["taskDefinitionKey"] == "check"
    shipment = sup.get(f"/api/v1/process-instance/{warehouse['id']}/variables").get_json()["shipment"]
    assert shipment == {"order_id": "O-7", "qty": 12}
    assert _deliver(rt) == 0  # nothing is sent twice
    history = [e["action"] for e in users["admin"].get(f"/api/v1/process-instance/{warehouse['id']}/history")
               .get_json()]
    assert history.count("message.delivered") == 1
    sent = users["admin"].get(f"/api/v1/process-instance/{order['id']}/history").get_json()
    (event,) = [e for e in sent if e["action"] == "message.sent"]
    assert event["details"]["correlation"] == "O-7"
    assert users["admin"].get("/api/v1/audit/verify").get_json()["ok"] is True


def test_an_external_message_and_one_from_an_instance_share_the_correlation_index(rt, users):
    _deploy(users, collaboration("warehouse", role="supervisor"))
    _deploy(users, collaboration("order"))
    warehouse = _start(users["sup"], "warehouse", scope=GRID, variables={"order_id": "O-8", "grid": GRID})
    r = users["system"].post("/api/v1/message", json={"messageName": "shipped", "messageId": "ext-1",
                                                      "correlationValue": "O-8", "payload": {"qty": 1}})
    assert r.status_code == 200 and r.get_json()["processInstanceId"] == warehouse["id"], r.get_json()
    _start(users["sup"], "order", scope=GRID, variables={"order_id": "O-8", "qty": 2})
    _deliver(rt)  # nobody waits for O-8 any more: the instance's message is kept until its TTL
    assert users["sup"].get(f"/api/v1/process-instance/{warehouse['id']}/variables").get_json()["shipment"] == \
        {"qty": 1, "order_id": "O-8"}
    with rt.db.session() as s:
        assert sorted((m.sender.split(":")[0], m.status) for m in s.scalars(select(Message))) == [
            ("instance", "buffered"), ("system", "delivered")]


def test_a_signal_thrown_through_http_reaches_the_waiting_instances_of_the_city(rt, users):
    rt.tenant_of = tenant_prefix  # as the app's wiring sets it
    for xml in (alarm(), listener(), guarded()):
        _deploy(users, xml)
    admin = users["admin"]
    here = [_start(admin, "guarded", scope=GRID) for _ in range(3)]
    other_city = _start(admin, "guarded", scope="320506001000002")
    _start(admin, "alarm", scope="320703001000009", variables={"level": 3})
    _deliver(rt)
    for instance in here:
        assert [t["taskDefinitionKey"] for t in _tasks(admin, instance["id"])] == ["stopped"]
    assert [t["taskDefinitionKey"] for t in _tasks(admin, other_city["id"])] == ["work"]


def test_the_app_counts_cities_by_their_grid_codes():
    settings = Settings(database_url="sqlite://", secret_key="x", deploy_bundled=False)
    rt = make_runtime(settings)
    try:
        assert rt.tenant_of is tenant_prefix
    finally:
        rt.db.dispose()
