"""What `gridloop run` does before serving: migrate, admin, calendar, bundled models, demo tenant."""

from sqlalchemy import select

from api.settings import Settings
from api.wiring import make_runtime, prepare_database
from engine import definitions, instances
from workflows.cases import Case


def test_a_fresh_database_gets_everything_a_newcomer_needs(db, tmp_path):
    settings = Settings(database_url=db.url, secret_key="x", seed_demo=True, storage_dir=str(tmp_path),
                        admin_password="first-start-password")
    rt = make_runtime(settings, db=db)
    prepare_database(rt, settings)
    prepare_database(rt, settings)  # a restart changes nothing
    keys = {(d.key, d.version) for d in definitions.list_definitions(rt)}
    assert keys == {("alarm_review", 1), ("env_case", 1), ("graded_warning", 1), ("patrol_round", 1),
                    ("patrol_visit", 1)}
    from engine import decisions

    assert [(d.key, d.version) for d in decisions.list_definitions(rt)] == [("alarm_severity", 1)]
    from api import accounts

    assert accounts.authenticate(rt.db, "admin", "first-start-password") is not None
    from workflows.grids import GridIndex

    assert GridIndex.load(rt.db, "320700").city_code == "320700"
    with rt.db.session() as s:
        cases = s.scalars(select(Case).order_by(Case.external_id)).all()
        stages = {c.external_id: sorted(t.element_id for t in instances.open_tasks(rt, c.instance_id))
                  for c in cases}
    assert stages == {"DEMO-1": ["review"], "DEMO-2": ["review"], "DEMO-3": ["sign_for"], "DEMO-4": ["handle"],
                      "DEMO-5": ["verify"], "DEMO-6": [], "DEMO-7": []}  # one filing only, despite the restart
    assert {c.external_id: c.outcome for c in cases if c.status == "closed"} == {"DEMO-6": "closed",
                                                                                 "DEMO-7": "invalid"}
    assert len(list(tmp_path.rglob("*.png"))) == 1  # the demo photo, stored once (content-addressed)


def test_the_bundled_alarm_review_classifies_with_the_bundled_decision_table(db, tmp_path):
    """bpmn/alarm_severity.dmn is deployed before the models, and alarm_review's business rule task
    gives what the operation alarm.classify gave (which stays registered for older versions)."""
    from datetime import UTC, datetime

    from engine import decisions

    settings = Settings(database_url=db.url, secret_key="x", seed_demo=True, storage_dir=str(tmp_path))
    rt = make_runtime(settings, db=db)
    prepare_database(rt, settings)
    assert [(d.key, d.version) for d in decisions.list_definitions(rt)] == [("alarm_severity", 1)]
    assert "alarm.classify" in rt.registry
    due = datetime(2030, 1, 1, tzinfo=UTC).isoformat()
    for value, limit, level, ratio in [(42, 20, "urgent", 2.1), (40, 20, "urgent", 2.0), (30, 20, "high", 1.5),
                                       (29.9, 20, "normal", 1.495), (5, 0, "normal", 0.0)]:
        started = instances.start(rt, actor="system", key="alarm_review", scope="320700",
                                  variables={"value": value, "limit": limit, "grid": "320700", "handle_due": due})
        assert instances.variables(rt, started.instance.id)["severity"] == {"level": level, "ratio": ratio}


def test_the_schedulers_chores_purge_old_readings_hourly_and_raise_offline_alarms(db, clock):
    from datetime import timedelta
    from decimal import Decimal

    from api.wiring import chores
    from engine.models import OutboxEntry
    from workflows.readings import ReadingRow, StoredReading, store_readings
    from workflows.sources import MonitoringSource

    settings = Settings(database_url=db.url, secret_key="x", reading_retention_days=30)
    rt = make_runtime(settings, db=db, clock=clock)
    now = clock.now()
    with db.transaction() as s:
        s.add(MonitoringSource(mn="MN-1", tenant="320700", kind="station", name="站", password="p",
                               offline_after_s=600, last_seen_at=now - timedelta(hours=1), created_at=now))
        s.flush()
        store_readings(s, [ReadingRow(mn="MN-1", pollutant="a21026", cn="2051", kind="Avg", value=Decimal(1),
                                      flag="N", data_time=at, received_at=at)
                           for at in (now - timedelta(days=31), now - timedelta(days=1))])
    idempotency_purge, offline, old_readings, _sessions, _audit = chores(rt, settings)
    assert offline() == 1 and old_readings() == 1
    assert old_readings() == 0  # not again within the hour
    with db.session() as s:
        assert [r.data_time for r in s.scalars(select(StoredReading))] == [now - timedelta(days=1)]
        assert s.scalar(select(OutboxEntry.job)) == "alarm.file"
    idempotency_purge()


def test_the_schedulers_chores_forget_login_sessions_whose_refresh_token_expired(db, clock):
    from datetime import timedelta

    from api.accounts import LoginSession, open_session, revoke_sessions
    from api.wiring import chores

    settings = Settings(database_url=db.url, secret_key="x")
    rt = make_runtime(settings, db=db, clock=clock)
    ended = open_session(db, "old", clock.now(), timedelta(days=1))
    revoked = open_session(db, "gone", clock.now(), timedelta(days=30))
    with db.transaction() as s:
        revoke_sessions(s, "gone", clock.now())
    clock.advance(timedelta(days=2))
    current = open_session(db, "new", clock.now(), timedelta(days=1))
    *_, sessions, _audit = chores(rt, settings)
    assert sessions() == 1
    with db.session() as s:
        assert sorted(s.scalars(select(LoginSession.id))) == sorted([revoked, current])
    assert ended not in (revoked, current)


def test_the_schedulers_chores_sign_an_audit_checkpoint_at_once_then_every_interval(db, clock):
    from api.wiring import chores
    from engine import audit
    from engine.models import AuditCheckpoint

    settings = Settings(database_url=db.url, secret_key="x", audit_checkpoint_interval_s=300)
    rt = make_runtime(settings, db=db, clock=clock)
    with db.transaction() as s:
        audit.append_system(rt, s, [audit.AuditDraft(action="user.changed", actor="admin", at=clock.now())])
    *_, checkpoint = chores(rt, settings)
    assert checkpoint() == 1
    with db.transaction() as s:
        audit.append_system(rt, s, [audit.AuditDraft(action="user.changed", actor="admin", at=clock.now())])
    assert checkpoint() == 0  # not again within the interval
    with db.session() as s:
        assert [(c.seq, c.taken_by, set(c.heads)) for c in s.scalars(select(AuditCheckpoint))] == [
            (1, "scheduler", {"system"})]
        assert audit.verify(s, rt.audit_keys).ok
    never = Settings(database_url=db.url, secret_key="x", audit_checkpoint_interval_s=0)
    *_, off = chores(make_runtime(never, db=db, clock=clock), never)
    assert off() == 0


def test_the_embedded_database_file_is_readable_by_its_owner_alone(tmp_path):
    import stat

    from sqlalchemy import text

    from api.wiring import make_database

    path = tmp_path / "var" / "gridloop.db"
    db = make_database(Settings(database_url=f"sqlite:///{path}", secret_key="x"))
    try:
        with db.transaction() as s:
            s.execute(text("PRAGMA journal_mode=WAL"))
            s.execute(text("CREATE TABLE t (x INTEGER)"))
            s.execute(text("INSERT INTO t VALUES (1)"))
        files = [p for p in path.parent.iterdir() if p.name.startswith("gridloop.db")]
        assert path in files
        assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == dict.fromkeys(
            (p.name for p in files), 0o600)  # the -wal and -shm files take the database's mode
    finally:
        db.dispose()
    path.chmod(0o640)  # an operator's own choice for an existing file is kept
    make_database(Settings(database_url=f"sqlite:///{path}", secret_key="x")).dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
