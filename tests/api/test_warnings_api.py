"""Graded warnings over HTTP: raising (validated, within the caller's grid), reading within scope,
acknowledging signed in and through the signed link of the notice (replay a no-op, forgery 404),
the reminder at the deadline, and the per-level policy."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from api import accounts, create_app
from api.settings import Settings
from engine import definitions, instances, outbox, timers
from engine.queues import ManualJobQueue
from integrations.enforcement import EnforcementClient
from notifications.models import Notification
from tests.api.conftest import PASSWORD, Caller
from workflows.demo_seed import seed_demo
from workflows.install import install
from workflows.warning_models import WarningGroup
from workflows.warnings import ack_token
from workflows.working_time import CalendarService, seed_from_package

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "graded_warning.bpmn"
UNIT, TOWN, DISTRICT = "320706001000001", "320706001", "320706"
SECRET = "test-secret"


@pytest.fixture
def app(rt, clock):
    """The demo city with the warning model deployed (overrides conftest's bare app)."""
    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(rt.db, clock.now(), years=[2026])
    seed_demo(rt.db, clock.now() - timedelta(hours=1))
    install(rt, calendar=CalendarService(rt.db).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    application = create_app(Settings(database_url=rt.db.url, secret_key=SECRET, deploy_bundled=False), runtime=rt)
    application.config["TESTING"] = True
    return application


def login(rt, client, username, roles, scope) -> Caller:
    accounts.create_user(rt.db, rt.clock.now(), username=username, password=PASSWORD, roles=roles, scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


def run_jobs(rt):
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()


def body(**overrides):
    return {"tenant": "320700", "level": "II", "grid": UNIT, "station": "海州区新浦站", "pollutant": "SO2",
            "value": 812.5, "limit": 550, "unit": "mg/m³", "observedAt": "2026-09-29T08:55:00+08:00",
            "source": "MN-320706-01", **overrides}


def raised(users, **overrides) -> dict:
    r = users["system"].post("/api/v1/warnings", json=body(**overrides))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def links(rt, warning) -> dict[str, str]:
    """recipient → the path of the acknowledgement link in their notice."""
    ids = [g["processInstanceId"] for g in warning["groups"]]
    with rt.db.session() as s:
        rows = s.scalars(select(Notification).where(Notification.instance_id.in_(ids))).all()
    return {n.recipient: urlsplit(n.url).path for n in rows}


def test_a_system_raises_a_warning_and_its_recipients_are_told(rt, users):
    w = raised(users)
    assert (w["level"], w["levelLabel"], w["status"], w["createdBy"]) == (2, "II", "open", "system:enforcement")
    assert [(g["scope"], g["post"], g["ackMinutes"], g["status"]) for g in w["groups"]] == [
        (TOWN, "supervisor", 30, "open"), (DISTRICT, "supervisor", 30, "open")]
    assert all(g["ackDue"] == "2026-09-29T01:30:00+00:00" for g in w["groups"])
    run_jobs(rt)
    detail = users["sup"].get(f"/api/v1/warnings/{w['id']}").get_json()
    assert sorted((n["recipient"], n["attempt"]) for n in detail["notices"]) == [
        (f"sup-{DISTRICT}", 1), (f"sup-{TOWN}", 1)]
    assert [e["kind"] for e in detail["timeline"]] == ["raised"]
    assert "url" not in detail["notices"][0] and "text" not in detail["notices"][0]
    with rt.db.session() as s:
        n = s.scalar(select(Notification).where(Notification.recipient == f"sup-{TOWN}"))
    assert n.title == "【Ⅱ级（橙色）预警】海州区新浦站"
    assert "SO2 浓度 812.5mg/m³，超过限值 550mg/m³（2026-09-29 08:55）" in n.text
    assert n.url.startswith("http://localhost/api/v1/warnings/ack/")


@pytest.mark.parametrize("level", [1, "I", "Ⅰ", "1", " i "])
def test_levels_as_numbers_or_roman_numerals(users, level):
    assert raised(users, level=level)["level"] == 1


@pytest.mark.parametrize("change", [
    {"level": 5}, {"level": "V"}, {"level": True}, {"level": 1.5}, {"level": None}, {"level": ["I"]},
    {"station": ""}, {"observedAt": "2026-09-29T08:55:00"}, {"value": "lots"}, {"tenant": "3207"},
    {"grid": "999999999"}, {"unexpected": 1}, {"unit": "x" * 21},
])
def test_bad_input_is_422(users, change):
    r = users["system"].post("/api/v1/warnings", json=body(**change))
    assert r.status_code == 422, r.get_json()
    assert r.get_json()["error"]["code"] in ("validation_failed", "invalid_input")


def test_a_missing_field_is_422_and_names_it(users):
    data = body()
    del data["pollutant"]
    r = users["admin"].post("/api/v1/warnings", json=data)
    assert r.status_code == 422 and "pollutant" in r.get_json()["error"]["fields"]


def test_supervisors_raise_only_in_their_grid_and_inspectors_not_at_all(rt, client, users):
    other = login(rt, client, "sup_lianyun", ["supervisor"], "320703")
    assert other.post("/api/v1/warnings", json=body()).status_code == 403
    assert other.post("/api/v1/warnings", json=body(grid="320703001000001")).status_code == 201
    assert users["insp"].post("/api/v1/warnings", json=body()).status_code == 403
    assert users["leader"].post("/api/v1/warnings", json=body()).status_code == 403


def test_reading_is_scoped_to_the_callers_grid(rt, client, users):
    w = raised(users)
    other = login(rt, client, "sup_lianyun", ["supervisor"], "320703")
    for name in ("admin", "leader", "sup", "insp"):
        listed = users[name].get("/api/v1/warnings?tenant=320700").get_json()
        assert [x["id"] for x in listed["items"]] == [w["id"]], name
        assert users[name].get(f"/api/v1/warnings/{w['id']}").status_code == 200
    for caller in (other, users["insp_other"]):
        assert caller.get("/api/v1/warnings?tenant=320700").get_json()["total"] == 0
        assert caller.get(f"/api/v1/warnings/{w['id']}").status_code == 404
        assert caller.post(f"/api/v1/warnings/{w['id']}/ack", json={}).status_code == 404
    assert users["sup"].get("/api/v1/warnings?tenant=320700&level=IV").get_json()["total"] == 0
    assert users["sup"].get("/api/v1/warnings?tenant=320700&status=open&level=2").get_json()["total"] == 1
    assert users["sup"].get("/api/v1/warnings?tenant=320700&level=9").status_code == 422
    assert users["sup"].get("/api/v1/warnings").status_code == 422


def test_staff_acknowledge_the_groups_they_answer_for(rt, client, users):
    w = raised(users)
    town_sup = login(rt, client, "sup_town", ["supervisor"], TOWN)
    assert users["insp"].post(f"/api/v1/warnings/{w['id']}/ack", json={}).status_code == 403  # supervisors' groups
    r = town_sup.post(f"/api/v1/warnings/{w['id']}/ack", json={"note": "已赶赴现场"})
    town, district = w["groups"]
    assert r.status_code == 200 and r.get_json() == {"warningId": w["id"], "groups": {town["id"]: "acknowledged"},
                                                    "status": "open"}
    assert instances.get(rt, town["processInstanceId"]).status == "completed"
    r = users["sup"].post(f"/api/v1/warnings/{w['id']}/ack", json={})  # the city's supervisor answers for both
    assert r.get_json()["groups"] == {town["id"]: "duplicate", district["id"]: "acknowledged"}
    detail = users["sup"].get(f"/api/v1/warnings/{w['id']}").get_json()
    assert (detail["status"], detail["acknowledgedBy"]) == ("acknowledged", "sup")
    assert [(g["status"], g["acknowledgedBy"], g["via"], g["ackDue"]) for g in detail["groups"]] == [
        ("acknowledged", "sup_town", "api", None), ("acknowledged", "sup", "api", None)]
    assert [(e["kind"], e["actor"]) for e in detail["timeline"]][1:] == [
        ("acknowledged", "sup_town"), ("acknowledged", "sup")]
    assert detail["timeline"][1]["detail"]["note"] == "已赶赴现场"
    assert users["sup"].post(f"/api/v1/warnings/{w['id']}/ack", json={"group": "0" * 32}).status_code == 404
    assert users["sup"].post(f"/api/v1/warnings/{w['id']}/ack", json={"note": ""}).status_code == 422


def test_the_link_in_the_notice_acknowledges_without_login_once(rt, users, client):
    w = raised(users)
    run_jobs(rt)
    path = links(rt, w)[f"sup-{TOWN}"]
    shown = client.get(path)  # opening the link (or a chat app's preview of it) acknowledges nothing
    assert shown.status_code == 200 and shown.get_json()["status"] == "open"
    assert shown.get_json()["acknowledge"] == {"method": "POST", "url": path}
    page = client.get(path, headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'method="post"' in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    town = w["groups"][0]
    assert instances.get(rt, town["processInstanceId"]).status == "running"
    first = client.post(path)
    assert first.status_code == 200 and first.get_json() == {
        "warningId": w["id"], "group": town["id"], "status": "acknowledged", "duplicate": False}
    assert instances.get(rt, town["processInstanceId"]).status == "completed"
    replay = client.post(path)
    assert replay.status_code == 200 and replay.get_json()["duplicate"] is True
    detail = users["admin"].get(f"/api/v1/warnings/{w['id']}").get_json()
    assert [(g["status"], g["acknowledgedBy"], g["via"]) for g in detail["groups"]] == [
        ("acknowledged", "link", "link"), ("open", None, None)]
    assert [e["kind"] for e in detail["timeline"]] == ["raised", "acknowledged"]  # once, despite the replay
    html = client.post(links(rt, w)[f"sup-{DISTRICT}"], headers={"Accept": "text/html"})
    assert html.status_code == 200 and "已确认" in html.get_data(as_text=True)
    assert users["admin"].get(f"/api/v1/warnings/{w['id']}").get_json()["status"] == "acknowledged"


def test_a_forged_link_is_404(rt, users, client):
    w = raised(users)
    group_id = w["groups"][0]["id"]
    good = ack_token(SECRET, group_id)
    forged = [good[:-2] + ("AA" if good[-2:] != "AA" else "BB"), ack_token("another-secret", group_id), group_id,
              f"{'0' * 32}.{good.split('.')[1]}", "x" * 300, "..", ack_token(SECRET, "0" * 32)]
    for token in forged:
        for method in ("get", "post"):
            r = getattr(client, method)(f"/api/v1/warnings/ack/{token}")
            assert r.status_code == 404, (token, method)
    with rt.db.session() as s:
        assert s.get(WarningGroup, group_id).status == "open"


def test_unacknowledged_it_is_told_again_then_escalated_and_a_late_link_is_409(rt, clock, users, client):
    w = raised(users, level="IV")
    run_jobs(rt)
    path = links(rt, w)[f"sup-{TOWN}"]

    def tick(minutes):
        clock.advance(timedelta(minutes=minutes))
        timers.fire_due(rt)
        run_jobs(rt)
        return users["sup"].get(f"/api/v1/warnings/{w['id']}").get_json()

    detail = tick(121)
    assert [(n["recipient"], n["attempt"]) for n in detail["notices"]] == [(f"sup-{TOWN}", 1), (f"sup-{TOWN}", 2)]
    detail = tick(121)
    assert (detail["status"], detail["groups"][0]["currentScope"]) == ("escalated", DISTRICT)
    assert (detail["notices"][-1]["recipient"], detail["notices"][-1]["escalation"]) == (f"sup-{DISTRICT}", 1)
    assert [e["kind"] for e in detail["timeline"]] == ["raised", "renotified", "escalated"]
    tick(121)
    detail = tick(121)
    assert detail["status"] == "expired" and detail["groups"][0]["status"] == "expired"
    late = client.post(path)
    assert late.status_code == 409 and late.get_json()["error"]["code"] == "conflict"
    assert users["sup"].post(f"/api/v1/warnings/{w['id']}/ack", json={}).status_code == 409
    assert client.get(path).get_json()["status"] == "expired"


def test_an_idempotency_key_raises_one_warning(users):
    first = users["system"].post("/api/v1/warnings", json=body(), headers={"Idempotency-Key": "w-1"})
    again = users["system"].post("/api/v1/warnings", json=body(), headers={"Idempotency-Key": "w-1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]
    assert users["admin"].get("/api/v1/warnings?tenant=320700").get_json()["total"] == 1


def test_policies_decide_who_is_told_and_are_admin_only(users):
    row = {"tenant": "320700", "level": "III", "gridPrefix": DISTRICT, "notifyPost": "inspector", "ackMinutes": 10,
           "renotify": False}
    assert users["sup"].post("/api/v1/warning-policies", json=row).status_code == 403
    assert users["admin"].post("/api/v1/warning-policies", json={**row, "notifyPost": "mayor"}).status_code == 422
    assert users["admin"].post("/api/v1/warning-policies", json={**row, "ackMinutes": 0}).status_code == 422
    created = users["admin"].post("/api/v1/warning-policies", json=row)
    assert created.status_code == 201
    policy = created.get_json()
    assert (policy["level"], policy["notifyLevel"], policy["renotify"]) == (3, "grid", False)
    assert [p["id"] for p in users["sup"].get("/api/v1/warning-policies?tenant=320700").get_json()] == [policy["id"]]
    w = raised(users, level=3)
    assert [(g["post"], g["recipient"], g["ackMinutes"], g["policy"]) for g in w["groups"]] == [
        ("inspector", f"insp-{UNIT}", 10, f"policy {policy['id']}")]
    assert users["admin"]._call("delete", f"/api/v1/warning-policies/{policy['id']}").status_code == 204
    assert users["admin"]._call("delete", f"/api/v1/warning-policies/{policy['id']}").status_code == 404
    assert raised(users, level=3)["groups"][0]["post"] == "supervisor"  # back to the defaults
