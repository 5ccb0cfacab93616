"""Every error the API answers has one shape, {"error": {"code", "message", "fields"?, "details"?}},
with `fields` as marshmallow's {name: [messages]} (nested for nested objects and list items),
whoever found the problem. Open311 keeps its own documented [{code, description}] list."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest

from tests.api.images import noisy_jpeg

API = Path(__file__).resolve().parents[2] / "api"
KEYS = {"code", "message", "fields", "details"}


def check_messages(value, where: str) -> None:
    if isinstance(value, list):
        assert value and all(isinstance(m, str) and m for m in value), where
    else:
        assert isinstance(value, dict) and value, where
        for name, inner in value.items():
            check_messages(inner, f"{where}.{name}")


def one_shape(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    body = r.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= KEYS and {"code", "message"} <= set(error), error
    assert isinstance(error["code"], str) and re.fullmatch(r"[a-z_]+", error["code"]), error
    assert isinstance(error["message"], str) and error["message"], error
    if "fields" in error:
        check_messages(error["fields"], "fields")
    if "details" in error:
        assert isinstance(error["details"], dict), error
    return error


@pytest.fixture
def started(users, reference_xml, clock) -> dict:
    assert users["admin"].post("/api/v1/process-definition", data=reference_xml,
                               headers={"Content-Type": "application/xml"}).status_code == 201
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start",
                          json={"variables": {"case_id": "C-1", "value": 1, "grid": "320706001", "handle_due": due}})
    return users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]


def test_a_sample_of_errors_all_have_the_one_shape(app, users, started, clock):
    sup, admin = users["sup"], users["admin"]
    task = f"/api/v1/task/{started['id']}"
    start = "/api/v1/process-definition/key/reference_loop/start"
    one_shape(sup.post(start, data="{not json", headers={"Content-Type": "application/json"}), 400)
    one_shape(admin.post("/api/v1/process-definition", data="<a/>", headers={"Content-Type": "application/xml"}), 400)
    one_shape(users["anonymous"].get("/api/v1/task"), 401)
    one_shape(users["insp"].post("/api/v1/warning-policies", json={}), 403)
    one_shape(sup.get("/api/v1/no-such-thing"), 404)
    one_shape(admin.get(f"/api/v1/process-definition/{2**64}"), 404)
    one_shape(sup.get("/api/v1/process-instance/00000000-0000-0000-0000-000000000000"), 404)
    one_shape(sup.client.put("/api/v1/task", headers=sup.headers), 405)
    one_shape(sup.post(start, data="x=1", headers={"Content-Type": "application/x-www-form-urlencoded"}), 415)
    fields = one_shape(sup.post(start, json={"variables": "no", "extra": 1}), 422)["fields"]
    assert {"variables", "extra"} <= set(fields)
    one_shape(sup.post(f"{task}/complete", json={"variables": {"__class__": 1}}), 422)
    one_shape(users["system"].post("/api/v1/alarms", json={
        "tenant": "320700", "source": "monitoring", "externalId": "A", "category": "c",
        "occurredAt": "0001-01-01T00:00:00+14:00"}), 422)
    cut = sup.post(f"{task}/photos", content_type="multipart/form-data",
                   data={"file": (io.BytesIO(noisy_jpeg(32, 32)[:200]), "cut.jpg", "image/jpeg")})
    assert one_shape(cut, 422)["fields"]["file"]
    assert sup.post(f"{task}/complete", json={}).status_code == 200
    one_shape(sup.post(f"{task}/complete", json={}), 409)
    app.config["MAX_CONTENT_LENGTH"] = 1000
    assert "1000 bytes" in one_shape(admin.post("/api/v1/process-definition", data="<x>" + "a" * 5000 + "</x>",
                                                headers={"Content-Type": "application/xml"}), 413)["message"]


def test_a_refused_model_lists_its_problems_under_details(users):
    bad = ('<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">'
           '<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s"/>'
           '<bpmn:sequenceFlow id="a" sourceRef="s" targetRef="u"/>'
           '<bpmn:scriptTask id="u"><bpmn:script>import os</bpmn:script></bpmn:scriptTask></bpmn:process>'
           '</bpmn:definitions>')
    error = one_shape(users["admin"].post("/api/v1/process-definition", data=bad,
                                          headers={"Content-Type": "application/xml"}), 400)
    assert error["code"] == "invalid_model" and error["details"]["problems"][0]["element"] == "u"
    assert "import" in error["details"]["problems"][0]["problem"]


def test_the_enforcement_callback_answers_its_errors_in_the_one_shape(app, users):
    from api.views.enforcement import MAX_BODY
    from tests.api.test_closed_loop_http import signed

    settings = app.config["GRIDLOOP_SETTINGS"]
    app.config["GRIDLOOP_SETTINGS"] = dataclasses.replace(settings, enforcement_secret="shared")
    client = users["anonymous"].client
    one_shape(client.post("/api/v1/enforcement/callback", data="x" * (MAX_BODY + 1),
                          headers={"Content-Type": "application/json"}), 413)
    one_shape(client.post("/api/v1/enforcement/callback", json={}), 401)
    assert one_shape(signed(client, [1, 2], "cb-1", secret="shared"), 400)["message"] == \
        "the body must be a JSON object"


def test_too_many_failed_logins_is_429_in_the_one_shape(users):
    for _ in range(10):
        assert users["anonymous"].post("/api/v1/auth/token", json={"username": "sup", "password": "no"}) \
            .status_code == 401
    one_shape(users["anonymous"].post("/api/v1/auth/token", json={"username": "sup", "password": "no"}), 429)


def test_no_view_builds_an_error_body_by_hand():
    """error_body (api/errors.py) and the exceptions it handles are the one way to answer an error;
    Open311 renders its own documented list."""
    hand_built = [f"{path.relative_to(API)}:{n}" for path in API.rglob("*.py") if path.name != "errors.py"
                  for n, line in enumerate(path.read_text().splitlines(), 1)
                  if re.search(r"""["']error["']\s*:\s*\{""", line)]
    assert hand_built == []
