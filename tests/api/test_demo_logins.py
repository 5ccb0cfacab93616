"""The demo tenant's logins: a supervisor, an inspector and a leader of 海州区, made once on the first
start with generated passwords shown once (the supervisor and inspector are the roster's own people),
left alone on a restart; `gridloop reset-password` gives a new one."""

import logging

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from api import accounts
from api.cli import main
from api.demo_logins import ensure_demo_logins
from workflows.demo_seed import seed_demo
from workflows.people import Person


@pytest.fixture
def demo(rt):
    return seed_demo(rt.db, rt.clock.now(), days_on_duty=1).tenant


def test_demo_logins_are_made_once_linked_to_the_roster_and_can_log_in(rt, demo, app, client):
    made = ensure_demo_logins(rt, demo)
    assert [(m.username.split("-")[0], m.role) for m in made] == [
        ("leader", "leader"), ("sup", "supervisor"), ("insp", "inspector")]
    leader, sup, insp = made
    assert sup.username == "sup-320706" and sup.scope == "320706" and leader.scope == "320706"
    assert insp.scope.startswith("320706") and len(insp.scope) == 15  # a unit of the district
    with rt.db.session() as s:
        linked = {p.username: p.post for p in s.scalars(select(Person).where(
            Person.username.in_([sup.username, insp.username])))}
    assert linked == {sup.username: "supervisor", insp.username: "inspector"}
    for m in made:
        r = client.post("/api/v1/auth/token", json={"username": m.username, "password": m.password})
        assert r.status_code == 200 and r.get_json()["roles"] == [m.role]
    assert ensure_demo_logins(rt, demo) == []  # a restart: nothing new, nothing shown again
    assert ensure_demo_logins(rt, "999900") == []  # no such district in that tenant


@pytest.fixture
def cli(rt, tmp_path, monkeypatch):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.chdir(tmp_path)
    env = {"GRIDLOOP_DATABASE_URL": rt.db.url, "GRIDLOOP_SECRET_KEY": "test", "USER": "ops",
           "GRIDLOOP_LOG_LEVEL": "WARNING"}
    yield lambda *args, **extra: CliRunner().invoke(main, list(args), env={**env, **extra})
    root.handlers[:], root.level = handlers, level


def test_reset_password_on_the_command_line(rt, demo, cli):
    (leader, *_) = ensure_demo_logins(rt, demo)
    generated = cli("reset-password", leader.username, "--generate")
    assert generated.exit_code == 0, generated.output
    new = generated.output.split(": ")[1].split(" ")[0]
    assert accounts.authenticate(rt.db, leader.username, leader.password) is None
    assert accounts.authenticate(rt.db, leader.username, new) is not None
    chosen = cli("reset-password", leader.username, GRIDLOOP_NEW_USER_PASSWORD="demo-leader-2026")
    assert chosen.exit_code == 0 and accounts.authenticate(rt.db, leader.username, "demo-leader-2026")
    weak = cli("reset-password", leader.username, GRIDLOOP_NEW_USER_PASSWORD="password")
    assert weak.exit_code == 2 and "two kinds" in weak.output
    assert cli("reset-password", "nobody", "--generate").exit_code == 2


def test_generated_passwords_pass_the_policy_and_a_weak_admin_password_is_refused_by_name(rt):
    from api.settings import Settings
    from api.wiring import ensure_admin

    assert accounts.password_problem("x", "abcdefghijklmnop") is not None  # letters only: token_urlsafe may give that
    assert all(accounts.password_problem("admin", accounts.generate_password()) is None for _ in range(500))
    with pytest.raises(accounts.AccountError, match="GRIDLOOP_ADMIN_PASSWORD"):
        ensure_admin(rt, Settings(admin_password="onlyletters").admin_password)
    assert accounts.find_user(rt.db, "admin") is None
    ensure_admin(rt)
    assert accounts.find_user(rt.db, "admin").active


def test_the_district_leader_sees_the_district_and_a_leader_without_scope_the_city(rt, demo, app, client):
    from workflows.grids import Grid

    leader, *_ = ensure_demo_logins(rt, demo)
    accounts.create_user(rt.db, rt.clock.now(), username="city-leader", password="Leader-pass-1",
                         roles=["leader"], scope=None, hash_method="pbkdf2:sha256:1000")

    def grids(username, password):
        token = client.post("/api/v1/auth/token", json={"username": username, "password": password}).get_json()
        r = client.get(f"/api/v1/grids/geojson?tenant={demo}&level=district",
                       headers={"Authorization": f"Bearer {token['access_token']}"})
        assert r.status_code == 200, r.get_json()
        return {f["properties"]["code"] for f in r.get_json()["features"]}

    with rt.db.session() as s:
        districts = set(s.scalars(select(Grid.code).where(Grid.tenant == demo, Grid.level == "district")))
    assert len(districts) > 1
    assert grids("city-leader", "Leader-pass-1") == districts
    assert grids(leader.username, leader.password) == {"320706"}
