"""A case is closed, with its assessment record, in the change that ends its process."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import instances, tasks, timers
from engine.errors import ProcessError
from tests.city import alarm, inside, login_for
from workflows.case_closing import CaseAssessment
from workflows.cases import Case, file_alarm


def do(rt, iid, element, actor="sup", **variables):
    (task,) = [t for t in instances.open_tasks(rt, iid) if t.element_id == element]
    tasks.complete(rt, task.id, actor, variables)


def case_and_record(db, case_id):
    with db.session() as s:
        return s.get(Case, case_id), s.get(CaseAssessment, case_id)


def filed(rt, index, db, clock, external_id="A-1"):
    unit, lon, lat = inside(db, index)
    return file_alarm(rt, index, alarm(clock, external_id, lon, lat), "system").case, unit


def test_a_closed_loop_closes_its_case_and_records_what_assessment_counts(city, db, clock):
    rt, index = city
    case, unit = filed(rt, index, db, clock)
    iid = case.instance_id
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    do(rt, iid, "sign_for", actor=f"insp-{unit}")
    clock.advance(timedelta(minutes=30))
    do(rt, iid, "handle", actor=f"insp-{unit}", handle_result="done", finding_kind="rectified")
    still_open, none = case_and_record(db, case.id)
    assert (still_open.status, still_open.outcome, none) == ("open", None, None)
    do(rt, iid, "verify", verified=False)  # rework, then pass
    do(rt, iid, "handle", actor=f"insp-{unit}", handle_result="done", finding_kind="rectified")
    clock.advance(timedelta(hours=1))
    do(rt, iid, "verify", verified=True)
    closed, record = case_and_record(db, case.id)
    assert (closed.status, closed.outcome, closed.closed_at) == ("closed", "closed", clock.now())
    assert (record.outcome, record.inspector, record.grid_code, record.category) == (
        "closed", f"insp-{unit}", unit, "air.exceedance")
    assert (record.signed_on_time, record.handled_on_time, record.verified_on_time, record.closed_on_time) == (
        True, True, True, True)
    assert (record.reworks, record.escalations, record.violation) == (1, 0, False)
    assert record.lead_hours == 1.5


def test_an_overdue_sign_for_is_recorded_as_late(city, db, clock):
    rt, index = city
    case, unit = filed(rt, index, db, clock)
    iid = case.instance_id
    do(rt, iid, "review", review_result="valid")
    do(rt, iid, "dispatch")
    clock.advance(timedelta(hours=1))  # the urgent category gives 0.5 working hours to sign for
    assert timers.fire_due(rt) == 1
    login_for(db, clock.now(), f"insp-{unit}", "inspector", unit)
    do(rt, iid, "escalate_sign", inspector=f"insp-{unit}")
    do(rt, iid, "sign_for", actor=f"insp-{unit}")
    do(rt, iid, "handle", actor=f"insp-{unit}", handle_result="done", finding_kind="nothing")
    do(rt, iid, "verify", verified=True)
    _, record = case_and_record(db, case.id)
    assert (record.signed_on_time, record.handled_on_time, record.closed_on_time) == (False, True, False)
    assert record.escalations == 1


@pytest.mark.parametrize("review, outcome", [({"review_result": "invalid", "invalid_reason": "误报"}, "invalid"),
                                             ({"review_result": "merge"}, "merged")])
def test_a_case_ended_at_review_is_closed_with_that_outcome(city, db, clock, review, outcome):
    rt, index = city
    case, _ = filed(rt, index, db, clock)
    if outcome == "merged":  # into another open case of the city
        _unit, lon, lat = inside(db, index)
        other = file_alarm(rt, index, alarm(clock, "A-0", lon, lat, source_ref="MN-002"), "system").case
        review = {**review, "merge_into": other.id}
    do(rt, case.instance_id, "review", **review)
    closed, record = case_and_record(db, case.id)
    assert (closed.status, closed.outcome, record.outcome) == ("closed", outcome, outcome)
    assert (record.signed_on_time, record.handled_on_time, record.closed_on_time) == (None, None, None)


def test_a_cancelled_case_is_closed_as_cancelled_and_a_new_alarm_opens_a_new_case(city, db, clock):
    rt, index = city
    case, _ = filed(rt, index, db, clock)
    instances.cancel(rt, case.instance_id, "admin", "filed by mistake")
    closed, record = case_and_record(db, case.id)
    assert (closed.status, closed.outcome, record.outcome) == ("closed", "cancelled", "cancelled")
    again, _ = filed(rt, index, db, clock, external_id="A-2")
    assert again.id != case.id and again.status == "open"


def test_when_closing_fails_the_process_does_not_end_either(city, db, clock):
    rt, index = city
    case, _ = filed(rt, index, db, clock)

    def refuse(_conn, _ended):
        raise ProcessError("the projection refused")

    rt.end_listeners.append(refuse)
    with pytest.raises(ProcessError):
        do(rt, case.instance_id, "review", review_result="invalid", invalid_reason="x")
    assert instances.get(rt, case.instance_id).status == "running"
    assert [t.element_id for t in instances.open_tasks(rt, case.instance_id)] == ["review"]
    with db.session() as s:
        assert s.scalar(select(Case.status).where(Case.id == case.id)) == "open"
        assert s.get(CaseAssessment, case.id) is None


def test_a_late_verification_is_recorded_and_the_case_not_closed_on_time(city, db, clock):
    rt, index = city
    case, unit = filed(rt, index, db, clock)
    iid = case.instance_id
    for element, actor, variables in (("review", "sup", {"review_result": "valid"}), ("dispatch", "sup", {}),
                                      ("sign_for", f"insp-{unit}", {}),
                                      ("handle", f"insp-{unit}", {"handle_result": "done", "finding_kind": "nothing"})):
        do(rt, iid, element, actor=actor, **variables)
    (verify,) = instances.open_tasks(rt, iid)
    assert verify.due_at == clock.now() + timedelta(hours=2)  # air.exceedance: 2 working hours to verify
    clock.advance(timedelta(hours=3))
    do(rt, iid, "verify", verified=True)
    _, record = case_and_record(db, case.id)
    assert (record.handled_on_time, record.verified_on_time, record.closed_on_time) == (True, False, False)
