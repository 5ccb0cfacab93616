"""POST /cases/{id}/urge names only who was really told — a notice queued on a channel they have —
and names everyone else with the reason; the view only parses, calls workflows.urging and answers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api import accounts, create_app
from api.settings import Settings
from engine import instances, tasks
from engine.models import Incident
from notifications.config import NotifySettings
from tests.api.conftest import PASSWORD, Caller
from tests.city import alarm, inside
from tests.notifications.test_pipeline import contact
from workflows.cases import file_alarm


@pytest.fixture
def world(city, db):
    rt, index = city
    app = create_app(Settings(database_url=db.url, secret_key="t", deploy_bundled=False,
                              notify=NotifySettings(quiet_hours="off")), runtime=rt)
    app.config["TESTING"] = True
    client = app.test_client()
    unit, lon, lat = inside(db, index)
    case = file_alarm(rt, index, alarm(rt.clock, "U-1", lon, lat), "system").case
    return rt, client, case, f"insp-{unit}"


def login(rt, client, username: str, roles: list[str], scope: str | None) -> Caller:
    accounts.create_user(rt.db, rt.clock.now(), username=username, password=PASSWORD, roles=roles, scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


def complete(rt, case, element: str, variables: dict) -> None:
    (task,) = [t for t in instances.open_tasks(rt, case.instance_id) if t.element_id == element]
    tasks.complete(rt, task.id, task.assignee or "city-sup", variables)


def test_the_answer_names_who_was_told_and_who_was_not_and_why(world, db):
    rt, client, case, inspector = world
    sup = login(rt, client, "city-sup", ["supervisor"], "3207")
    leader = login(rt, client, "leader", ["leader"], None)
    (review,) = instances.open_tasks(rt, case.instance_id)
    tasks.claim(rt, review.id, "city-sup")  # a login account with no staff record behind it
    body = leader.post(f"/api/v1/cases/{case.id}/urge", json={"note": "今日办结"}).get_json()
    assert body == {"caseId": case.id, "urged": ["review"], "notified": [], "notifications": [],
                    "notNotified": [{"user": "city-sup", "reason": "not on the staff list"}]}

    complete(rt, case, "review", {"review_result": "valid"})
    complete(rt, case, "dispatch", {})
    urged = sup.post(f"/api/v1/cases/{case.id}/urge", json={"note": "请尽快签收"})
    assert urged.status_code == 201
    assert urged.get_json()["notified"] == [] and urged.get_json()["notNotified"] == [
        {"user": inspector, "reason": "no channel"}]

    contact(db, inspector, wecom_id="wx-insp")
    body = sup.post(f"/api/v1/cases/{case.id}/urge", json={"note": "请尽快签收"}).get_json()
    assert body["urged"] == ["sign_for"] and body["notified"] == [inspector] and body["notNotified"] == []
    (notification,) = body["notifications"]
    shown = sup.get(f"/api/v1/notifications/{notification}").get_json()
    assert (shown["recipient"], shown["channel"], shown["status"]) == (inspector, "wechat_work", "queued")

    with rt.db.session() as s:  # the two who could not be told are incidents an operator sees, saying why
        messages = sorted(s.scalars(select(Incident.message).where(Incident.status == "open")))
    assert messages == [f"urge notice to {inspector}: no channel to reach the recipient",
                        "urge notice to nobody: no active member of staff is named 'city-sup'"]
    timeline = [e["action"] for e in sup.get(f"/api/v1/cases/{case.id}").get_json()["timeline"]]
    assert timeline.count("case.urged") == 3


def test_bad_input_names_the_field_and_changes_nothing(world):
    rt, client, case, _inspector = world
    sup = login(rt, client, "city-sup", ["supervisor"], "3207")
    far = login(rt, client, "far-sup", ["supervisor"], "3101")
    for body in ({}, {"note": ""}, {"note": "x" * 1001}, {"note": "x", "extra": 1}):
        answer = sup.post(f"/api/v1/cases/{case.id}/urge", json=body)
        assert answer.status_code == 422, body
        assert set(answer.get_json()["error"]["fields"]) <= {"note", "extra"}
    assert far.post(f"/api/v1/cases/{case.id}/urge", json={"note": "x"}).status_code == 404
    timeline = [e["action"] for e in sup.get(f"/api/v1/cases/{case.id}").get_json()["timeline"]]
    assert "case.urged" not in timeline
