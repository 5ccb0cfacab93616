"""督办 is one unit of work: the urge on the case's timeline and the notices to the people working
on it commit together or not at all — a notice the database refuses leaves no urge behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from engine import audit, instances
from engine.errors import Conflict, NotFound
from engine.models import Incident, OutboxEntry
from notifications.models import Notification
from notifications.quiet_hours import QuietHours
from tests.city import inside
from tests.notifications.test_pipeline import contact, dispatched
from workflows.people import staff_viewer
from workflows.urging import NO_CHANNEL, NotNotified, urge_case

LEADER = staff_viewer("leader", frozenset({"leader"}), None)
QUIET_OFF = QuietHours(None)
REFUSED = "+8600000000000"  # a number the database refuses (see `refusing_database`)


@pytest.fixture
def signing_for(city, db):
    """A dispatched case: its sign-for task is the routed inspector's."""
    rt, index = city
    unit, lon, lat = inside(db, index)
    return rt, dispatched(rt, index, lon, lat), f"insp-{unit}"


@pytest.fixture
def refusing_database(db) -> Iterator[None]:
    """A constraint of the database (not our code) that refuses any notice to REFUSED."""
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text(f"ALTER TABLE notification ADD CONSTRAINT test_refused CHECK (address <> '{REFUSED}')"))
        else:
            conn.execute(text("CREATE TRIGGER test_refused BEFORE INSERT ON notification "
                              f"WHEN NEW.address = '{REFUSED}' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE notification DROP CONSTRAINT test_refused" if db.is_postgres
                              else "DROP TRIGGER test_refused"))


def urge(rt, case_id: str, viewer=LEADER):
    return urge_case(rt, viewer, case_id, "群众反映强烈，今日办结", quiet=QUIET_OFF)


def urges_on_timeline(rt, case) -> int:
    return sum(e.action == "case.urged" for e in instances.history(rt, case.instance_id))


def test_an_urge_and_its_notice_commit_together(signing_for, db):
    rt, case, inspector = signing_for
    contact(db, inspector, phone="+8613800000001")
    urged = urge(rt, case.id)
    assert (urged.tasks, urged.notified, urged.not_notified) == (["sign_for"], [inspector], [])
    with db.session() as s:
        (n,) = s.scalars(select(Notification).where(Notification.kind == "urge")).all()
        jobs = s.scalars(select(OutboxEntry.payload).where(OutboxEntry.job == "notify.deliver")).all()
    assert urged.notifications == [n.id] and (n.channel, n.address, n.status) == ("sms", "+8613800000001", "queued")
    assert [j["notification_id"] for j in jobs] == [n.id]
    assert urges_on_timeline(rt, case) == 1
    with db.session() as s:
        assert audit.verify(s, rt.audit_keys).ok


def test_someone_without_a_channel_is_named_as_not_notified_and_is_an_incident(signing_for, db):
    rt, case, inspector = signing_for
    urged = urge(rt, case.id)
    assert urged.notified == [] and urged.notifications == []
    assert urged.not_notified == [NotNotified(inspector, NO_CHANNEL)]
    with db.session() as s:
        (n,) = s.scalars(select(Notification).where(Notification.kind == "urge")).all()
        (incident,) = s.scalars(select(Incident).where(Incident.status == "open")).all()
    assert (n.channel, n.status) == ("none", "failed") and incident.payload["payload"] == {"notification_id": n.id}
    assert urges_on_timeline(rt, case) == 1  # the urge happened; that it reached nobody is said, not hidden


def test_a_notice_the_database_refuses_leaves_no_urge_on_the_timeline(signing_for, db, refusing_database):
    rt, case, inspector = signing_for
    contact(db, inspector, phone=REFUSED)
    with pytest.raises(IntegrityError):
        urge(rt, case.id)
    assert urges_on_timeline(rt, case) == 0
    with db.session() as s:
        assert s.scalars(select(Notification).where(Notification.kind == "urge")).all() == []
        assert audit.verify(s, rt.audit_keys).ok  # the instance's chain head did not move either
    contact(db, inspector, phone="+8613800000001")
    assert urge(rt, case.id).notified == [inspector] and urges_on_timeline(rt, case) == 1


def test_a_case_outside_the_viewers_grid_is_not_found_and_a_closed_one_is_a_conflict(signing_for, db):
    rt, case, _inspector = signing_for
    elsewhere = staff_viewer("sup-far", frozenset({"supervisor"}), "310101")
    no_grid = staff_viewer("sup-none", frozenset({"supervisor"}), None)
    for viewer in (elsewhere, no_grid):
        with pytest.raises(NotFound):
            urge(rt, case.id, viewer)
    with pytest.raises(NotFound):
        urge(rt, "C-NO-SUCH-CASE")
    instances.cancel(rt, case.instance_id, "admin", "test")
    with pytest.raises(Conflict, match="closed"):
        urge(rt, case.id)
    assert urges_on_timeline(rt, case) == 0
