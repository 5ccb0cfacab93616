"""What `gridloop run` does before serving: migrate, admin, calendar, bundled models, demo tenant."""

from sqlalchemy import select

from api.settings import Settings
from api.wiring import make_runtime, prepare_database
from engine import definitions, instances
from workflows.cases import Case


def test_a_fresh_database_gets_everything_a_newcomer_needs(db, monkeypatch, tmp_path):
    monkeypatch.setenv("GRIDLOOP_ADMIN_PASSWORD", "first-start-password")
    settings = Settings(database_url=db.url, secret_key="x", seed_demo=True, storage_dir=str(tmp_path))
    rt = make_runtime(settings, db=db)
    prepare_database(rt, settings)
    prepare_database(rt, settings)  # a restart changes nothing
    keys = {(d.key, d.version) for d in definitions.list_definitions(rt)}
    assert keys == {("alarm_review", 1), ("env_case", 1), ("graded_warning", 1)}
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
