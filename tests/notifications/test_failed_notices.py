"""A notice that cannot be sent cannot hide: nobody to reach and retries run out each raise one
incident, /health says degraded and names how many, /metrics counts them, and an operator's retry
gives fresh attempts (a notice that had no channel finds the person's new phone number)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from api import accounts, create_app
from api.settings import Settings
from engine import incidents
from engine.models import Incident, OutboxEntry
from engine.queues import run_job
from notifications.config import NotifySettings
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.queueing import notice_incident
from notifications.queueing import open_incidents as open_notice_incidents
from notifications.quiet_hours import QuietHours
from tests.api.conftest import PASSWORD
from tests.city import inside
from tests.notifications.fakes import FakeTwilio, FakeWeChatWork, wechat_error
from tests.notifications.test_pipeline import SID, TOKEN, contact, dispatched, notifications, providers, run_jobs
from workflows.notices import contacts


@pytest.fixture
def fakes():
    with FakeWeChatWork("corp", "secret", users={"wx-insp"}) as wecom, FakeTwilio(SID, TOKEN) as twilio:
        yield wecom, twilio


@pytest.fixture
def loop(city, db, fakes):
    rt, index = city
    install(rt, providers(*fakes), DeliveryPolicy(max_attempts=3, quiet=QuietHours(None)), contacts=contacts)
    unit, lon, lat = inside(db, index)
    return rt, index, unit, lon, lat


@pytest.fixture
def health(loop, db):
    rt = loop[0]
    app = create_app(Settings(database_url=db.url, secret_key="test", deploy_bundled=False,
                              notify=NotifySettings(quiet_hours="off")), runtime=rt)
    client = app.test_client()

    def read() -> tuple[dict, str]:
        return client.get("/health").get_json(), client.get("/metrics").get_data(as_text=True)
    return read


NOTICE_REASON = "1 notice could not be sent (open notification incidents: GET /api/v1/incident)"


def notices_fine(body: dict) -> bool:
    """/health has nothing to say about notices (it may about other things, e.g. timers nobody fires here)."""
    return body["notifications"]["incidents_open"] == 0 and not any("notice" in r for r in body.get("reasons", []))


def open_incidents(db) -> list[Incident]:
    with db.session() as s:
        return list(s.scalars(select(Incident).where(Incident.status == "open")))


def test_a_notice_to_someone_without_a_channel_is_one_incident_until_an_operator_retries(loop, db, fakes, health):
    rt, index, unit, lon, lat = loop
    _wecom, twilio = fakes
    assert health()[0]["status"] == "ok"  # nothing wrong yet
    case = dispatched(rt, index, lon, lat)  # the demo's inspectors have no phone and no WeChat id
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.recipient, n.channel, n.status) == (f"insp-{unit}", "none", "failed")
    (incident,) = open_incidents(db)
    assert (incident.kind, incident.operation, incident.instance_id) == ("job", "notify.deliver", case.instance_id)
    assert incident.message == f"dispatch notice to insp-{unit}: no channel to reach the recipient"
    body, metrics = health()
    assert body["status"] == "degraded" and body["reasons"] == [NOTICE_REASON]
    assert body["notifications"]["incidents_open"] == 1 and body["notifications"]["by_status"]["failed"] == 1
    assert "gridloop_notification_incidents_open 1" in metrics.splitlines()
    assert 'gridloop_notifications{status="failed"} 1' in metrics.splitlines()

    with db.session() as s:  # the plan job delivered again (at-least-once): no second notice, no second incident
        plan = s.scalars(select(OutboxEntry).where(OutboxEntry.job == "notice.plan")).one()
    run_job(rt, "notice.plan", plan.payload)
    assert len(notifications(db, case_id=case.id)) == 1 and len(open_incidents(db)) == 1

    contact(db, f"insp-{unit}", phone="+8613800000009")  # the operator adds the number and retries
    incidents.retry(rt, incident.id, "ops")
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.channel, n.address, n.status, n.attempts) == ("sms", "+8613800000009", "sent", 1)
    (sms,) = twilio.messages
    assert sms["To"] == "+8613800000009" and case.id in sms["Body"]
    assert open_incidents(db) == [] and notices_fine(health()[0])


def test_an_operator_finds_the_unreachable_on_the_staff_register_adds_the_number_and_the_retry_reaches_them(
        loop, db, fakes):
    """The same story through the API an operator has: the staff register, then the incident's retry."""
    rt, index, unit, lon, lat = loop
    _wecom, twilio = fakes
    client = create_app(Settings(database_url=db.url, secret_key="test", deploy_bundled=False,
                                 notify=NotifySettings(quiet_hours="off")), runtime=rt).test_client()
    accounts.create_user(rt.db, rt.clock.now(), username="ops", password=PASSWORD, roles=["admin"],
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": "ops", "password": PASSWORD}).get_json()
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    (incident,) = open_incidents(db)
    found = client.get("/api/v1/staff", headers=auth, query_string={
        "tenant": "320700", "unreachable": "true", "q": f"insp-{unit}"}).get_json()
    (person,) = found["items"]
    r = client.patch(f"/api/v1/staff/{person['id']}", headers=auth,
                     json={"phone": "138 0000 0009", "channels": ["sms"]})
    assert r.status_code == 200 and r.get_json()["phone"] == "+8613800000009"
    assert client.post(f"/api/v1/incident/{incident.id}/retry", headers=auth).status_code == 200
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.channel, n.address, n.status) == ("sms", "+8613800000009", "sent")
    (sms,) = twilio.messages
    assert sms["To"] == "+8613800000009" and case.id in sms["Body"] and open_incidents(db) == []


def test_a_retried_notice_whose_person_still_has_no_channel_is_an_incident_again(loop, db, health):
    rt, index, _unit, lon, lat = loop
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    (incident,) = open_incidents(db)
    incidents.retry(rt, incident.id, "ops")
    run_jobs(rt)
    (again,) = open_incidents(db)
    assert again.id != incident.id and "no channel to reach the recipient" in again.message
    (n,) = notifications(db, case_id=case.id)
    assert (n.channel, n.status) == ("none", "failed")
    assert NOTICE_REASON in health()[0]["reasons"]


def test_retries_run_out_into_one_incident_and_a_retry_gives_fresh_attempts(loop, db, clock, fakes, health):
    rt, index, unit, lon, lat = loop
    wecom, _twilio = fakes
    contact(db, f"insp-{unit}", wecom_id="wx-insp")
    wecom.fail_next(*[wechat_error(-1, "system busy")] * 3)
    case = dispatched(rt, index, lon, lat)
    for _ in range(3):
        run_jobs(rt)
        clock.advance(timedelta(hours=1))
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts) == ("failed", 3)
    (incident,) = open_incidents(db)
    assert incident.message.startswith(f"wechat_work to insp-{unit}") and "busy" in incident.message
    run_job(rt, "notify.deliver", {"notification_id": n.id, "attempt": 3})  # a late repeat of the last delivery
    assert len(open_incidents(db)) == 1 and wecom.messages == []
    body, metrics = health()
    assert body["status"] == "degraded" and NOTICE_REASON in body["reasons"]
    assert "gridloop_notification_incidents_open 1" in metrics.splitlines()

    incidents.retry(rt, incident.id, "ops")
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts) == ("sent", 1) and len(wecom.delivered_to("wx-insp")) == 1
    assert notices_fine(health()[0])


def test_a_notice_has_one_open_incident_and_lost_delivery_jobs_count_too(loop, db, clock):
    rt, index, _unit, lon, lat = loop
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    with db.transaction() as s:  # asked again while its incident is open: the same incident
        first = notice_incident(s, clock.now(), n, "again")
        assert notice_incident(s, clock.now(), n, "and again") is first and first.message != "again"
        s.add(Incident(kind="job_lost", operation="notify.deliver", message="never finished", attempts=5,
                       payload={"notification_id": "x", "attempt": 1}, status="open", created_at=clock.now()))
    with db.session() as s:
        assert open_notice_incidents(s) == 2
