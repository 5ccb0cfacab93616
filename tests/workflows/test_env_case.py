"""The env_case process through the engine: the loop of DESIGN.md §5 with working-time SLAs."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine import definitions, instances, messages, outbox, tasks, timers
from engine.queues import ManualJobQueue
from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient
from tests.city import login_for
from tests.integrations.fake_enforcement import FakeEnforcement
from workflows.cases import Case
from workflows.demo_seed import seed_demo
from workflows.install import install
from workflows.working_time import CalendarService, seed_from_package

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "env_case.bpmn"
START = datetime(2026, 9, 29, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in China, two days before National Day
INSP1 = "insp-320706001000001"  # the demo city's inspector of the case's unit (routed)
INSP2 = "insp-320706001"  # the town's inspector, with a login: escalation may hand the case to them


@pytest.fixture
def enforcement():
    with FakeEnforcement("shared-secret") as fake:
        yield fake


@pytest.fixture
def case_rt(db, clock, enforcement) -> Runtime:
    clock.set(START)
    seed_from_package(db, clock.now(), years=[2026])
    seed_demo(db, START - timedelta(hours=1))  # grids and people the forms' references name
    login_for(db, START, INSP2, "inspector", "320706001")
    rt = Runtime(db=db, clock=clock)
    install(rt, calendar=CalendarService(db).calendar,
                        enforcement=EnforcementClient(enforcement.url, "shared-secret"))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    return rt


def case_row(db, case_id: str) -> None:
    """The case a process is started for (intake writes it in the same transaction)."""
    with db.transaction() as s:
        s.add(Case(id=case_id, tenant="320700", source="citizen", external_id=f"X-{case_id}",
                   category="air.exceedance", grid_code="320706001000001", route_reason="test", status="open",
                   first_seen=START, last_seen=START, created_at=START, details={}))


def file_case(rt, case_id="C-1"):
    case_row(rt.db, case_id)
    return instances.start(rt, actor="intake", key="env_case", business_key=case_id, variables={
        "case_id": case_id, "category": "air.exceedance", "grid": "320706001000001", "escalation_scope": "320706001",
        "inspector": INSP1, "urgent": True, "sign_for_hours": 2, "handle_hours": 8, "verify_hours": 2,
        "feedback_hours": 16,
        "extension_hours": 8, "reminder_ratio": 0.75, "transfers": 0, "escalations": 0,
        "extensions": 0, "returns": 0, "reworks": 0, "findings": "", "verify_note": ""}).instance.id


def do(rt, iid, element, actor=None, **variables):
    """Complete the open task `element` as `actor` (default: its assignee, else a supervisor)."""
    (task,) = [t for t in instances.open_tasks(rt, iid) if t.element_id == element]
    return tasks.complete(rt, task.id, actor or task.assignee or "sup", variables)


def open_elements(rt, iid):
    return sorted(t.element_id for t in instances.open_tasks(rt, iid))


def test_a_violation_goes_to_enforcement_and_closes_after_verification(case_rt, enforcement):
    rt = case_rt
    iid = file_case(rt)
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    (sign,) = instances.open_tasks(rt, iid)
    assert sign.element_id == "sign_for" and sign.due_at == START + timedelta(hours=2)
    do(rt, iid, "sign_for", actor=INSP1)
    do(rt, iid, "handle", actor=INSP1, handle_result="done", finding_kind="violation", findings="停产治污设施")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert instances.subscriptions(rt, iid)[0].message_name == "enforcement_feedback"
    assert enforcement.received == [{"case_id": "C-1", "push_id": "C-1-1", "category": "air.exceedance",
                                     "findings": "停产治污设施",
                                     "grid": "320706001000001"}]
    messages.correlate(rt, name="enforcement_feedback", message_id="zf-1", actor="enforcement",
                       correlation_value="C-1", payload={"result": "fined", "amount": 50000})
    do(rt, iid, "verify", verified=True)
    assert instances.get(rt, iid).status == "completed"
    assert instances.variables(rt, iid)["enforcement"]["result"] == "fined"


def test_a_violation_found_again_after_rework_is_a_second_enforcement_round(case_rt, enforcement):
    rt = case_rt
    iid = file_case(rt)
    for element, variables in (("review", {"review_result": "valid"}), ("dispatch", {}), ("sign_for", {})):
        do(rt, iid, element, **variables)
    for round_ in (1, 2):
        do(rt, iid, "handle", handle_result="done", finding_kind="violation", findings=f"第{round_}次")
        jobs = ManualJobQueue(rt)
        outbox.relay(rt, jobs)
        jobs.run_all()
        messages.correlate(rt, name="enforcement_feedback", message_id=f"zf-{round_}", actor="enforcement",
                           correlation_value="C-1", payload={"result": "rectified"})
        do(rt, iid, "verify", verified=round_ == 2)
    # each round its own Idempotency-Key: the enforcement system opens a second ticket, not a duplicate
    assert [h["Idempotency-Key"] for h in enforcement.headers] == ["C-1-1", "C-1-2"]
    assert len(set(enforcement.tickets.values())) == 2 and instances.get(rt, iid).status == "completed"


def test_failed_verification_sends_the_case_back_for_rework(case_rt):
    rt = case_rt
    iid = file_case(rt)
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    do(rt, iid, "sign_for")
    do(rt, iid, "handle", handle_result="done", finding_kind="rectified")
    do(rt, iid, "verify", verified=False)
    assert open_elements(rt, iid) == ["handle"]
    do(rt, iid, "handle", handle_result="done", finding_kind="rectified")
    do(rt, iid, "verify", verified=True)
    assert instances.get(rt, iid).status == "completed"
    assert instances.variables(rt, iid)["reworks"] == 1


def test_sign_for_reminds_then_escalates_to_the_upper_level_at_its_working_time_deadline(case_rt, clock):
    rt = case_rt
    iid = file_case(rt)
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    clock.set(START + timedelta(hours=1, minutes=30, seconds=1))  # 75 % of 2 working hours
    timers.fire_due(rt)
    assert open_elements(rt, iid) == ["sign_for"]
    clock.set(START + timedelta(hours=2))  # exactly the deadline: not yet
    assert timers.fire_due(rt) == 0
    clock.set(START + timedelta(hours=2, seconds=1))
    assert timers.fire_due(rt) == 1
    (escalation,) = instances.open_tasks(rt, iid)
    assert (escalation.element_id, escalation.candidate_scope) == ("escalate_sign", "320706001")
    tasks.complete(rt, escalation.id, "sup-320706001", {"inspector": INSP2})
    (sign,) = instances.open_tasks(rt, iid)
    # escalated at 11:00:01 China time: 1 h before lunch, 1 h after it (13:30–14:30:01)
    assert sign.element_id == "sign_for" and sign.due_at == START + timedelta(hours=5, minutes=30, seconds=1)
    assert instances.variables(rt, iid)["escalations"] == 1


def test_extension_and_return_need_a_supervisors_approval(case_rt):
    rt = case_rt
    iid = file_case(rt)
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    do(rt, iid, "sign_for")
    handle = instances.open_tasks(rt, iid)[0]
    do(rt, iid, "handle", handle_result="extension", extension_reason="需第三方检测")
    do(rt, iid, "approve_extension", extension_approved=True)
    extended = instances.open_tasks(rt, iid)[0]
    assert extended.element_id == "handle" and extended.due_at > handle.due_at
    do(rt, iid, "handle", handle_result="return", return_reason="不属本网格")
    do(rt, iid, "approve_return", return_approved=True)
    assert open_elements(rt, iid) == ["dispatch"]
    v = instances.variables(rt, iid)
    assert (v["extensions"], v["returns"]) == (1, 1)


@pytest.mark.parametrize("outcome,end", [("invalid", "closed_invalid"), ("merge", "closed_merged")])
def test_review_can_discard_or_merge(case_rt, db, outcome, end):
    iid = file_case(case_rt)
    other = "C-0"
    case_row(db, other)  # the case merged into: open, of the same city
    reason = {"invalid": {"invalid_reason": "误报"}, "merge": {"merge_into": other}}[outcome]
    do(case_rt, iid, "review", review_result=outcome, **reason)
    assert instances.get(case_rt, iid).status == "completed"


def test_the_routed_inspector_is_the_assignee_and_forms_set_only_their_outputs(case_rt):
    from engine.errors import InvalidInput, NotAllowed

    rt = case_rt
    iid = file_case(rt)
    with pytest.raises(InvalidInput):  # an inspector-side field in the supervisor's review form
        do(rt, iid, "review", review_result="valid", verified=True)
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    (sign,) = instances.open_tasks(rt, iid)
    assert sign.assignee == INSP1
    with pytest.raises(NotAllowed):
        tasks.complete(rt, sign.id, INSP2, {})
    do(rt, iid, "sign_for")
    with pytest.raises(InvalidInput):  # moving the case to another grid from the handling form
        do(rt, iid, "handle", handle_result="done", finding_kind="rectified", grid="310101001")
    assert open_elements(rt, iid) == ["handle"]
