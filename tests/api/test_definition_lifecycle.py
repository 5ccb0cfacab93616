"""A model lifecycle administrators can trust, over HTTP: a broken version is rolled back with
make-latest, a version is suspended and activated, each step audited with who and why; and a model
that fails at run time answers a supervisor in words (the step's name, what is wrong), never Python,
while the whole error goes to the log and a per-version counter in /metrics."""

from __future__ import annotations

import logging
import re
from html import escape

import pytest
from sqlalchemy import select

from engine import audit
from engine.models import AuditEvent, ProcessInstance
from tests.engine.builders import end, process, seq, start, user

KEY = "env_test"
GRID = "'3207'"  # the supervisor's scope: their tasks
INTERNALS = re.compile(r"NameError|ZeroDivisionError|Traceback|Exception|SpiffWorkflow|File \"")


def _script(id_: str, name: str, code: str) -> str:
    return (f'<bpmn:scriptTask id="{id_}" name="{name}"><bpmn:script>{escape(code, quote=False)}</bpmn:script>'
            "</bpmn:scriptTask>")


def _model(code: str, *, review_first: bool = False) -> str:
    """start → [review →] 派遣 Dispatch (a script) → handle → end; `code` is the dispatch script."""
    steps = ["start", "review", "dispatch", "handle", "end"] if review_first else ["start", "dispatch", "handle", "end"]
    elements = [start(), _script("dispatch", "派遣 Dispatch", code),
                user("handle", "现场处置 Handle", candidateScope=GRID), end()]
    if review_first:
        elements.append(user("review", "甄别 Review", candidateScope=GRID))
    return process(KEY, *elements, seq(*steps),
                   lanes={"supervisor": ["review", "handle"] if review_first else ["handle"]})


GOOD = _model('inspector = "insp-7"')
BROKEN = _model("inspector = inspectr")  # a typo: this case has no 'inspectr'


def _deploy(users, xml: str, status: int = 201) -> dict:
    r = users["admin"].post("/api/v1/process-definition", data=xml, headers={"Content-Type": "application/xml"})
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _start(users, **body):
    return users["sup"].post(f"/api/v1/process-definition/key/{KEY}/start", json={"scope": "3207", **body})


def _act(users, definition_id: int, action: str, who: str = "admin", reason: str | None = "v2 stalls at dispatch"):
    body = {} if reason is None else {"reason": reason}
    return users[who].post(f"/api/v1/process-definition/{definition_id}/{action}", json=body)


def _system_events(rt, action: str) -> list[AuditEvent]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.chain == audit.SYSTEM_CHAIN,
                                                       AuditEvent.action == action).order_by(AuditEvent.id)))


def _version_of(rt, instance_id: str) -> int:
    with rt.db.session() as s:
        row = s.get(ProcessInstance, instance_id)
    return row.definition_id


def _metric(client, key: str, version: int) -> int:
    text = client.get("/metrics").get_data(as_text=True)
    found = re.search(rf'^gridloop_process_errors_total{{key="{key}",version="{version}"}} (\d+)$', text, re.M)
    assert found, text
    return int(found.group(1))


def test_a_broken_start_answers_the_step_and_the_problem_in_words(rt, users, client, caplog):
    v1 = _deploy(users, GOOD)
    v2 = _deploy(users, BROKEN)
    assert (v1["latest"], v2["latest"], v2["version"]) == (True, True, 2)  # each the latest when deployed
    assert users["admin"].get(f"/api/v1/process-definition/{v1['id']}").get_json()["latest"] is False
    with caplog.at_level(logging.ERROR, logger="engine.change"):
        r = _start(users, businessKey="C-1")
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "process_error"
    assert '"派遣 Dispatch" (dispatch)' in error["message"]
    assert "the model refers to 'inspectr', which this case does not have" in error["message"]
    assert "tell an administrator" in error["message"]
    assert not INTERNALS.search(str(r.get_json())), r.get_json()
    assert error["details"] == {"element": "dispatch", "elementName": "派遣 Dispatch", "definitionId": v2["id"],
                                "key": KEY, "version": 2}
    # nothing was started; the administrator finds the whole error in the log and the count in /metrics
    with rt.db.session() as s:
        assert s.scalar(select(ProcessInstance.id)) is None
    (record,) = [r for r in caplog.records if r.name == "engine.change"]
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert (record.element, record.process_key, record.definition_version) == ("dispatch", KEY, 2)
    assert "NameError" in caplog.text  # the traceback is there, for whoever fixes the model
    assert (_metric(client, KEY, 2), _metric(client, KEY, 1)) == (1, 0)
    assert _start(users).status_code == 422
    assert _metric(client, KEY, 2) == 2
    shown = users["admin"].get(f"/api/v1/process-definition/{v2['id']}").get_json()
    assert shown["processErrors"] == 2 and shown["lastProcessErrorAt"] is not None


def test_a_broken_completion_leaves_the_task_open_and_says_why(rt, users):
    _deploy(users, _model("inspector = 1 / grid_size", review_first=True))
    r = _start(users, variables={"grid_size": 0})
    assert r.status_code == 201, r.get_json()
    iid = r.get_json()["id"]
    (review,) = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"]
    r = users["sup"].post(f"/api/v1/task/{review['id']}/complete", json={"variables": {}})
    assert r.status_code == 422, r.get_json()
    message = r.get_json()["error"]["message"]
    assert message.startswith('step "派遣 Dispatch" (dispatch) failed: the model divides by zero')
    assert not INTERNALS.search(str(r.get_json()))
    (still,) = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"]
    assert (still["id"], still["status"]) == (review["id"], "open")


def test_make_latest_rolls_back_a_broken_version(rt, users):
    v1 = _deploy(users, GOOD)
    v2 = _deploy(users, BROKEN)
    # the old bytes again: that version, unchanged, and a pointer to make-latest
    again = _deploy(users, GOOD, status=200)
    assert (again["created"], again["version"], again["latest"]) == (False, 1, False)
    assert f"/api/v1/process-definition/{v1['id']}/make-latest" in again["notice"]
    assert users["sup"].get(f"/api/v1/process-definition/key/{KEY}").get_json()["version"] == 2

    r = _act(users, v1["id"], "make-latest")
    assert r.status_code == 200 and r.get_json()["latest"] is True, r.get_json()
    assert users["leader"].get(f"/api/v1/process-definition/key/{KEY}").get_json()["version"] == 1
    listed = users["admin"].get(f"/api/v1/process-definition?key={KEY}&latest=true").get_json()
    assert [(d["version"], d["latest"]) for d in listed] == [(1, True)]
    everything = users["admin"].get(f"/api/v1/process-definition?key={KEY}").get_json()
    assert [(d["version"], d["latest"]) for d in everything] == [(1, True), (2, False)]
    r = _start(users, businessKey="C-2")
    assert r.status_code == 201, r.get_json()
    assert _version_of(rt, r.get_json()["id"]) == v1["id"]
    assert "notice" not in _deploy(users, GOOD, status=200)  # v1's bytes, now the latest

    (event,) = _system_events(rt, "definition.made_latest")
    assert event.actor == "admin"
    assert event.details == {"key": KEY, "version": 1, "definition_id": v1["id"], "reason": "v2 stalls at dispatch",
                             "previous_latest": 2}
    assert _act(users, v1["id"], "make-latest").status_code == 200  # already the latest: nothing recorded
    assert len(_system_events(rt, "definition.made_latest")) == 1
    # a fixed v3 is the latest again by deploying it
    v3 = _deploy(users, _model('inspector = "insp-8"'))
    assert users["sup"].get(f"/api/v1/process-definition/key/{KEY}").get_json()["id"] == v3["id"]
    assert users["admin"].get("/api/v1/audit/verify").get_json()["ok"] is True
    assert v2["id"] != v3["id"]


def test_suspended_version_takes_no_new_cases_but_running_ones_go_on(rt, users):
    v1 = _deploy(users, GOOD)
    running = _start(users).get_json()["id"]
    r = _act(users, v1["id"], "suspend", reason="inspector roster is being rebuilt")
    assert r.status_code == 200 and r.get_json()["suspended"] is True
    for attempt in (_start(users), users["sup"].post(f"/api/v1/process-definition/{v1['id']}/start", json={})):
        assert attempt.status_code == 409, attempt.get_json()
        message = attempt.get_json()["error"]["message"]
        assert message.startswith(f"version 1 of '{KEY}' is suspended") and "activate" in message
    (task,) = users["sup"].get(f"/api/v1/task?processInstanceId={running}").get_json()["items"]
    assert users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={}).status_code == 200
    assert users["sup"].get(f"/api/v1/process-instance/{running}").get_json()["status"] == "completed"
    # a suspended version cannot be made the latest (every start by key would be refused)
    _deploy(users, BROKEN)
    r = _act(users, v1["id"], "make-latest")
    assert r.status_code == 409 and "activate it" in r.get_json()["error"]["message"]

    assert _act(users, v1["id"], "activate", reason="roster ready").get_json()["suspended"] is False
    assert _act(users, v1["id"], "make-latest").status_code == 200
    assert _start(users).status_code == 201
    assert [(e.actor, e.details["reason"]) for e in _system_events(rt, "definition.suspended")] == [
        ("admin", "inspector roster is being rebuilt")]
    assert [(e.actor, e.details["reason"]) for e in _system_events(rt, "definition.activated")] == [
        ("admin", "roster ready")]
    assert _act(users, v1["id"], "activate").status_code == 200  # already active: nothing recorded
    assert len(_system_events(rt, "definition.activated")) == 1


@pytest.mark.parametrize("action", ["make-latest", "suspend", "activate"])
def test_lifecycle_actions_are_for_administrators_with_a_reason(rt, users, action):
    v1 = _deploy(users, GOOD)
    for who in ("sup", "insp", "leader", "system"):
        r = _act(users, v1["id"], action, who=who)
        assert r.status_code == 403, (who, r.get_json())
    r = _act(users, 987654, action)
    assert r.status_code == 404 and "987654" in r.get_json()["error"]["message"]
    r = _act(users, v1["id"], action, reason=None)
    assert r.status_code == 422 and "reason" in r.get_json()["error"]["fields"]
    r = _act(users, v1["id"], action, reason="")
    assert r.status_code == 422 and "reason" in r.get_json()["error"]["fields"]
    with rt.db.session() as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action.like("definition.%"),
                                                    AuditEvent.action != "definition.deployed")) is None
