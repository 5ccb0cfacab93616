"""Notices end to end: the process asks (notify.send), the plan job finds the people, the delivery
job sends through the real provider clients to fake servers on loopback — with retries, fallback,
incidents, quiet hours and the per-member rate limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from engine import incidents, instances, outbox, tasks
from engine.models import Incident, OutboxEntry
from engine.queues import ManualJobQueue
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.models import Notification, NotificationEvent
from notifications.providers.twilio_sms import TwilioSms
from notifications.providers.wechat_work import WeChatWork
from notifications.quiet_hours import QuietHours
from notifications.ratelimit import RateLimiter
from tests.city import alarm, inside
from tests.notifications.fakes import FakeTwilio, FakeWeChatWork, wechat_error
from workflows.cases import file_alarm
from workflows.people import DutyShift, Person

SID, TOKEN = "AC" + "0" * 32, "twilio-token"


@pytest.fixture
def fakes():
    with FakeWeChatWork("corp", "secret", users={"wx-insp", "wx-sup"}) as wecom, FakeTwilio(SID, TOKEN) as twilio:
        yield wecom, twilio


def providers(wecom, twilio, limiter=None):
    return {"wechat_work": WeChatWork("corp", "secret", 1000002, base_url=wecom.url, rate_limiter=limiter),
            "sms": TwilioSms(SID, TOKEN, from_number="+15005550006", base_url=twilio.url)}


@pytest.fixture
def loop(city, db, clock, fakes):
    rt, index = city
    install(rt, providers(*fakes), DeliveryPolicy(max_attempts=3, quiet=QuietHours.parse("22:00-07:00")))
    unit, lon, lat = inside(db, index)
    contact(db, f"insp-{unit}", wecom_id="wx-insp", phone="+8613800000001")
    return rt, index, unit, lon, lat


def contact(db, username, **fields):
    with db.transaction() as s:
        s.execute(update(Person).where(Person.username == username).values(**fields))


def run_jobs(rt) -> int:
    """Relay and run until nothing is due (what the scheduler and the workers do)."""
    jobs, ran = ManualJobQueue(rt), 0
    while outbox.relay(rt, jobs):
        ran += jobs.run_all()
    return ran


def dispatched(rt, index, lon, lat, category="air.exceedance", external_id="A-1"):
    case = file_alarm(rt, index, alarm(rt.clock, external_id, lon, lat, category=category), "system").case
    for element, variables in (("review", {"review_result": "valid"}), ("dispatch", {})):
        (task,) = [t for t in instances.open_tasks(rt, case.instance_id) if t.element_id == element]
        tasks.complete(rt, task.id, "sup", variables)
    return case


def notifications(db, **where) -> list[Notification]:
    with db.session() as s:
        return list(s.scalars(select(Notification).filter_by(**where).order_by(Notification.created_at,
                                                                               Notification.id)))


def history(db, notification_id) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(NotificationEvent.status).where(NotificationEvent.notification_id ==
                                                                     notification_id).order_by(NotificationEvent.id)))


def test_dispatch_tells_the_inspector_once_even_when_the_jobs_run_twice(loop, db, fakes):
    rt, index, unit, lon, lat = loop
    wecom, _ = fakes
    case = dispatched(rt, index, lon, lat)
    with db.session() as s:
        (plan,) = s.scalars(select(OutboxEntry).where(OutboxEntry.job == "notice.plan")).all()
    assert plan.payload["params"]["kind"] == "dispatch" and plan.payload["params"]["to"] == f"insp-{unit}"
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.recipient, n.channel, n.address, n.status, n.kind) == (f"insp-{unit}", "wechat_work", "wx-insp",
                                                                     "sent", "dispatch")
    (message,) = wecom.delivered_to("wx-insp")
    assert case.id in message["text"]["content"]
    # the plan and the delivery delivered again (RQ's at-least-once): nothing new is sent
    from engine.queues import run_job

    run_job(rt, "notice.plan", plan.payload)
    run_job(rt, "notify.deliver", {"notification_id": n.id, "attempt": 1})
    assert len(notifications(db, case_id=case.id)) == 1 and len(wecom.delivered_to("wx-insp")) == 1
    assert history(db, n.id) == ["queued", "sending", "sent"]


def test_a_busy_provider_is_retried_with_backoff(loop, db, clock, fakes):
    rt, index, _unit, lon, lat = loop
    wecom, _ = fakes
    wecom.fail_next(wechat_error(-1, "system busy"))
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts) == ("queued", 1) and "busy" in n.last_error
    with db.session() as s:
        retry_at = s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.job == "notify.deliver",
                                                                   OutboxEntry.relayed_at.is_(None)))
    assert timedelta(seconds=30) <= retry_at - clock.now() <= timedelta(seconds=33)  # 30 s + up to 10 % jitter
    assert run_jobs(rt) == 0  # not before its time
    clock.set(retry_at)
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts, n.last_error) == ("sent", 2, None)
    assert history(db, n.id) == ["queued", "sending", "queued", "sending", "sent"]


def test_a_refused_wechat_message_falls_back_to_sms(loop, db, fakes):
    rt, index, unit, lon, lat = loop
    _wecom, twilio = fakes
    contact(db, f"insp-{unit}", wecom_id="wx-left-the-company")
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    first, second = sorted(notifications(db, case_id=case.id), key=lambda n: n.fallback_of is not None)
    assert (first.channel, first.status) == ("wechat_work", "failed") and "81013" in first.last_error
    assert (second.channel, second.address, second.status, second.fallback_of) == (
        "sms", "+8613800000001", "sent", first.id)
    (sms,) = twilio.messages
    assert sms["To"] == "+8613800000001" and case.id in sms["Body"]
    with db.session() as s:
        assert s.scalar(select(Incident).where(Incident.status == "open")) is None


def test_nobody_left_to_try_is_an_incident_an_operator_can_retry(loop, db, fakes):
    rt, index, unit, lon, lat = loop
    wecom, _ = fakes
    contact(db, f"insp-{unit}", wecom_id="wx-new-hire", phone=None)
    case = dispatched(rt, index, lon, lat)
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert n.status == "failed"
    with db.session() as s:
        (incident,) = s.scalars(select(Incident).where(Incident.status == "open")).all()
    assert (incident.kind, incident.operation, incident.instance_id) == ("job", "notify.deliver", case.instance_id)
    wecom.users.add("wx-new-hire")  # the account is set up; the operator retries
    incidents.retry(rt, incident.id, "ops")
    run_jobs(rt)
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts) == ("sent", 1) and len(wecom.delivered_to("wx-new-hire")) == 1


def test_retries_run_out_into_an_incident(loop, db, clock, fakes):
    rt, index, _unit, lon, lat = loop
    wecom, _ = fakes
    wecom.fail_next(*[wechat_error(-1)] * 3)
    case = dispatched(rt, index, lon, lat)
    for _ in range(3):
        run_jobs(rt)
        clock.advance(timedelta(hours=1))
    (n,) = notifications(db, case_id=case.id)
    assert (n.status, n.attempts) == ("failed", 3)
    with db.session() as s:
        (incident,) = s.scalars(select(Incident).where(Incident.status == "open")).all()
    assert incident.kind == "job" and incident.message.startswith("wechat_work to insp-")
    assert "code -1" in incident.message
    assert wecom.messages == []


def test_non_urgent_notices_wait_for_the_end_of_quiet_hours_urgent_ones_do_not(loop, db, clock, fakes):
    rt, index, unit, lon, lat = loop
    wecom, _ = fakes
    clock.set(datetime(2026, 9, 29, 15, 30, tzinfo=UTC))  # 23:30 in China
    with db.transaction() as s:  # the unit's inspector stands in for the night (the roster has day shifts only)
        person = s.scalar(select(Person.id).where(Person.username == f"insp-{unit}"))
        s.add(DutyShift(person_id=person, grid_code=unit, kind="night",
                        starts_at=datetime(2026, 9, 29, 9, 30, tzinfo=UTC),  # 17:30 to 08:30 China time
                        ends_at=datetime(2026, 9, 30, 0, 30, tzinfo=UTC)))
    quiet = dispatched(rt, index, lon, lat, category="noise", external_id="N-1")
    urgent = dispatched(rt, index, lon, lat, category="water.exceedance", external_id="W-1")
    run_jobs(rt)
    (waiting,) = notifications(db, case_id=quiet.id)
    (sent,) = notifications(db, case_id=urgent.id)
    assert (waiting.status, waiting.send_after) == ("queued", datetime(2026, 9, 29, 23, 0, tzinfo=UTC))
    assert sent.status == "sent" and len(wecom.messages) == 1
    clock.set(datetime(2026, 9, 29, 23, 0, tzinfo=UTC))  # 07:00 in China
    run_jobs(rt)
    assert notifications(db, case_id=quiet.id)[0].status == "sent" and len(wecom.messages) == 2


def test_the_per_member_limit_delays_without_using_up_attempts(city, db, clock, fakes, redis_db, fake_time):
    rt, index = city
    limiter = RateLimiter(redis_db, [(2, 60.0)], clock=fake_time)
    install(rt, providers(*fakes, limiter=limiter), DeliveryPolicy(max_attempts=1, quiet=QuietHours.parse("off")))
    unit, lon, lat = inside(db, index)
    contact(db, f"insp-{unit}", wecom_id="wx-insp")
    cases = [dispatched(rt, index, lon, lat, category=c, external_id=f"L-{i}")
             for i, c in enumerate(("noise", "solid_waste", "air.exceedance"))]
    run_jobs(rt)
    statuses = sorted((n.status, n.attempts) for c in cases for n in notifications(db, case_id=c.id))
    assert statuses == [("queued", 0), ("sent", 1), ("sent", 1)]  # max_attempts=1, yet not failed
    fake_time.advance(61)
    clock.advance(timedelta(seconds=61))
    run_jobs(rt)
    assert all(n.status == "sent" for c in cases for n in notifications(db, case_id=c.id))
    assert len(fakes[0].delivered_to("wx-insp")) == 3


def test_an_overdue_sign_for_tells_the_upper_levels_supervisor(loop, db, clock, fakes):
    rt, index, unit, lon, lat = loop
    wecom, _ = fakes
    town = index.ancestors(unit)[1]
    contact(db, f"sup-{town}", wecom_id="wx-sup")
    case = dispatched(rt, index, lon, lat)  # air.exceedance: 0.5 working hours to sign for
    run_jobs(rt)
    clock.advance(timedelta(minutes=23))  # past 75 %: the reminder
    from engine import timers

    assert timers.fire_due(rt) == 1
    clock.advance(timedelta(minutes=8))  # past the deadline: escalated
    assert timers.fire_due(rt) == 1
    run_jobs(rt)
    kinds = sorted((n.kind, n.recipient) for n in notifications(db, case_id=case.id))
    assert kinds == [("dispatch", f"insp-{unit}"), ("escalation", f"sup-{town}"),
                     ("sign_for_reminder", f"insp-{unit}")]
    (escalation,) = wecom.delivered_to("wx-sup")
    assert case.id in escalation["text"]["content"] and f"insp-{unit}" in escalation["text"]["content"]


def test_a_closed_case_tells_its_reporter_by_sms_when_they_do_not_follow_the_account(city, db, clock, fakes):
    from notifications.providers.wechat_oa import OaTemplate, WeChatOfficialAccount
    from tests.notifications.fakes import FakeWeChatOA
    from workflows.cases import Alarm

    rt, index = city
    wecom, twilio = fakes
    with FakeWeChatOA("wxapp", "oa-secret", followers=set()) as oa:
        oa_provider = WeChatOfficialAccount("wxapp", "oa-secret", base_url=oa.url, templates={
            "case_closed": OaTemplate("TPL-closed", {"character_string1": "case_no", "thing2": "result"})})
        install(rt, {**providers(wecom, twilio), "wechat_oa": oa_provider}, DeliveryPolicy(quiet=QuietHours(None)))
        _unit, lon, lat = inside(db, index)
        case = file_alarm(rt, index, Alarm(
            tenant="320700", source="citizen", external_id="R-1", category="citizen.report",
            occurred_at=clock.now(), lon=lon, lat=lat, description="河边垃圾",
            details={"reporter": {"openid": "o-not-a-follower", "phone": "+8613900000002"}}), "system").case
        for element, variables in (("review", {"review_result": "valid"}), ("dispatch", {}), ("sign_for", {}),
                                   ("handle", {"handle_result": "done", "finding_kind": "rectified"}),
                                   ("verify", {"verified": True, "verify_note": "内部：罚款待缴",
                                               "reply": "已清理"})):
            (task,) = [t for t in instances.open_tasks(rt, case.instance_id) if t.element_id == element]
            tasks.complete(rt, task.id, task.assignee or "sup", variables)
        run_jobs(rt)
        told = [n for n in notifications(db, case_id=case.id) if n.recipient == f"citizen:{case.id}"]
        assert sorted((n.channel, n.status) for n in told) == [("sms", "sent"), ("wechat_oa", "failed")]
        assert any("43004" in (n.last_error or "") for n in told)
        (sms,) = [m for m in twilio.messages if m["To"] == "+8613900000002"]
        assert "已清理" in sms["Body"] and case.id in sms["Body"]
        assert "内部" not in sms["Body"]  # the supervisor's internal note is never sent to the citizen


def test_everyone_who_reported_a_merged_case_is_told_when_it_closes(city, db, clock, fakes):
    from workflows.reports import Report, file_report

    rt, index = city
    wecom, twilio = fakes
    install(rt, providers(wecom, twilio), DeliveryPolicy(quiet=QuietHours(None)))
    _unit, lon, lat = inside(db, index)
    first, second, again = ({"name": n, "phone": p} for n, p in (("甲", "+8613900000011"), ("乙", "+8613900000022"),
                                                                  ("甲", "+8613900000011")))
    intakes = [file_report(rt, index, Report(tenant="320700", request_id=f"R-{i}", category="solid_waste",
                                             received_at=clock.now(), lon=lon, lat=lat, reporter=who), "open311")
               for i, who in enumerate((first, second, again))]
    assert [i.outcome for i in intakes] == ["filed", "occurrence", "occurrence"]
    case = intakes[0].case
    for element, variables in (("review", {"review_result": "valid"}), ("dispatch", {}), ("sign_for", {}),
                               ("handle", {"handle_result": "done", "finding_kind": "rectified"}),
                               ("verify", {"verified": True, "reply": "已清运"})):
        (task,) = [t for t in instances.open_tasks(rt, case.instance_id) if t.element_id == element]
        tasks.complete(rt, task.id, task.assignee or "sup", variables)
    run_jobs(rt)
    told = sorted(m["To"] for m in twilio.messages if "已清运" in m["Body"])
    assert told == ["+8613900000011", "+8613900000022"]  # each reporter once, though 甲 reported twice
