"""Night and weekend duty (值班) with the demo city's roster and a controlled clock: an urgent alarm
filed late on a Friday, when the unit's inspector is off duty, goes to the district centre's night
inspector; a notice to the level above reaches whoever of it is on duty then, and every supervisor of
that level when nobody is."""

from datetime import UTC, datetime

from sqlalchemy import select

from engine import instances
from notifications.models import Notification
from notifications.quiet_hours import QuietHours
from tests.city import alarm, inside
from workflows.cases import file_alarm
from workflows.notices import NoticePlanner
from workflows.people import DutyShift, Person

FRIDAY_2339 = datetime(2026, 10, 16, 15, 39, tzinfo=UTC)  # Friday 16 October 2026, 23:39 China time
MONDAY_1000 = datetime(2026, 10, 19, 2, 0, tzinfo=UTC)


def on_duty_now(db, username, at) -> bool:
    with db.session() as s:
        return s.scalar(select(DutyShift.id).join(Person, Person.id == DutyShift.person_id).where(
            Person.username == username, DutyShift.starts_at <= at, DutyShift.ends_at > at).limit(1)) is not None


def notice_to(rt, case_id: str, scope: str, key: str) -> list[str]:
    """What the notice.plan job does with an escalation notice to `scope`: whom it queues it for."""
    NoticePlanner(QuietHours.parse("off"))(rt, {"key": key, "instance_id": None, "params": {
        "kind": "escalation", "case_id": case_id, "scope": scope, "urgent": True}})
    with rt.db.session() as s:
        return sorted(s.scalars(select(Notification.recipient).where(Notification.key.startswith(f"{key}:"))))


def test_an_urgent_alarm_late_on_friday_goes_to_the_district_centres_night_inspector(city, db, clock):
    rt, index = city
    clock.set(FRIDAY_2339)
    unit, lon, lat = inside(db, index)
    town, district = index.ancestors(unit)[1:3]
    assert not on_duty_now(db, f"insp-{unit}", FRIDAY_2339) and not on_duty_now(db, f"insp-{town}", FRIDAY_2339)
    assert on_duty_now(db, f"duty-insp-{district}", FRIDAY_2339)

    case = file_alarm(rt, index, alarm(clock, "NIGHT-1", lon, lat, category="air.exceedance"), "system").case
    assert case.urgent and case.grid_code == unit
    assert (case.details["handled_at"], case.details["assignees"]) == (district, [f"duty-insp-{district}"])
    assert "fell back to " + district in case.route_reason
    assert instances.variables(rt, case.instance_id)["inspector"] == f"duty-insp-{district}"


def test_the_same_alarm_on_monday_morning_goes_to_the_units_own_inspector(city, db, clock):
    rt, index = city
    clock.set(MONDAY_1000)
    unit, lon, lat = inside(db, index)
    case = file_alarm(rt, index, alarm(clock, "DAY-1", lon, lat, category="air.exceedance"), "system").case
    assert (case.details["handled_at"], case.details["assignees"]) == (unit, [f"insp-{unit}"])


def test_an_escalation_at_night_reaches_the_supervisor_on_duty_else_every_supervisor_of_the_level(city, db, clock):
    rt, index = city
    clock.set(FRIDAY_2339)
    unit, lon, lat = inside(db, index)
    town, district = index.ancestors(unit)[1:3]
    case = file_alarm(rt, index, alarm(clock, "NIGHT-2", lon, lat, category="air.exceedance"), "system").case
    # the district centre at night: its duty supervisor, not the 值班长 who works by day
    assert notice_to(rt, case.id, district, "night-district") == [f"duty-sup-{district}"]
    # the town keeps no night duty: every active supervisor of the town, rather than nobody
    assert not on_duty_now(db, f"sup-{town}", FRIDAY_2339)
    assert notice_to(rt, case.id, town, "night-town") == [f"sup-{town}"]
    clock.set(MONDAY_1000)
    assert notice_to(rt, case.id, district, "day-district") == [f"sup-{district}"]
