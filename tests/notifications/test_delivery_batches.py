"""Delivery jobs that carry several notices: how the relay gathers them, what one batch records for
each of its notices, and what happens when a batch runs out of time or meets a notice another
delivery holds. Real providers' clients against the fakes, on PostgreSQL and SQLite."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from engine import outbox
from engine.models import OutboxEntry
from engine.queues import ManualJobQueue, run_job
from engine.runtime import Runtime
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.models import Notification, NotificationEvent
from notifications.providers.twilio_sms import TwilioSms
from notifications.providers.wechat_work import WeChatWork
from notifications.queueing import DELIVER, QUEUE, NoticeRequest, queue_notices
from notifications.quiet_hours import QuietHours
from tests.notifications.fakes import FakeTwilio, FakeWeChatWork, wechat_error

SID, TOKEN = "AC" + "1" * 32, "twilio-token"
NO_QUIET = QuietHours(None)


@pytest.fixture
def fakes():
    with FakeWeChatWork("corp", "secret", users={f"wx-{i}" for i in range(10)}) as wecom, \
            FakeTwilio(SID, TOKEN) as twilio:
        yield wecom, twilio


def deliverer_rt(db, clock, fakes, **policy) -> Runtime:
    wecom, twilio = fakes
    rt = Runtime(db=db, clock=clock)
    install(rt, {"wechat_work": WeChatWork("corp", "secret", 1000002, base_url=wecom.url),
                 "sms": TwilioSms(SID, TOKEN, from_number="+15005550006", base_url=twilio.url)},
            DeliveryPolicy(max_attempts=3, quiet=NO_QUIET, **{"batch": 3, **policy}))
    return rt


def queue(rt: Runtime, *userids: str, sms: str | None = None) -> list[str]:
    """One urgent dispatch notice per WeChat Work user id (SMS as the fallback when given)."""
    requests = [NoticeRequest(key=f"k-{u}", kind="dispatch", recipient=f"insp-{u}",
                              channels=[("wechat_work", u), *([("sms", sms)] if sms else [])],
                              data={"case_no": u, "category": "废气超标", "address": "海州区"}, urgent=True)
                for u in userids]
    with rt.db.transaction() as s:
        return queue_notices(s, rt.clock.now(), requests, NO_QUIET)


def rows(db, ids) -> list[Notification]:
    with db.session() as s:
        found = {n.id: n for n in s.scalars(select(Notification).where(Notification.id.in_(ids)))}
    return [found[i] for i in ids]


def history(db, notification_id) -> list[str]:
    with db.session() as s:
        return list(s.scalars(select(NotificationEvent.status).where(
            NotificationEvent.notification_id == notification_id).order_by(NotificationEvent.id)))


def open_outbox(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.done_at.is_(None)))


def test_due_notices_leave_in_batches_and_a_batch_with_room_waits_while_jobs_wait(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes)
    ids = queue(rt, *(f"wx-{i}" for i in range(7)))
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 6  # two full batches; the seventh waits: two jobs are waiting already
    assert [len(payload[outbox.BATCH]) for _q, _job, payload in jobs.pending] == [3, 3]
    assert jobs.run_all() == 6
    assert outbox.relay(rt, jobs) == 1  # nothing waits now: it leaves at once, as a job of its own
    ((_q, job, payload),) = jobs.pending
    assert job == DELIVER and payload["notification_id"] == ids[6] and outbox.BATCH not in payload
    jobs.run_all()
    assert [n.status for n in rows(db, ids)] == ["sent"] * 7
    assert sorted(m["touser"] for m in wecom.messages) == [f"wx-{i}" for i in range(7)]
    assert all(history(db, i) == ["queued", "sending", "sent"] for i in ids)
    assert open_outbox(db) == 0


def test_a_batch_with_room_waits_no_longer_than_hold_max(db, clock, fakes):
    rt = deliverer_rt(db, clock, fakes)
    jobs = ManualJobQueue(rt)
    jobs.enqueue(QUEUE, "notice.plan", {}, key="busy")  # a job already waits on the notify queue
    queue(rt, "wx-1")
    assert outbox.relay(rt, jobs) == 0
    clock.advance(outbox.HOLD_MAX - timedelta(milliseconds=1))
    assert outbox.relay(rt, jobs) == 0
    clock.advance(timedelta(milliseconds=1))
    assert outbox.relay(rt, jobs) == 1 and len(jobs.pending) == 2


def test_the_same_rows_handed_out_again_get_the_same_job_key_and_other_rows_another(db, clock, fakes):
    rt = deliverer_rt(db, clock, fakes)
    queue(rt, "wx-1", "wx-2", "wx-3")
    with rt.db.session() as s:
        entries = [{"id": e.id, "queue": e.queue, "job": e.job, "payload": e.payload, "available_at": e.available_at}
                   for e in s.scalars(select(OutboxEntry).order_by(OutboxEntry.id))]
    sizes = {DELIVER: 3}.get
    (batch,) = outbox.handouts(entries, lambda job: sizes(job, 1))
    (again,) = outbox.handouts(entries, lambda job: sizes(job, 1))
    (first_two,) = outbox.handouts(entries[:2], lambda job: sizes(job, 1))
    assert batch.key == again.key and batch.key.startswith(f"outbox-{entries[0]['id']}-3-")
    assert first_two.key != batch.key and first_two.room_left and not batch.room_left
    singles = list(outbox.handouts(entries, lambda job: 1))
    assert [j.key for j in singles] == [f"outbox-{e['id']}" for e in entries]


def test_each_notice_of_a_batch_gets_its_own_outcome(db, clock, fakes):
    wecom, twilio = fakes
    rt = deliverer_rt(db, clock, fakes)
    wecom.fail_next(None, wechat_error(-1, "system busy"))  # the first send goes through, the second is busy
    sent, busy, gone = queue(rt, "wx-1", "wx-2", "wx-gone", sms="+8613800000009")
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 3 and len(jobs.pending) == 1
    jobs.run_all()
    first, second, third = rows(db, [sent, busy, gone])
    assert (first.status, second.status, third.status) == ("sent", "queued", "failed")
    assert second.attempts == 1 and "system busy" in second.last_error
    assert "81013" in third.last_error
    with db.session() as s:
        (fallback,) = s.scalars(select(Notification).where(Notification.fallback_of == gone))
        retry_at = s.scalar(select(OutboxEntry.available_at).where(OutboxEntry.relayed_at.is_(None),
                                                                   OutboxEntry.payload["notification_id"]
                                                                   .as_string() == busy))
    assert fallback.channel == "sms" and retry_at > clock.now()
    assert outbox.relay(rt, jobs) == 1  # the SMS fallback, due now; the retry waits for its time
    jobs.run_all()
    clock.set(retry_at)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert [n.status for n in rows(db, [sent, busy, fallback.id])] == ["sent", "sent", "sent"]
    assert len(twilio.messages) == 1 and len(wecom.delivered_to("wx-2")) == 1
    assert open_outbox(db) == 0


def test_a_batch_out_of_time_sends_its_first_notice_and_puts_the_rest_back(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes, batch_budget=timedelta(0))
    ids = queue(rt, "wx-1", "wx-2", "wx-3")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert [(n.status, n.attempts, n.lease_until) for n in rows(db, ids)] == [
        ("sent", 1, None), ("queued", 0, None), ("queued", 0, None)]
    assert history(db, ids[1]) == ["queued", "sending", "queued"]
    rounds = 1
    while outbox.relay(rt, jobs):  # put back due at once: each job sends one more
        jobs.run_all()
        rounds += 1
    assert rounds == 3 and [n.status for n in rows(db, ids)] == ["sent"] * 3
    assert [m["touser"] for m in wecom.messages] == ["wx-1", "wx-2", "wx-3"]  # each once
    assert open_outbox(db) == 0


def test_a_notice_another_delivery_holds_is_left_to_its_lease(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes)
    free, held = queue(rt, "wx-1", "wx-2")
    with db.transaction() as s:  # a worker elsewhere is sending it right now
        s.execute(update(Notification).where(Notification.id == held)
                  .values(status="sending", attempts=1, lease_until=clock.now() + timedelta(minutes=5)))
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    assert [n.status for n in rows(db, [free, held])] == ["sent", "sending"]
    assert [m["touser"] for m in wecom.messages] == ["wx-1"]
    assert open_outbox(db) == 1  # the held one's row: the lease sweeper hands it out again


def test_a_batch_delivered_twice_sends_nothing_the_second_time(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes)
    ids = queue(rt, "wx-1", "wx-2", "wx-3")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    ((_q, job, payload),) = jobs.pending
    assert run_job(rt, job, payload) == 3
    assert run_job(rt, job, payload) == 3  # RQ handed the same job out again
    assert len(wecom.messages) == 3 and all(history(db, i) == ["queued", "sending", "sent"] for i in ids)


def test_a_batch_for_a_job_that_takes_one_row_at_a_time_is_refused(db, clock):
    rt = Runtime(db=db, clock=clock)
    rt.add_job("one.at.a.time", lambda _rt, _payload: None)
    with pytest.raises(LookupError, match="takes one row at a time"):
        run_job(rt, "one.at.a.time", {outbox.BATCH: [{"outbox_id": 1}, {"outbox_id": 2}]})


def test_rows_whose_batch_never_reported_back_go_out_one_per_job(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes)
    ids = queue(rt, "wx-1", "wx-2", "wx-3")
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 3 and len(jobs.pending) == 1
    jobs.pending.clear()  # its worker died (one of its notices may be what kills it)
    clock.advance(rt.job_lease + timedelta(seconds=1))
    assert outbox.sweep_expired_leases(rt, rt.job_lease) == 3
    assert outbox.relay(rt, jobs) == 3
    assert [payload["notification_id"] for _q, _job, payload in jobs.pending] == ids  # each a job of its own
    assert jobs.run_all() == 3
    assert [n.status for n in rows(db, ids)] == ["sent"] * 3 and len(wecom.messages) == 3
    queue(rt, "wx-4", "wx-5")  # rows never handed out before still travel together
    outbox.relay(rt, jobs)
    ((_q, _job, payload),) = jobs.pending
    assert len(payload[outbox.BATCH]) == 2


def test_the_same_notice_twice_in_one_batch_is_sent_once_and_both_rows_are_done(db, clock, fakes):
    wecom, _ = fakes
    rt = deliverer_rt(db, clock, fakes)
    (nid,) = queue(rt, "wx-1")
    with rt.db.transaction() as s:  # a second job row for the same notice (e.g. a retry raced the first)
        outbox.add(s, clock.now(), queue=QUEUE, job=DELIVER, payload={"notification_id": nid, "attempt": 1})
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 2
    ((_q, _job, payload),) = jobs.pending
    assert [p["notification_id"] for p in payload[outbox.BATCH]] == [nid, nid]
    jobs.run_all()
    assert len(wecom.messages) == 1 and history(db, nid) == ["queued", "sending", "sent"]
    assert open_outbox(db) == 0  # neither row is left for the lease sweeper
