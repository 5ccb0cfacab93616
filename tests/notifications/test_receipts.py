"""The receipt use cases (what the receipt endpoints call once the credential is checked): a failed
delivery with no channel left is one incident however often the provider repeats it, and an
operator's retry sends it again."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import incidents
from engine.models import Incident
from notifications import receipts
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.models import Notification
from notifications.providers.aliyun_sms import DeliveryReport
from notifications.providers.twilio_sms import StatusReceipt, TwilioSms
from notifications.queueing import NoticeRequest, queue_notices
from notifications.quiet_hours import QuietHours
from tests.notifications.fakes import FakeTwilio
from tests.notifications.test_pipeline import SID, TOKEN, run_jobs

QUIET_OFF = QuietHours(None)


@pytest.fixture
def sent_by_sms(rt):
    """A notice to one phone number, sent through Twilio (no other channel to fall back to)."""
    with FakeTwilio(SID, TOKEN) as twilio:
        install(rt, {"sms": TwilioSms(SID, TOKEN, from_number="+15005550006", base_url=twilio.url)},
                DeliveryPolicy(quiet=QUIET_OFF))
        with rt.db.transaction() as s:
            (nid,) = queue_notices(s, rt.clock.now(), [NoticeRequest(
                key="k:insp", kind="dispatch", recipient="insp", channels=[("sms", "+8613800000001")],
                data={"case_no": "C-1"}, urgent=True)], QUIET_OFF)
        run_jobs(rt)
        yield nid, twilio


def notification(rt, nid: str) -> Notification:
    with rt.db.session() as s:
        return s.get(Notification, nid)


def open_incidents(rt) -> list[Incident]:
    with rt.db.session() as s:
        return list(s.scalars(select(Incident).where(Incident.status == "open")))


def test_an_undelivered_sms_is_one_incident_however_often_twilio_says_so(rt, sent_by_sms):
    nid, twilio = sent_by_sms
    sid = notification(rt, nid).provider_message_id
    assert notification(rt, nid).status == "sent" and sid
    assert receipts.twilio_status(rt, StatusReceipt(sid, "undelivered", 30003, nid), QUIET_OFF) is True
    for status in ("undelivered", "failed"):  # Twilio repeats itself; a later word for the same outcome
        assert receipts.twilio_status(rt, StatusReceipt(sid, status, 30003, None), QUIET_OFF) is False
    n = notification(rt, nid)
    assert n.status == "failed" and "30003" in n.last_error
    (incident,) = open_incidents(rt)
    assert incident.payload["payload"] == {"notification_id": nid} and "refused" in incident.message
    incidents.retry(rt, incident.id, "ops")
    run_jobs(rt)
    assert (notification(rt, nid).status, notification(rt, nid).attempts) == ("sent", 1) and len(twilio.messages) == 2
    assert open_incidents(rt) == []


def test_receipts_for_no_notice_of_ours_or_an_unknown_status_change_nothing(rt, sent_by_sms, caplog):
    nid, _twilio = sent_by_sms
    sid = notification(rt, nid).provider_message_id
    assert receipts.twilio_status(rt, StatusReceipt(sid, "teleported", None, nid), QUIET_OFF) is False
    assert receipts.twilio_status(rt, StatusReceipt("SMnobody", "failed", 30003, None), QUIET_OFF) is False
    assert receipts.aliyun_report(rt, [DeliveryReport("999^0", nid, "+8613800000001", False, "MK:0001", "空号",
                                                      None)], QUIET_OFF) == 0  # our id, but not an Aliyun SMS
    assert notification(rt, nid).status == "sent" and open_incidents(rt) == []
    assert "status we do not know" in caplog.text and "no notification of ours" in caplog.text
