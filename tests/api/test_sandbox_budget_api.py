"""A script task that builds `[['a' * 10**6] * 1000] * 1000` (16 MB held, 10^12 bytes as JSON) is
answered like any model that fails at run time: 422 naming the step and the budget, nothing started."""

from __future__ import annotations

import resource
from html import escape

from sqlalchemy import select

from engine.models import ProcessInstance
from tests.engine.builders import end, process, seq, start, user

KEY = "data_bomb"


def _model(code: str) -> str:
    dispatch = (f'<bpmn:scriptTask id="dispatch" name="派遣 Dispatch"><bpmn:script>{escape(code, quote=False)}'
                "</bpmn:script></bpmn:scriptTask>")
    return process(KEY, start(), dispatch, user("handle", "现场处置 Handle", candidateScope="'3207'"), end(),
                   seq("start", "dispatch", "handle", "end"), lanes={"supervisor": ["handle"]})


def _start(users):
    return users["sup"].post(f"/api/v1/process-definition/key/{KEY}/start", json={"scope": "3207"})


def test_a_data_bomb_is_a_422_naming_the_step_and_the_budget(rt, users):
    r = users["admin"].post("/api/v1/process-definition", data=_model("x = [['a' * 1000000] * 1000] * 1000"),
                            headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    r = _start(users)
    assert r.status_code == 422, r.get_json()
    message = r.get_json()["error"]["message"]
    assert message.startswith('step "派遣 Dispatch" (dispatch) failed: the model\'s script or condition was stopped: '
                              "the task data would take more than 16,000,000 bytes as JSON (the data budget"), message
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 - peak < 300  # MB; unbounded: killed
    with rt.db.session() as s:
        assert s.scalar(select(ProcessInstance.id)) is None


def test_the_json_helper_is_bounded_too(rt, users):
    code = "x = json_dumps([['a' * 1000000] * 1000] * 1000)"
    r = users["admin"].post("/api/v1/process-definition", data=_model(code),
                            headers={"Content-Type": "application/xml"})
    assert r.status_code == 201, r.get_json()
    r = _start(users)
    assert r.status_code == 422, r.get_json()
    assert "json_dumps() would build more than 1,000,000 characters of JSON" in r.get_json()["error"]["message"]
