"""A case's timeline told in words: each event says what it decided — the labelled values a task was
completed with (as the model's form labels them), the enforcement decision and fine, an urge's note."""

from tests.api.test_closed_loop_http import run_jobs, signed, to_enforcement, world

__all__ = ["world"]


def said(timeline, action, element=None):
    return [e["said"] for e in timeline if e["action"] == action and (element is None or e["element"] == element)]


def test_the_timeline_says_what_each_step_decided(world, clock):
    rt, client, _fake = world
    case, sup, _act = to_enforcement(rt, client, clock)
    run_jobs(rt)
    body = {"caseId": case["id"], "result": "penalized", "decision": "责令停产整治", "amount": 50000, "ticket": "ZF-1"}
    assert signed(client, body, "cb-t").status_code == 200
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    timeline = detail["timeline"]
    (review,) = said(timeline, "task.completed", "review")
    assert {"name": "review_result", "label": "甄别结论", "labelEn": "Review result", "value": "valid"}.items() \
        <= next(s for s in review if s["name"] == "review_result").items()
    assert next(s for s in review if s["name"] == "review_result")["valueLabel"]
    (handle,) = said(timeline, "task.completed", "handle")
    finding = {s["name"]: s for s in handle}
    assert finding["finding_kind"]["value"] == "violation" and finding["findings"]["value"]
    assert all(s.get("label") for s in handle)  # unlabelled bookkeeping (counters) is left out
    (feedback,) = said(timeline, "message.correlated")
    assert {s["name"]: s["value"] for s in feedback} == body
    assert said(timeline, "instance.started") == [[]]
    assert sup.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "今天内处理"}).status_code == 201
    timeline = sup.get(f"/api/v1/cases/{case['id']}").get_json()["timeline"]
    assert said(timeline, "case.urged") == [[{"name": "note", "value": "今天内处理"}]]
