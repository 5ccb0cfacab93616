"""Users over REST and the end of a login: admins create, change, disable, enable and reset users,
every field checked and named; a disabled user's tokens stop at once and they cannot log in; logout
ends the session's access and refresh tokens; the last admin stays; every change is audited."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from engine.audit import SYSTEM_CHAIN, verify_snapshot
from engine.models import AuditEvent
from tests.api.conftest import Caller
from workflows.grids import Grid
from workflows.people import Person

NOW = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)
CITY, HAIZHOU, TOWN, GANYU_TOWN = "320700", "320706", "320706001", "320721001"


@pytest.fixture
def city(rt, clock, users):
    clock.set(NOW)
    with rt.db.transaction() as s:
        s.add_all(Grid(tenant=CITY, code=code, name=code, level=level, parent_code=parent,
                       valid_from=NOW - timedelta(days=30), geometry="{}", min_lon=0, min_lat=0, max_lon=1, max_lat=1)
                  for code, level, parent in [(CITY, "city", None), (HAIZHOU, "district", CITY),
                                              (TOWN, "town", HAIZHOU), (GANYU_TOWN, "town", CITY)])
        people = [Person(tenant=CITY, username=None, name="王芳", post="inspector", grid_code=TOWN),
                  Person(tenant=CITY, username="sup-320706", name="海州区值班长", post="supervisor",
                         grid_code=HAIZHOU),
                  Person(tenant=CITY, username=None, name="赣榆巡查员", post="inspector", grid_code=GANYU_TOWN)]
        s.add_all(people)
        s.flush()
        return {p.name: p.id for p in people}


def new_user(**extra):
    return {"username": "wangfang", "displayName": "王芳", "roles": ["inspector"], "scope": TOWN, **extra}


def login(client, username, password):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def caller(client, username, password) -> tuple[Caller, str]:
    tokens = login(client, username, password).get_json()
    return Caller(client, {"Authorization": f"Bearer {tokens['access_token']}"}, username), tokens["refresh_token"]


def audit_actions(rt) -> list[str]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.chain == SYSTEM_CHAIN,
                                                              AuditEvent.action.startswith("user."))
                              .order_by(AuditEvent.id)))


def user_count(rt) -> int:
    from api.accounts import User

    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(User)) or 0


def test_create_with_a_generated_password_shown_once_and_the_person_linked(rt, users, city, client):
    admin = users["admin"]
    r = admin.post("/api/v1/users", json=new_user(personId=city["王芳"]))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["username"] == "wangfang" and body["roles"] == ["inspector"] and body["scope"] == TOWN
    assert body["person"] == {"id": city["王芳"], "name": "王芳", "post": "inspector", "grid": TOWN, "tenant": CITY}
    assert body["active"] is True and len(body["password"]) >= 12
    listed = admin.get(f"/api/v1/users/{body['id']}").get_json()
    assert "password" not in listed and listed["person"]["id"] == city["王芳"]
    me = caller(client, "wangfang", body["password"])[0].get("/api/v1/me").get_json()
    assert me["roles"] == ["inspector"] and me["scope"] == TOWN
    with rt.db.session() as s:
        assert s.get(Person, city["王芳"]).username == "wangfang"
    given = admin.post("/api/v1/users", json=new_user(username="li", password="li-2026-password", personId=None))
    assert given.status_code == 201 and given.get_json()["password"] is None
    assert login(client, "li", "li-2026-password").status_code == 200
    assert audit_actions(rt) == ["user.created", "user.created"]
    assert verify_snapshot(rt.db, rt.audit_keys).ok


@pytest.mark.parametrize("body, field", [
    (new_user(roles=["boss"]), "roles"),
    (new_user(roles=[]), "roles"),
    (new_user(roles=["system"]), "roles"),
    (new_user(scope="3207"), "scope"),  # a prefix, not a grid
    (new_user(scope="999999"), "scope"),
    (new_user(personId=99999), "personId"),
    (new_user(personId="1"), "personId"),
    (new_user(username="a"), "username"),
    (new_user(username="no spaces"), "username"),
    (new_user(password="short1"), "password"),
    (new_user(password="onlyletters"), "password"),
    (new_user(password="wangfang"), "password"),
    (new_user(displayName=""), "displayName"),
    ({**new_user(), "admin": True}, "admin"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_made(rt, users, city, body, field):
    before = user_count(rt)
    r = users["admin"].post("/api/v1/users", json=body)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"], r.get_json()
    assert user_count(rt) == before
    assert audit_actions(rt) == []


def test_a_person_outside_the_scope_or_known_by_another_name_is_refused(rt, users, city):
    admin = users["admin"]
    outside = admin.post("/api/v1/users", json=new_user(personId=city["赣榆巡查员"]))
    assert outside.status_code == 422 and "personId" in outside.get_json()["error"]["fields"]
    renamed = admin.post("/api/v1/users", json=new_user(username="zhang", roles=["supervisor"], scope=HAIZHOU,
                                                        personId=city["海州区值班长"]))
    assert renamed.status_code == 409 and "sup-320706" in renamed.get_json()["error"]["message"]
    same = admin.post("/api/v1/users", json=new_user(username="sup-320706", roles=["supervisor"], scope=HAIZHOU,
                                                     personId=city["海州区值班长"]))
    assert same.status_code == 201 and same.get_json()["person"]["name"] == "海州区值班长"


def test_only_admins_manage_users(users, city):
    for name in ("sup", "insp", "leader", "system"):
        assert users[name].get("/api/v1/users").status_code == 403
        assert users[name].post("/api/v1/users", json=new_user()).status_code == 403
    assert users["anonymous"].get("/api/v1/users").status_code == 401


def test_duplicate_username_and_double_submit_are_409_and_make_one_user(rt, users, city):
    admin = users["admin"]
    first = admin.post("/api/v1/users", json=new_user(password="first-pass-1"))
    again = admin.post("/api/v1/users", json=new_user(password="first-pass-1"))
    other_case = admin.post("/api/v1/users", json=new_user(username="WangFang", password="first-pass-1"))
    assert first.status_code == 201
    assert again.status_code == 409 and "username" in again.get_json()["error"]["fields"]
    assert other_case.status_code == 409
    assert admin.get("/api/v1/users?q=wangf").get_json()["total"] == 1
    assert audit_actions(rt) == ["user.created"]


def test_list_filters_by_role_active_and_text(users, city):
    admin = users["admin"]
    made = admin.post("/api/v1/users", json=new_user(password="pass-word-1")).get_json()
    admin.post(f"/api/v1/users/{made['id']}/disable")
    names = lambda q: [u["username"] for u in admin.get(f"/api/v1/users?{q}").get_json()["items"]]  # noqa: E731
    assert names("role=inspector") == ["insp", "insp_other", "wangfang"]
    assert names("role=inspector&active=false") == ["wangfang"]
    assert names("active=true&q=INSP") == ["insp", "insp_other"]
    assert names("q=王芳") == ["wangfang"]
    assert admin.get("/api/v1/users?role=boss").status_code == 422
    assert admin.get("/api/v1/users?limit=0").status_code == 422


def test_patch_changes_roles_scope_person_and_refuses_bad_values(rt, users, city):
    admin = users["admin"]
    made = admin.post("/api/v1/users", json=new_user(password="pass-word-1")).get_json()
    path = f"/api/v1/users/{made['id']}"
    r = admin._call("patch", path, json={"roles": ["inspector", "leader"], "scope": HAIZHOU,
                                         "personId": city["王芳"], "displayName": "王芳芳"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["roles"] == ["inspector", "leader"] and r.get_json()["person"]["id"] == city["王芳"]
    for body, field in (({"roles": ["root"]}, "roles"), ({"scope": "nowhere"}, "scope"),
                        ({"personId": 424242}, "personId"), ({}, "_schema"), ({"username": "x"}, "username")):
        bad = admin._call("patch", path, json=body)
        assert bad.status_code == 422 and field in bad.get_json()["error"]["fields"], (body, bad.get_json())
    unlinked = admin._call("patch", path, json={"personId": None}).get_json()
    assert unlinked["person"] is None
    with rt.db.session() as s:
        assert s.get(Person, city["王芳"]).username is None
    assert admin._call("patch", "/api/v1/users/999999", json={"roles": ["leader"]}).status_code == 404
    assert audit_actions(rt) == ["user.created", "user.changed", "user.changed"]


def test_disabled_user_cannot_log_in_refresh_or_use_their_token_until_enabled(rt, users, city, client):
    admin = users["admin"]
    made = admin.post("/api/v1/users", json=new_user(password="pass-word-1")).get_json()
    wang, refresh = caller(client, "wangfang", "pass-word-1")
    assert wang.get("/api/v1/me").status_code == 200
    assert admin.post(f"/api/v1/users/{made['id']}/disable").get_json()["active"] is False
    assert wang.get("/api/v1/me").status_code == 401  # at once, not when the access token runs out
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    assert login(client, "wangfang", "pass-word-1").status_code == 401
    assert admin.post(f"/api/v1/users/{made['id']}/disable").status_code == 200  # a repeat is a no-op
    assert admin.post(f"/api/v1/users/{made['id']}/enable").get_json()["active"] is True
    assert wang.get("/api/v1/me").status_code == 401  # the old session stays ended
    assert login(client, "wangfang", "pass-word-1").status_code == 200
    assert audit_actions(rt) == ["user.created", "user.disabled", "user.enabled"]


def test_an_admin_cannot_disable_themselves_or_remove_the_last_admin(rt, users, city, client):
    admin = users["admin"]
    ids = {u["username"]: u["id"] for u in admin.get("/api/v1/users?role=admin").get_json()["items"]}
    me = ids["admin"]
    r = admin.post(f"/api/v1/users/{me}/disable")
    assert r.status_code == 409 and "yourself" in r.get_json()["error"]["message"]
    last = admin._call("patch", f"/api/v1/users/{me}", json={"roles": ["leader"]})
    assert last.status_code == 409 and "last active admin" in last.get_json()["error"]["message"]
    second = admin.post("/api/v1/users", json=new_user(username="root2", roles=["admin"], scope=None,
                                                       password="second-admin-1")).get_json()
    root2 = caller(client, "root2", "second-admin-1")[0]
    assert admin._call("patch", f"/api/v1/users/{me}", json={"roles": ["admin", "leader"]}).status_code == 200
    assert root2.post(f"/api/v1/users/{me}/disable").status_code == 200  # another admin is left: root2
    assert root2._call("patch", f"/api/v1/users/{second['id']}", json={"roles": ["leader"]}).status_code == 409
    assert admin.get("/api/v1/users").status_code == 401  # disabled: its token stopped


def test_reset_password_answers_a_new_one_once_or_takes_one_and_ends_sessions(rt, users, city, client):
    admin = users["admin"]
    made = admin.post("/api/v1/users", json=new_user(password="pass-word-1")).get_json()
    wang, refresh = caller(client, "wangfang", "pass-word-1")
    r = admin.post(f"/api/v1/users/{made['id']}/reset-password")
    assert r.status_code == 200 and r.get_json()["password"]
    assert wang.get("/api/v1/me").status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": refresh}).status_code == 401
    assert login(client, "wangfang", "pass-word-1").status_code == 401
    assert login(client, "wangfang", r.get_json()["password"]).status_code == 200
    weak = admin.post(f"/api/v1/users/{made['id']}/reset-password", json={"password": "12345678"})
    assert weak.status_code == 422 and "password" in weak.get_json()["error"]["fields"]
    chosen = admin.post(f"/api/v1/users/{made['id']}/reset-password", json={"password": "new-pass-2026"})
    assert chosen.status_code == 200 and chosen.get_json()["password"] is None
    assert login(client, "wangfang", "new-pass-2026").status_code == 200
    assert admin.post("/api/v1/users/999999/reset-password").status_code == 404
    assert audit_actions(rt) == ["user.created", "user.password_reset", "user.password_reset"]


def test_logout_ends_this_session_only_then_refresh_and_access_fail(rt, users, city, client):
    admin = users["admin"]
    admin.post("/api/v1/users", json=new_user(password="pass-word-1"))
    desk, desk_refresh = caller(client, "wangfang", "pass-word-1")
    phone, phone_refresh = caller(client, "wangfang", "pass-word-1")
    r = desk.post("/api/v1/auth/logout")
    assert r.status_code == 200 and r.get_json() == {"sessionsEnded": 1}
    assert desk.get("/api/v1/me").status_code == 401
    refused = client.post("/api/v1/auth/refresh", json={"refresh_token": desk_refresh})
    assert refused.status_code == 401 and "session has ended" in refused.get_json()["error"]["message"]
    assert desk.post("/api/v1/auth/logout").status_code == 401  # a second logout: already over
    assert phone.get("/api/v1/me").status_code == 200  # the phone stays logged in
    renewed = client.post("/api/v1/auth/refresh", json={"refresh_token": phone_refresh}).get_json()
    again = Caller(client, {"Authorization": f"Bearer {renewed['access_token']}"}, "wangfang")
    assert again.get("/api/v1/me").status_code == 200
    everywhere = again.post("/api/v1/auth/logout", json={"allSessions": True})
    assert everywhere.get_json() == {"sessionsEnded": 1}  # refresh kept the session: one, not two
    assert phone.get("/api/v1/me").status_code == 401
    assert client.post("/api/v1/auth/refresh", json={"refresh_token": renewed["refresh_token"]}).status_code == 401
    assert again.post("/api/v1/auth/logout", json={"allSessions": "yes"}).status_code in (401, 422)
    assert audit_actions(rt) == ["user.created", "user.logout", "user.logout"]


def test_logout_refuses_a_bad_body_and_api_keys(users):
    assert users["admin"].post("/api/v1/auth/logout", json={"everywhere": True}).status_code == 422
    assert users["system"].post("/api/v1/auth/logout").status_code == 403
    assert users["anonymous"].post("/api/v1/auth/logout").status_code == 401


def test_a_token_without_a_session_is_refused(app, users, client):
    from itsdangerous import URLSafeTimedSerializer

    from api.auth import ACCESS_SALT

    old = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt=ACCESS_SALT).dumps({"sub": "admin"})
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "invalid_token"


def test_two_concurrent_creates_of_one_username_make_one_user_and_a_409(rt, app, users, city):
    """Two admins' clients at the same moment: one 201, one 409 naming the username — never a 500."""
    import threading

    headers = users["admin"].headers
    barrier, answers = threading.Barrier(2), []

    def create(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        answers.append(client.post("/api/v1/users", headers=headers,
                                   json=new_user(displayName=f"王芳 {n}", password="pass-word-1")))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [201, 409], [r.get_json() for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert "username" in refused.get_json()["error"]["fields"]
    assert users["admin"].get("/api/v1/users?q=wangfang").get_json()["total"] == 1
    assert audit_actions(rt) == ["user.created"]
