"""Graded warnings through the engine: the policy picks the recipient groups, each group's
graded_warning process tells them (notify.send → notice.plan → notification rows), waits for the
acknowledgement, reminds once at the deadline, then climbs one level at a time up to the city.
Timers are fired by `fire_due` under a manual clock, exactly as the scheduler does."""

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine import definitions, instances, outbox, timers
from engine.queues import ManualJobQueue
from notifications.models import Notification
from workflows.warning_models import GradedWarning, WarningEvent, WarningGroup, WarningPolicy
from workflows.warnings import (
    WarningInput,
    ack_token,
    acknowledge,
    group_of_token,
    raise_warning,
    warning_status,
)

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "graded_warning.bpmn"
UNIT = "320706001000001"  # a basic unit: no supervisors of its own
TOWN, DISTRICT, CITY = "320706001", "320706", "320700"
SECRET = "test-secret"


@pytest.fixture
def wrt(city):
    rt, _index = city
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    return rt


def link(group_id: str) -> str:
    return f"https://gridloop.example/api/v1/warnings/ack/{ack_token(SECRET, group_id)}"


def raise_(rt, level=1, grid=UNIT, **kw):
    values = dict(tenant="320700", level=level, grid_code=grid, station="海州区新浦站", pollutant="PM2.5",
                  value=180.0, limit=75.0, unit="μg/m³", observed_at=rt.clock.now() - timedelta(minutes=5),
                  source="MN-320706-01")
    return raise_warning(rt, WarningInput(**{**values, **kw}), "system:monitoring", link)


def run_jobs(rt) -> int:
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    return jobs.run_all()


def groups(rt, warning_id) -> list[WarningGroup]:
    with rt.db.session() as s:
        return list(s.scalars(select(WarningGroup).where(WarningGroup.warning_id == warning_id)
                              .order_by(WarningGroup.seq)))


def warning(rt, warning_id) -> GradedWarning:
    with rt.db.session() as s:
        return s.get(GradedWarning, warning_id)


def notices(rt, warning_id) -> list[Notification]:
    """The notification rows the notice.plan jobs queued for the warning's processes, oldest first."""
    ids = [g.instance_id for g in groups(rt, warning_id)]
    with rt.db.session() as s:
        return list(s.scalars(select(Notification).where(Notification.instance_id.in_(ids))
                              .order_by(Notification.created_at, Notification.recipient)))


def told(rt, warning_id) -> list[tuple[str, int | None]]:
    return [(n.recipient, n.data.get("attempt") or n.data.get("escalation")) for n in notices(rt, warning_id)]


def timeline(rt, warning_id) -> list[str]:
    with rt.db.session() as s:
        return [e.kind for e in s.scalars(select(WarningEvent).where(WarningEvent.warning_id == warning_id)
                                          .order_by(WarningEvent.at, WarningEvent.id))]


def later(rt, clock, minutes: float) -> int:
    """Move the clock on, fire what is due, run the jobs the firing created."""
    clock.advance(timedelta(minutes=minutes))
    fired = timers.fire_due(rt)
    run_jobs(rt)
    return fired


def test_level_one_tells_the_grid_and_the_district_by_default(wrt):
    w = raise_(wrt, level=1)
    run_jobs(wrt)
    gs = groups(wrt, w.id)
    # the unit has no supervisor: its group starts where notify.send would land, the town
    assert [(g.scope, g.post, g.recipient, g.ack_minutes, g.policy) for g in gs] == [
        (TOWN, "supervisor", None, 15, "default"), (DISTRICT, "supervisor", None, 15, "default")]
    assert [g.escalation_scopes for g in gs] == [[DISTRICT, CITY], [CITY]]
    assert sorted(told(wrt, w.id)) == [(f"sup-{DISTRICT}", 1), (f"sup-{TOWN}", 1)]
    n = notices(wrt, w.id)[0]
    assert n.kind == "warning" and n.title == "【Ⅰ级（红色）预警】海州区新浦站"
    assert "PM2.5 浓度 180μg/m³，超过限值 75μg/m³" in n.text
    assert n.url == link(gs[0].id) or n.url == link(gs[1].id)
    assert n.urgent is True  # a deadline in minutes: never held back by quiet hours
    assert warning(wrt, w.id).status == "open" and timeline(wrt, w.id) == ["raised"]


def test_level_four_tells_only_the_grid_and_gives_two_hours(wrt):
    w = raise_(wrt, level=4)
    run_jobs(wrt)
    (g,) = groups(wrt, w.id)
    assert (g.scope, g.ack_minutes) == (TOWN, 120)
    assert told(wrt, w.id) == [(f"sup-{TOWN}", 1)]
    assert instances.get(wrt, g.instance_id).next_wakeup_at == wrt.clock.now() + timedelta(minutes=120)


def test_the_most_specific_policy_decides_who_and_how_long(wrt):
    with wrt.db.transaction() as s:
        s.add_all([
            WarningPolicy(tenant="320700", level=3, grid_prefix=None, notify_level="grid",
                          notify_post="supervisor", ack_minutes=45, renotify=True),
            WarningPolicy(tenant="320700", level=3, grid_prefix=DISTRICT, notify_level="grid",
                          notify_post="inspector", ack_minutes=10, renotify=False),
            WarningPolicy(tenant="320700", level=3, grid_prefix=DISTRICT, notify_level="city",
                          notify_post="supervisor", ack_minutes=20, renotify=True),
        ])
    here = raise_(wrt, level=3)
    elsewhere = raise_(wrt, level=3, grid="320703001000001")
    run_jobs(wrt)
    assert [(g.scope, g.post, g.recipient, g.ack_minutes, g.renotify, g.escalation_scopes)
            for g in groups(wrt, here.id)] == [
        (UNIT, "inspector", f"insp-{UNIT}", 10, False, [TOWN, DISTRICT, CITY]),
        (CITY, "supervisor", None, 20, True, [])]
    assert sorted(told(wrt, here.id)) == [(f"insp-{UNIT}", 1), (f"sup-{CITY}", 1)]
    (g,) = groups(wrt, elsewhere.id)  # the tenant-wide row: only the rows of the longest prefix count
    assert (g.scope, g.ack_minutes) == ("320703001", 45)


def test_a_post_nobody_holds_falls_back_to_the_supervisors(wrt):
    with wrt.db.transaction() as s:
        s.add(WarningPolicy(tenant="320700", level=2, grid_prefix=None, notify_level="grid", notify_post="leader",
                            ack_minutes=30, renotify=True))
    w = raise_(wrt, level=2)
    (g,) = groups(wrt, w.id)
    assert (g.scope, g.post, g.recipient) == (TOWN, "supervisor", None)
    assert "no leader" in g.policy


def test_acknowledged_in_time_ends_the_group_and_nobody_is_reminded(wrt, clock):
    w = raise_(wrt, level=2)
    run_jobs(wrt)
    town, district = groups(wrt, w.id)
    clock.advance(timedelta(minutes=10))
    assert acknowledge(wrt, town.id, by=f"sup-{TOWN}", via="api", note="已到现场") == "acknowledged"
    assert instances.get(wrt, town.instance_id).status == "completed"
    town = groups(wrt, w.id)[0]
    assert (town.status, town.acknowledged_by, town.ack_via) == ("acknowledged", f"sup-{TOWN}", "api")
    assert warning(wrt, w.id).status == "open"  # the district has not answered yet
    assert acknowledge(wrt, town.id, by="someone-else", via="link") == "duplicate"
    assert acknowledge(wrt, district.id, by=f"sup-{DISTRICT}", via="link") == "acknowledged"
    done = warning(wrt, w.id)
    assert (done.status, done.acknowledged_by) == ("acknowledged", f"sup-{DISTRICT}")
    assert later(wrt, clock, 120) == 0
    assert sorted(told(wrt, w.id)) == [(f"sup-{DISTRICT}", 1), (f"sup-{TOWN}", 1)]  # no reminder, no escalation
    assert timeline(wrt, w.id) == ["raised", "acknowledged", "acknowledged"]


def test_silence_means_a_reminder_then_each_level_up_to_the_city_then_expiry(wrt, clock):
    w = raise_(wrt, level=4)
    run_jobs(wrt)
    (g,) = groups(wrt, w.id)
    assert later(wrt, clock, 120) == 0  # the deadline itself is not yet past
    assert later(wrt, clock, 1 / 60) == 1
    assert told(wrt, w.id) == [(f"sup-{TOWN}", 1), (f"sup-{TOWN}", 2)]
    assert groups(wrt, w.id)[0].status == "open"
    assert later(wrt, clock, 121) == 1
    assert told(wrt, w.id)[-1] == (f"sup-{DISTRICT}", 1)
    g = groups(wrt, w.id)[0]
    assert (g.status, g.current_scope, g.escalations) == ("escalated", DISTRICT, 1)
    assert warning(wrt, w.id).status == "escalated"
    assert later(wrt, clock, 121) == 1
    assert told(wrt, w.id)[-1] == (f"sup-{CITY}", 2)
    assert later(wrt, clock, 121) == 1  # the city did not answer either: that is the end
    g = groups(wrt, w.id)[0]
    assert (g.status, g.current_scope, g.escalations) == ("expired", CITY, 2)
    assert instances.get(wrt, g.instance_id).status == "completed"
    assert warning(wrt, w.id).status == "expired"
    assert len(told(wrt, w.id)) == 4
    assert timeline(wrt, w.id) == ["raised", "renotified", "escalated", "escalated", "expired"]
    assert acknowledge(wrt, g.id, by=f"sup-{CITY}", via="api") == "expired"  # too late changes nothing
    assert later(wrt, clock, 600) == 0 and len(told(wrt, w.id)) == 4


def test_without_renotify_the_first_timeout_escalates_and_an_ack_up_there_ends_it(wrt, clock):
    with wrt.db.transaction() as s:
        s.add(WarningPolicy(tenant="320700", level=3, grid_prefix=TOWN, notify_level="grid",
                            notify_post="supervisor", ack_minutes=20, renotify=False))
    w = raise_(wrt, level=3)
    run_jobs(wrt)
    assert later(wrt, clock, 21) == 1
    assert told(wrt, w.id) == [(f"sup-{TOWN}", 1), (f"sup-{DISTRICT}", 1)]
    (g,) = groups(wrt, w.id)
    assert acknowledge(wrt, g.id, by=f"sup-{DISTRICT}", via="api") == "acknowledged"
    g = groups(wrt, w.id)[0]
    assert (g.status, g.acknowledged_by, g.escalations) == ("acknowledged", f"sup-{DISTRICT}", 1)
    assert warning(wrt, w.id).status == "acknowledged"
    assert later(wrt, clock, 60) == 0 and len(told(wrt, w.id)) == 2


def test_a_warning_of_the_city_itself_cannot_climb(wrt, clock):
    w = raise_(wrt, level=1, grid=CITY)
    run_jobs(wrt)
    (g,) = groups(wrt, w.id)  # no district above the city: one group
    assert (g.scope, g.escalation_scopes) == (CITY, [])
    later(wrt, clock, 16)
    later(wrt, clock, 16)
    assert told(wrt, w.id) == [(f"sup-{CITY}", 1), (f"sup-{CITY}", 2)]
    assert groups(wrt, w.id)[0].status == "expired"


def test_a_repeated_track_job_records_nothing_twice(wrt, clock):
    w = raise_(wrt, level=4)
    run_jobs(wrt)
    clock.advance(timedelta(minutes=121))
    timers.fire_due(wrt)
    jobs = ManualJobQueue(wrt)
    outbox.relay(wrt, jobs)
    pending = list(jobs.pending)
    jobs.run_all()
    jobs.pending.extend(pending)  # at-least-once: the same jobs delivered again
    jobs.run_all()
    assert timeline(wrt, w.id) == ["raised", "renotified"]
    assert len(told(wrt, w.id)) == 2


def test_unknown_grid_and_bad_level_are_refused(wrt):
    from workflows.warning_plans import UnknownGrid

    with pytest.raises(UnknownGrid):
        raise_(wrt, grid="999999")
    with pytest.raises(ValueError):
        raise_(wrt, level=5)
    with wrt.db.session() as s:
        assert s.scalar(select(GradedWarning.id)) is None


def test_ack_tokens_are_signed_per_group():
    gid = "0123456789abcdef0123456789abcdef"
    token = ack_token(SECRET, gid)
    assert group_of_token(SECRET, token) == gid
    assert group_of_token("another-secret", token) is None
    assert group_of_token(SECRET, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert group_of_token(SECRET, "fedcba9876543210fedcba9876543210." + token.split(".")[1]) is None
    assert group_of_token(SECRET, gid) is None and group_of_token(SECRET, "") is None


@pytest.mark.parametrize(("statuses", "expected"), [
    (["open", "open"], "open"),
    (["acknowledged", "escalated"], "escalated"),
    (["acknowledged", "acknowledged"], "acknowledged"),
    (["acknowledged", "expired"], "expired"),
    (["acknowledged", "cancelled"], "acknowledged"),
    (["cancelled"], "expired"),
])
def test_the_warning_status_over_its_groups(statuses, expected):
    assert warning_status(statuses) == expected


def test_an_acknowledged_groups_notices_are_marked_acknowledged(wrt, clock):
    from notifications.install import install as install_notifications
    from notifications.providers.wechat_work import WeChatWork
    from tests.notifications.fakes import FakeWeChatWork
    from workflows.people import Person

    with FakeWeChatWork("corp", "secret", users={"wx-town"}) as fake:
        install_notifications(wrt, {"wechat_work": WeChatWork("corp", "secret", 1, base_url=fake.url)})
        with wrt.db.transaction() as s:
            s.execute(update(Person).where(Person.username == f"sup-{TOWN}").values(wecom_id="wx-town"))
        w = raise_(wrt, level=3)
        while run_jobs(wrt):  # the plan, then the delivery
            pass
        (town,) = groups(wrt, w.id)
        assert [n.status for n in notices(wrt, w.id) if n.recipient == f"sup-{TOWN}"] == ["sent"]
        assert acknowledge(wrt, town.id, by=f"sup-{TOWN}", via="api") == "acknowledged"
    assert [n.status for n in notices(wrt, w.id) if n.recipient == f"sup-{TOWN}"] == ["acknowledged"]


def test_a_suspended_warning_model_takes_no_new_warnings_and_nothing_is_written(wrt):
    from engine.errors import Conflict
    from workflows.warning_models import GradedWarning

    d = definitions.latest(wrt, "graded_warning")
    definitions.suspend(wrt, d.id, "admin", "editing the model")
    with pytest.raises(Conflict):
        raise_(wrt)
    with wrt.db.session() as s:
        assert s.query(GradedWarning).count() == 0
