"""Idempotency-Key: a retried write is answered with the first answer and acts once."""

from datetime import timedelta

from sqlalchemy import func, select

from api.idempotency import IdempotencyRecord, purge
from engine.models import AuditEvent


def start(users, clock, key=None, business_key="C-1"):
    due = (clock.now() + timedelta(hours=4)).isoformat()
    headers = {"Idempotency-Key": key} if key else {}
    return users["sup"].post("/api/v1/process-definition/key/reference_loop/start", headers=headers, json={
        "businessKey": business_key, "variables": {"case_id": business_key, "value": 1, "grid": "320706001",
                                                   "handle_due": due}})


def events(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent))


def deploy(users, reference_xml):
    users["admin"].post("/api/v1/process-definition", data=reference_xml, headers={"Content-Type": "application/xml"})


def test_a_retried_completion_is_replayed_and_acts_once(rt, clock, users, reference_xml):
    deploy(users, reference_xml)
    iid = start(users, clock).get_json()["id"]
    task = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"][0]
    url, headers = f"/api/v1/task/{task['id']}/complete", {"Idempotency-Key": "phone-1"}
    first = users["sup"].post(url, headers=headers, json={"variables": {"approved": True}})
    after_first = events(rt)
    again = users["sup"].post(url, headers=headers, json={"variables": {"approved": True}})
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert events(rt) == after_first
    # without the key the same request is a second completion, and that is refused
    assert users["sup"].post(url, json={"variables": {"approved": True}}).status_code == 409


def test_the_same_key_for_a_different_request_is_refused(users, clock, reference_xml):
    deploy(users, reference_xml)
    assert start(users, clock, key="k", business_key="C-1").status_code == 201
    r = start(users, clock, key="k", business_key="C-2")
    assert r.status_code == 422 and r.get_json()["error"]["code"] == "idempotency_key_reused"


def test_keys_are_per_caller(users, clock, reference_xml):
    deploy(users, reference_xml)
    assert start(users, clock, key="same", business_key="C-1").status_code == 201
    r = users["admin"].post("/api/v1/process-definition/key/reference_loop/start",
                            headers={"Idempotency-Key": "same"}, json={"businessKey": "C-9"})
    assert r.status_code in (201, 422) and "Idempotent-Replayed" not in r.headers


def test_a_request_still_in_progress_gets_409_and_a_crashed_one_is_taken_over(rt, clock, users, reference_xml):
    deploy(users, reference_xml)
    assert start(users, clock, key="k").status_code == 201
    with rt.db.transaction() as s:  # as if the first attempt were still running
        s.get(IdempotencyRecord, ("sup", "k")).state = "started"
    r = start(users, clock, key="k")
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "in_progress"
    with rt.db.transaction() as s:  # ... and as if it had died a while ago
        s.get(IdempotencyRecord, ("sup", "k")).created_at = clock.now() - timedelta(minutes=5)
    r = start(users, clock, key="k")
    assert r.status_code == 200 and r.get_json()["created"] is False  # acted again: the start is idempotent


def test_errors_are_replayed_too_and_old_keys_are_purged(rt, clock, users):
    r1 = start(users, clock, key="e")  # nothing deployed: 404
    r2 = start(users, clock, key="e")
    assert r1.status_code == r2.status_code == 404 and r2.headers["Idempotent-Replayed"] == "true"
    clock.advance(timedelta(hours=25))
    assert purge(rt) == 1
