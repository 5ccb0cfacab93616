"""Timer start events: the scheduler starts an instance of the latest non-suspended version once per
period (a timeDate once), however many schedulers run, and once on recovery for missed periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import definitions, instances, start_timers
from engine.models import AuditEvent, Incident, ProcessInstance, StartSchedule
from engine.parsing import ModelError
from engine.queues import ManualJobQueue
from engine.scheduler import Scheduler
from tests.engine.builders import end, process, seq, user
from tests.engine.support import count, other_process, run_together

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
FIRST = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 08:00 in China; the clock starts on 2 March, 01:00 UTC
DAILY = '"R/2026-03-03T08:00:00+08:00/P1D"'


def _timer_start(kind: str, value: str, id_: str = "start") -> str:
    return (f'<bpmn:startEvent id="{id_}"><bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}>'
            f"</bpmn:timerEventDefinition></bpmn:startEvent>")


def patrol(value: str = DAILY, kind: str = "timeCycle", *, name: str = "patrol") -> str:
    return process("patrol", _timer_start(kind, value), user("walk", name), end(), seq("start", "walk", "end"),
                   lanes={"inspector": ["walk"]})


def _deploy(rt, xml: str | None = None):
    return definitions.deploy(rt, xml or patrol(), "admin")[0]


def _started(rt) -> list[ProcessInstance]:
    with rt.db.session() as s:
        return list(s.scalars(select(ProcessInstance).where(ProcessInstance.process_key == "patrol")
                              .order_by(ProcessInstance.started_at)))


def _schedule(rt) -> StartSchedule | None:
    with rt.db.session() as s:
        return s.get(StartSchedule, "patrol")


def _system(rt, action: str) -> list[dict]:
    with rt.db.session() as s:
        return [e.details for e in s.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                             .order_by(AuditEvent.id))]


def _scheduler(rt) -> Scheduler:
    return Scheduler(rt, ManualJobQueue(rt))


def test_deploy_schedules_the_first_period_and_nothing_starts_before_it(rt, clock):
    _deploy(rt)
    assert _schedule(rt).next_at == FIRST
    clock.set(FIRST)  # exactly at the time: like every timer, only once it has passed
    assert start_timers.fire_due(rt)[0] == 0
    assert _started(rt) == []


def test_the_instance_starts_past_its_start_event_on_the_latest_version(rt, clock):
    d = _deploy(rt)
    clock.set(FIRST + SECOND)
    assert _scheduler(rt).tick().started == 1
    (row,) = _started(rt)
    assert (row.definition_id, row.started_by, row.business_key) == (d.id, "scheduler", f"timer:{FIRST.isoformat()}")
    assert [t.element_id for t in instances.open_tasks(rt, row.id)] == ["walk"]
    assert _schedule(rt).next_at == FIRST + DAY


def test_a_cycle_starts_once_per_period_with_two_schedulers(rt, clock):
    _deploy(rt)
    with other_process(rt) as other:
        a, b = _scheduler(rt), _scheduler(other)
        for period in range(3):
            clock.set(FIRST + period * DAY + SECOND)
            results = run_together([a.tick, b.tick])
            assert [kind for kind, _ in results] == ["ok", "ok"], results
            assert sorted(r.started for _, r in results) == [0, 1]
            assert len(_started(rt)) == period + 1
        clock.advance(DAY / 2)  # between periods: nothing more
        assert a.tick().started == 0 and b.tick().started == 0
    keys = [r.business_key for r in _started(rt)]
    assert keys == [f"timer:{(FIRST + n * DAY).isoformat()}" for n in range(3)]
    assert _schedule(rt).starts == 3


def test_missed_periods_start_once_after_a_restart(rt, clock):
    _deploy(rt)
    clock.set(FIRST + SECOND)
    assert _scheduler(rt).tick().started == 1
    clock.set(FIRST + 3 * DAY + timedelta(hours=2))  # down for the periods of day 2, 3 and 4
    with other_process(rt) as restarted:  # a new process: empty spec cache, only the database
        sched = _scheduler(restarted)
        assert sched.tick().started == 1
        assert sched.tick().started == 0
    assert len(_started(rt)) == 2
    assert _schedule(rt).next_at == FIRST + 4 * DAY  # the first period still ahead
    fired = _system(rt, "start_timer.fired")
    assert [f["missed"] for f in fired] == [0, 2]
    assert fired[1]["due"] == (FIRST + DAY).isoformat()


def test_a_restart_between_periods_starts_nothing_extra(rt, clock):
    _deploy(rt)
    clock.set(FIRST + SECOND)
    assert start_timers.fire_due(rt)[0] == 1
    clock.set(FIRST + DAY / 2)
    with other_process(rt) as restarted:
        assert _scheduler(restarted).tick().started == 0
        clock.set(FIRST + DAY + SECOND)
        assert _scheduler(restarted).tick().started == 1
    assert len(_started(rt)) == 2


def test_the_scheduler_sleeps_until_the_next_period(rt, clock):
    _deploy(rt)
    result = Scheduler(rt, ManualJobQueue(rt), max_sleep=timedelta(days=7)).tick()
    assert result.next_run == FIRST + timers_slack()


def timers_slack() -> timedelta:
    from engine.timers import WAKE_SLACK

    return WAKE_SLACK


def test_a_suspended_latest_version_starts_nothing_and_the_period_is_not_made_up(rt, clock):
    d = _deploy(rt)
    definitions.suspend(rt, d.id, "admin", "plan under review")
    clock.set(FIRST + SECOND)
    assert start_timers.fire_due(rt)[0] == 0
    assert _started(rt) == [] and _schedule(rt).next_at == FIRST + DAY
    assert _system(rt, "start_timer.skipped")[0]["reason"] == "the latest version is suspended"
    definitions.activate(rt, d.id, "admin", "reviewed")
    assert start_timers.fire_due(rt)[0] == 0  # the skipped period stays skipped
    clock.set(FIRST + DAY + SECOND)
    assert start_timers.fire_due(rt)[0] == 1


def test_a_new_version_with_the_same_timer_takes_the_schedule_over(rt, clock):
    _deploy(rt)
    clock.set(FIRST + SECOND)
    start_timers.fire_due(rt)
    v2 = _deploy(rt, patrol(name="patrol v2"))
    schedule = _schedule(rt)
    assert (schedule.definition_id, schedule.next_at, schedule.starts) == (v2.id, FIRST + DAY, 1)
    clock.set(FIRST + DAY + SECOND)
    start_timers.fire_due(rt)
    assert [r.definition_id for r in _started(rt)][-1] == v2.id


def test_a_new_version_with_another_timer_restarts_the_schedule_and_one_without_ends_it(rt, clock):
    v1 = _deploy(rt)
    _deploy(rt, patrol('"R/2026-03-05T08:00:00+08:00/P7D"'))
    assert _schedule(rt).next_at == datetime(2026, 3, 5, tzinfo=UTC)
    plain = process("patrol", '<bpmn:startEvent id="start"/>', user("walk"), end(), seq("start", "walk", "end"),
                    lanes={"inspector": ["walk"]})
    _deploy(rt, plain)
    assert _schedule(rt) is None
    clock.set(FIRST + 10 * DAY + timedelta(hours=1))
    assert start_timers.fire_due(rt)[0] == 0
    definitions.make_latest(rt, v1.id, "admin", "back to the daily plan")  # a rollback brings it back
    assert _schedule(rt).next_at == FIRST + 10 * DAY + DAY  # from now on, not the periods before
    clock.set(FIRST + 11 * DAY + SECOND)
    assert start_timers.fire_due(rt)[0] == 1
    assert _started(rt)[-1].definition_id == v1.id


def test_a_time_date_starts_once(rt, clock):
    _deploy(rt, patrol('"2026-03-03T08:00:00+08:00"', "timeDate"))
    clock.set(FIRST + SECOND)
    assert start_timers.fire_due(rt)[0] == 1
    clock.advance(30 * DAY)
    assert start_timers.fire_due(rt)[0] == 0
    assert len(_started(rt)) == 1 and _schedule(rt).next_at is None


def test_a_bounded_cycle_stops_after_its_repetitions(rt, clock):
    _deploy(rt, patrol('"R2/2026-03-03T08:00:00+08:00/P1D"'))
    for n in range(4):
        clock.set(FIRST + n * DAY + SECOND)
        start_timers.fire_due(rt)
    assert len(_started(rt)) == 2 and _schedule(rt).next_at is None


def test_a_start_that_fails_becomes_an_incident_and_the_schedule_moves_on(rt, clock):
    xml = patrol().replace('<bpmn:userTask id="walk"', '<bpmn:scriptTask id="boom"><bpmn:script>x = 1 / 0'
                           '</bpmn:script></bpmn:scriptTask><bpmn:userTask id="walk"')
    xml = xml.replace('sourceRef="start" targetRef="walk"', 'sourceRef="start" targetRef="boom"') \
             .replace('</bpmn:process>', '<bpmn:sequenceFlow id="f_boom" sourceRef="boom" targetRef="walk"/>'
                      '</bpmn:process>')
    _deploy(rt, xml)
    clock.set(FIRST + SECOND)
    assert start_timers.fire_due(rt)[0] == 0
    assert _started(rt) == []
    assert count(rt, Incident, Incident.kind == "start_timer") == 1
    assert _schedule(rt).next_at == FIRST + DAY
    assert start_timers.fire_due(rt)[0] == 0 and count(rt, Incident) == 1  # not tried again at once


@pytest.mark.parametrize(("start_xml", "words"), [
    (_timer_start("timeDuration", '"PT1H"'), "a duration has nothing to count from"),
    (_timer_start("timeCycle", "plan"), "literal value"),
    (_timer_start("timeCycle", '"R/2026-03-03T08:00:00+08:00/PT10S"'), "repeats more often"),
    (_timer_start("timeCycle", '"every day"'), "not a valid ISO 8601"),
])
def test_start_timers_that_cannot_be_scheduled_are_refused(rt, start_xml, words):
    xml = process("patrol", start_xml, user("walk"), end(), seq("start", "walk", "end"), lanes={"inspector": ["walk"]})
    with pytest.raises(ModelError) as exc:
        definitions.deploy(rt, xml, "admin")
    assert any(p.element_id == "start" and words in p.message for p in exc.value.problems), exc.value.problems
    assert _schedule(rt) is None


def test_a_timer_start_beside_another_start_event_is_refused(rt):
    xml = process("patrol", _timer_start("timeCycle", DAILY), '<bpmn:startEvent id="manual"/>', user("walk"), end(),
                  seq("start", "walk", "end"), seq("manual", "walk"), lanes={"inspector": ["walk"]})
    with pytest.raises(ModelError) as exc:
        definitions.deploy(rt, xml, "admin")
    assert any("no other start event" in p.message for p in exc.value.problems)


def test_retrying_a_failed_period_starts_it_once_the_model_is_fixed(rt, clock):
    from engine import incidents
    from engine.errors import ProcessError

    broken = patrol().replace('<bpmn:userTask id="walk" name="patrol"></bpmn:userTask>',
                              '<bpmn:scriptTask id="walk"><bpmn:script>x = 1 / 0</bpmn:script></bpmn:scriptTask>')
    assert broken != patrol()
    _deploy(rt, broken)
    clock.set(FIRST + SECOND)
    start_timers.fire_due(rt)
    with rt.db.session() as s:
        (incident,) = s.scalars(select(Incident).where(Incident.kind == "start_timer"))
    with pytest.raises(ProcessError):
        incidents.retry(rt, incident.id, "operator")
    assert _started(rt) == [] and incidents.query(rt)[1] == 1  # still open, nothing started
    fixed = _deploy(rt)
    incidents.retry(rt, incident.id, "operator")
    (row,) = _started(rt)
    assert (row.definition_id, row.business_key) == (fixed.id, f"timer:{FIRST.isoformat()}")
    assert incidents.query(rt)[1] == 0
    assert _schedule(rt).next_at == FIRST + DAY  # the schedule itself went on meanwhile
