"""The domain's contract with its bundled models over REST: an administrator's new version of
env_case that renames `handle`, drops the `defer` option of handle_result or removes the
review_overdue timer is refused with a 400 naming the element and who relies on it; nothing is
deployed. The bundled models themselves keep their contracts."""

import re
from pathlib import Path

import pytest

from workflows.contracts import CONTRACTS
from workflows.install import install
from workflows.working_time import CalendarService

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
ENV_CASE = (BPMN / "env_case.bpmn").read_text(encoding="utf-8")
XML = {"Content-Type": "application/xml"}


@pytest.fixture
def domain_app(rt, app):
    install(rt, calendar=CalendarService(rt.db).calendar)  # the app's runtime: what the domain registers
    return app


def _deploy(users, xml: str):
    return users["admin"].post("/api/v1/process-definition", data=xml.encode(), headers=XML)


def _versions(users) -> list[int]:
    listed = users["admin"].get("/api/v1/process-definition?key=env_case").get_json()
    return sorted(d["version"] for d in (listed["items"] if isinstance(listed, dict) else listed))


def _without_diagram(xml: str) -> str:
    return re.sub(r"\s*<bpmndi:BPMNDiagram\b.*</bpmndi:BPMNDiagram>", "", xml, flags=re.S)


def test_every_bundled_model_keeps_its_contract_and_deploys(domain_app, _decisions, rt, users):
    assert {c.key for c in CONTRACTS} == {p.stem for p in BPMN.glob("*.bpmn")}
    for path in sorted(BPMN.glob("*.bpmn")):
        model = rt.contracts.of(path.stem)
        assert model, path.stem
        r = users["admin"].post("/api/v1/process-definition", data=path.read_bytes(), headers=XML)
        assert r.status_code == 201, r.get_json()


@pytest.fixture
def _decisions(domain_app, users):
    """alarm_review's business rule task needs its table deployed first, as at every start."""
    r = users["admin"].post("/api/v1/decision-definition", data=(BPMN / "alarm_severity.dmn").read_bytes(),
                            headers=XML)
    assert r.status_code == 201, r.get_json()


def _renamed_handle() -> str:
    xml = _without_diagram(ENV_CASE)
    for pattern in (r'id="handle"', r'sourceRef="handle"', r'targetRef="handle"', r'attachedToRef="handle"',
                    r"<bpmn:flowNodeRef>handle</bpmn:flowNodeRef>"):
        xml = xml.replace(pattern, pattern.replace("handle", "on_site"))
    return xml


def _no_defer_option() -> str:
    xml = ENV_CASE.replace('<gridloop:option value="defer" label="申请缓办" labelEn="Ask to defer (缓办)"/>', "")
    return xml.replace("<bpmn:conditionExpression>handle_result == 'defer'</bpmn:conditionExpression>",
                       "<bpmn:conditionExpression>False</bpmn:conditionExpression>")


def _no_review_overdue() -> str:
    xml = _without_diagram(ENV_CASE)
    xml = re.sub(r'<bpmn:boundaryEvent id="review_overdue".*?</bpmn:boundaryEvent>', "", xml, flags=re.S)
    xml = re.sub(r'<bpmn:sequenceFlow id="f_review_overdue__notify_review_escalation"[^>]*/>', "", xml)
    xml = re.sub(r'<bpmn:serviceTask id="notify_review_escalation".*?</bpmn:serviceTask>', "", xml, flags=re.S)
    xml = re.sub(r'<bpmn:sequenceFlow id="f_notify_review_escalation__review_escalated"[^>]*/>', "", xml)
    return xml.replace('<bpmn:endEvent id="review_escalated" name="Escalated"/>', "")


@pytest.mark.parametrize(("edit", "element", "words"), [
    (_renamed_handle, "handle", "the process has no user task 'handle' any more: workflows/case_closing.py counts "
                                "it for assessment"),
    (_no_defer_option, "handle", "field 'handle_result' of the form of 'handle' no longer offers 'defer': "
                                 "workflows/deferrals.py (缓办 from the case) completes the handling task with it"),
    (_no_review_overdue, "review_overdue", "the process has no timer event 'review_overdue' any more: "
                                           "workflows/case_closing.py counts the escalations it fires"),
], ids=["handle renamed", "defer option dropped", "review_overdue removed"])
def test_a_new_env_case_breaking_the_contract_is_refused_with_the_reason(domain_app, users, edit, element, words):
    assert _deploy(users, ENV_CASE).status_code == 201
    edited = edit()
    assert edited != ENV_CASE
    r = _deploy(users, edited)
    assert r.status_code == 400, r.get_json()
    body = r.get_json()["error"]
    problems = body["details"]["problems"]
    assert any(p["element"] == element and p["problem"].startswith(words) for p in problems), problems
    # the contract's refusal alone: the edited model is otherwise a model the engine deploys
    assert all(re.search(r"any more: |must stay |no longer offers ", p["problem"]) for p in problems), problems
    assert _versions(users) == [1]  # nothing deployed

