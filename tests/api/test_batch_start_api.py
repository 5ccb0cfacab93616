"""POST /process-definition/key/{key}/start-batch: many instances in one transaction, all or none;
a refused item is named by its position in the body (instances.N...)."""

from __future__ import annotations

from datetime import timedelta

from engine import definitions
from engine.models import ProcessInstance
from tests.engine.builders import waits_until
from tests.engine.support import count

TIMER_XML = waits_until("due_at")
URL = "/api/v1/process-definition/key/due_at/start-batch"


def _item(rt, minutes: int, **over):
    return {"variables": {"due": (rt.clock.now() + timedelta(minutes=minutes)).isoformat()}, **over}


def test_a_batch_starts_every_item_in_order(rt, users):
    definitions.deploy(rt, TIMER_XML, "admin")
    r = users["sup"].post(URL, json={"instances": [_item(rt, 5, businessKey="k-1"), _item(rt, 7)]})
    assert r.status_code == 201, r.get_json()
    started = r.get_json()["instances"]
    assert [i["businessKey"] for i in started] == ["k-1", None]
    assert [i["status"] for i in started] == ["running", "running"]
    assert started[1]["nextWakeupAt"] > started[0]["nextWakeupAt"]
    assert {i["scope"] for i in started} == {"3207"}  # the starter's own grid, as a single start
    assert count(rt, ProcessInstance) == 2


def test_one_refused_item_refuses_the_batch_and_is_named_by_position(rt, users):
    definitions.deploy(rt, TIMER_XML, "admin")
    bad_name = users["sup"].post(URL, json={"instances": [_item(rt, 5), {"variables": {"_x": 1}}]})
    assert bad_name.status_code == 422
    assert set(bad_name.get_json()["error"]["fields"]["instances"]) == {"1"}
    bad_value = users["sup"].post(URL, json={"instances": [_item(rt, 5), _item(rt, 5), {"variables": {"due": "soon"}}]})
    assert bad_value.status_code == 422
    refused = bad_value.get_json()["error"]["fields"]["instances"]
    assert set(refused) == {"2"}
    assert "the timer was given 'soon', which is not a date and time" in refused["2"][0]
    assert count(rt, ProcessInstance) == 0


def test_the_body_and_the_caller_are_checked(rt, users):
    definitions.deploy(rt, TIMER_XML, "admin")
    assert users["sup"].post(URL, json={"instances": []}).status_code == 422
    assert users["sup"].post(URL, json={}).status_code == 422
    assert users["insp"].post(URL, json={"instances": [_item(rt, 5)]}).status_code == 403
    assert users["sup"].post("/api/v1/process-definition/key/nope/start-batch",
                             json={"instances": [_item(rt, 5)]}).status_code == 404
    assert count(rt, ProcessInstance) == 0
