"""What `gridloop run` does before serving: migrate, admin, calendar, bundled models, demo tenant."""

from api.settings import Settings
from api.wiring import make_runtime, prepare_database
from engine import definitions


def test_a_fresh_database_gets_everything_a_newcomer_needs(db, monkeypatch):
    monkeypatch.setenv("GRIDLOOP_ADMIN_PASSWORD", "first-start-password")
    settings = Settings(database_url=db.url, secret_key="x", seed_demo=True)
    rt = make_runtime(settings, db=db)
    prepare_database(rt, settings)
    prepare_database(rt, settings)  # a restart changes nothing
    keys = {(d.key, d.version) for d in definitions.list_definitions(rt)}
    assert keys == {("alarm_review", 1), ("env_case", 1)}
    from api import accounts

    assert accounts.authenticate(rt.db, "admin", "first-start-password") is not None
    from workflows.grids import GridIndex

    assert GridIndex.load(rt.db, "320700").city_code == "320700"
