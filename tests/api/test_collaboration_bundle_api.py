"""A one-file collaboration: two executable pools and the message flow between them, deployed as a
bundle of one file, run end to end over REST (an order instance sends to a warehouse instance)."""

from __future__ import annotations

import io

from engine import outbox
from engine.queues import ManualJobQueue
from tests.engine.collaboration import collaboration

GRID = "320706001000001"  # within the supervisor's scope 3207 (tests/api/conftest.py)


def _both_pools() -> str:
    xml = collaboration("warehouse", role="supervisor")
    assert xml.count('isExecutable="false"') == 1
    return xml.replace('isExecutable="false"', 'isExecutable="true"')


def _deliver(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def test_both_pools_of_one_file_deploy_as_one_bundle_and_talk_to_each_other(rt, users):
    admin, sup = users["admin"], users["sup"]
    r = admin.post("/api/v1/deployment", data={"file": [(io.BytesIO(_both_pools().encode()), "shipping.bpmn")]},
                   content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    (shipping,) = r.get_json()["files"]
    assert sorted(p["key"] for p in shipping["processes"]) == ["order", "warehouse"]
    warehouse = sup.post("/api/v1/process-definition/key/warehouse/start",
                         json={"scope": GRID, "variables": {"order_id": "O-1", "grid": GRID}}).get_json()
    order = sup.post("/api/v1/process-definition/key/order/start",
                     json={"scope": GRID, "variables": {"order_id": "O-1", "qty": 4}}).get_json()
    assert order["status"] == "completed"
    assert [t["taskDefinitionKey"] for t in sup.get(f"/api/v1/task?processInstanceId={warehouse['id']}")
            .get_json()["items"]] == []  # it waits for the shipment: nothing leaves before the outbox is relayed
    assert _deliver(rt) == 1
    (check,) = sup.get(f"/api/v1/task?processInstanceId={warehouse['id']}").get_json()["items"]
    assert check["taskDefinitionKey"] == "check"
    assert sup.get(f"/api/v1/process-instance/{warehouse['id']}/variables").get_json()["shipment"] == \
        {"order_id": "O-1", "qty": 4}
    r = sup.post(f"/api/v1/task/{check['id']}/complete", json={})
    assert r.status_code == 200, r.get_json()
    assert sup.get(f"/api/v1/process-instance/{warehouse['id']}").get_json()["status"] == "completed"


def test_the_one_file_endpoint_still_refuses_two_executable_pools_and_says_to_use_a_bundle(users):
    r = users["admin"].post("/api/v1/process-definition", data=_both_pools(),
                            headers={"Content-Type": "application/xml"})
    assert r.status_code == 400
    assert "exactly one process" in str(r.get_json()["error"])
