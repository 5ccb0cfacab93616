"""Every endpoint × every role: anonymous → 401, a role the endpoint does not name → 403, a role it
names → anything but 401/403. The matrix is read from the routes, so a new endpoint is covered
the moment it exists (and one without an owner role fails `test_every_endpoint_declares_roles`)."""

import re
import xml.etree.ElementTree as ET

import pytest

from tests.api.conftest import PASSWORD

ROLE_CALLERS = ["admin", "sup", "insp", "leader", "system"]
CALLER_ROLE = {"admin": "admin", "sup": "supervisor", "insp": "inspector", "leader": "leader", "system": "system"}
FILL = {"int": "2050", "default": "00000000-0000-0000-0000-000000000000"}  # 2050: a valid year, no such id


def _routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule, method, view


def _path(rule) -> str:
    return re.sub(r"<(?:(int)(?:\([^)]*\))?:)?[a-z_]+>", lambda m: FILL["int" if m.group(1) else "default"],
                  rule.rule)


def _error_code(r) -> str:
    """Ours is {"error": {"code"}}; Open311 routes answer in Open311's shape, [{code, description}] or XML."""
    if r.mimetype == "text/xml":
        return ET.fromstring(r.data).findtext("error/code")
    body = r.get_json()
    return str(body[0]["code"]) if isinstance(body, list) else body["error"]["code"]


def _body(path: str) -> dict:
    """Open311 takes forms (GeoReport v2): a JSON post is a 415 before any credential is looked at."""
    return {"data": {"service_code": "noise"}} if path.startswith("/open311/") else {"json": {}}


def test_every_endpoint_declares_roles(app):
    missing = [f"{m} {r.rule}" for r, m, v in _routes(app) if not hasattr(v, "allowed_roles")]
    assert missing == []


def test_role_matrix(app, users):
    checked = 0
    # logout ends the caller's session (their token stops): checked last
    for rule, method, view in sorted(_routes(app), key=lambda route: route[0].rule == "/api/v1/auth/logout"):
        allowed = view.allowed_roles
        if not allowed:
            continue  # public: login, health, metrics, openapi
        path = _path(rule)
        anon = users["anonymous"].client.open(path, method=method, **_body(path))
        assert anon.status_code == 401, f"{method} {path} without credentials"
        for caller in ROLE_CALLERS:
            r = users[caller].client.open(path, method=method, headers=users[caller].headers, **_body(path))
            if CALLER_ROLE[caller] in allowed:
                assert r.status_code not in (401, 403), f"{caller} on {method} {path}: {r.get_json()}"
            else:
                assert r.status_code == 403, f"{caller} on {method} {path} should be forbidden"
                assert _error_code(r) in ("forbidden", "403")
            checked += 1
    assert checked >= 5 * 15


# The notification endpoints, spelled out: the matrix above checks whatever roles a route declares,
# this checks they are the intended ones. Receipts are public: the provider's signature (Twilio) or
# the shared token (Aliyun) is the credential, and a user's token is no substitute for it.
NOTIFICATION_ROLES = {
    ("GET", "/api/v1/notifications"): {"admin", "leader", "supervisor", "inspector"},
    ("GET", "/api/v1/notifications/<notification_id>"): {"admin", "leader", "supervisor", "inspector"},
    ("POST", "/api/v1/notifications/preview"): {"admin", "supervisor"},
    ("POST", "/api/v1/notifications/receipts/twilio"): set(),
    ("POST", "/api/v1/notifications/receipts/aliyun"): set(),
}


def test_notification_endpoints_have_the_intended_roles(app):
    found = {(m, r.rule): set(v.allowed_roles) for r, m, v in _routes(app) if r.rule.startswith("/api/v1/notif")}
    assert found == NOTIFICATION_ROLES


@pytest.mark.parametrize("path", ["/api/v1/notifications/receipts/twilio?notification_id=x",
                                  "/api/v1/notifications/receipts/aliyun",
                                  "/api/v1/notifications/receipts/aliyun?token="])
def test_receipts_refuse_callers_without_the_providers_credential(users, path):
    for caller in ["anonymous", *ROLE_CALLERS]:
        r = users[caller].post(path, data={"MessageSid": "SM1", "MessageStatus": "failed"})
        assert r.status_code == 403, f"{caller} on {path}"


# Graded warnings: who may raise, read and acknowledge them, and manage their policy. The link in a
# warning notice is public on purpose: its signed token is the credential (a forgery is 404).
WARNING_ROUTES = {
    ("POST", "/api/v1/warnings"): ("system", "admin", "supervisor"),
    ("GET", "/api/v1/warnings"): ("admin", "supervisor", "leader", "inspector"),
    ("GET", "/api/v1/warnings/<warning_id>"): ("admin", "supervisor", "leader", "inspector"),
    ("POST", "/api/v1/warnings/<warning_id>/ack"): ("admin", "supervisor", "leader", "inspector"),
    ("GET", "/api/v1/warning-policies"): ("admin", "leader", "supervisor"),
    ("POST", "/api/v1/warning-policies"): ("admin",),
    ("DELETE", "/api/v1/warning-policies/<int(max=2147483647):policy_id>"): ("admin",),
    ("GET", "/api/v1/warnings/ack/<token>"): (),
    ("POST", "/api/v1/warnings/ack/<token>"): (),
}


def test_warning_routes_are_in_the_matrix_with_their_owner_roles(app):
    routes = {(m, r.rule): v.allowed_roles for r, m, v in _routes(app)}
    assert {k: routes.get(k) for k in WARNING_ROUTES} == WARNING_ROUTES


def test_the_warning_link_is_public_and_a_forged_token_is_404(users):
    fake = "0" * 32 + ".AAAAAAAAAAAAAAAAAAAAAA"
    for caller in ("anonymous", "insp", "system"):
        for method in ("GET", "POST"):
            r = users[caller].client.open(f"/api/v1/warnings/ack/{fake}", method=method,
                                          headers=users[caller].headers)
            assert r.status_code == 404, (caller, method)


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer ", "Basic YWRtaW46YWRtaW4="])
def test_bad_credentials_are_401(client, users, header):
    r = client.get("/api/v1/task", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_api_key_is_401(client, users):
    assert client.get("/api/v1/task", headers={"X-API-Key": "glk_nope"}).status_code == 401


def test_deactivated_user_loses_access_at_once(rt, users):
    from sqlalchemy import update

    from api.accounts import User

    assert users["sup"].get("/api/v1/task").status_code == 200
    with rt.db.transaction() as s:
        s.execute(update(User).where(User.username == "sup").values(active=False))
    assert users["sup"].get("/api/v1/task").status_code == 401


def test_expired_token_is_refused(app, rt, users):
    app.config["ACCESS_TOKEN_TTL"] = -1
    r = users["sup"].get("/api/v1/task")
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_expired"


def test_wrong_password_is_401_and_does_not_say_which_part_was_wrong(client, users):
    a = client.post("/api/v1/auth/token", json={"username": "sup", "password": "wrong password"})
    b = client.post("/api/v1/auth/token", json={"username": "nobody", "password": "wrong password"})
    assert a.status_code == b.status_code == 401
    assert a.get_json() == b.get_json()


def test_refresh_token_gives_a_new_access_token_and_is_not_an_access_token(client, users):
    tokens = client.post("/api/v1/auth/token", json={"username": "sup", "password": PASSWORD}).get_json()
    assert client.get("/api/v1/task", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}).status_code == 401
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200
    access = fresh.get_json()["access_token"]
    assert client.get("/api/v1/task", headers={"Authorization": f"Bearer {access}"}).status_code == 200
    # an access token is not a refresh token either
    r = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "invalid_token"


def test_scoping_fails_closed_and_supervisors_oversee_their_grid(rt, clock, users, reference_xml):
    """Instances and tasks outside the caller's grid are invisible (404); a user without a grid
    sees nothing; a supervisor sees (and may reassign) inspector tasks in their grid."""
    from datetime import timedelta

    from api import accounts
    from tests.api.conftest import Caller

    users["admin"].post("/api/v1/process-definition", data=reference_xml, headers={"Content-Type": "application/xml"})
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json={
        "scope": "320706001", "variables": {"case_id": "C-1", "value": 1, "grid": "320706001", "handle_due": due}})
    iid = r.get_json()["id"]
    assert users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json={
        "scope": "310101", "variables": {}}).status_code == 403  # not inside the supervisor's grid
    review = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"][0]
    users["sup"].post(f"/api/v1/task/{review['id']}/complete", json={"variables": {"approved": True}})
    accounts.create_user(rt.db, clock.now(), username="nogrid", password=PASSWORD, roles=["inspector"],
                         hash_method="pbkdf2:sha256:1000")
    token = users["anonymous"].client.post("/api/v1/auth/token", json={"username": "nogrid", "password": PASSWORD})
    nogrid = Caller(users["anonymous"].client, {"Authorization": f"Bearer {token.get_json()['access_token']}"}, "x")
    assert nogrid.get("/api/v1/task").get_json()["total"] == 0
    handle = users["sup"].get(f"/api/v1/task?processInstanceId={iid}").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in handle] == ["handle"]  # an inspector task, seen by its supervisor
    assert users["sup"].post(f"/api/v1/task/{handle[0]['id']}/claim", json={"userId": "insp"}).status_code == 200
    assert users["sup"].post(f"/api/v1/task/{handle[0]['id']}/complete", json={}).status_code == 403
    for outsider in ("insp_other",):
        assert users[outsider].get(f"/api/v1/process-instance/{iid}").status_code == 403  # not a reader role
    other_sup = {"username": "sup_sh", "roles": ["supervisor"], "scope": "3101"}
    accounts.create_user(rt.db, clock.now(), password=PASSWORD, hash_method="pbkdf2:sha256:1000", **other_sup)
    token = users["anonymous"].client.post("/api/v1/auth/token", json={"username": "sup_sh", "password": PASSWORD})
    sup_sh = Caller(users["anonymous"].client, {"Authorization": f"Bearer {token.get_json()['access_token']}"}, "y")
    assert sup_sh.get(f"/api/v1/process-instance/{iid}").status_code == 404
    assert sup_sh.get(f"/api/v1/process-instance/{iid}/variables").status_code == 404
    assert sup_sh.get("/api/v1/process-instance").get_json()["total"] == 0
    assert sup_sh.get(f"/api/v1/task/{handle[0]['id']}").status_code == 404


# Open311 (citizens' reports) and petitions. Reading Open311 is public, as the spec has it; posting a
# request needs a reporting system's API key (401 without one, 403 for any other credential).
REPORT_ROUTES = {
    ("GET", "/open311/v2/services.json"): (),
    ("GET", "/open311/v2/services.xml"): (),
    ("GET", "/open311/v2/services/<service_code>.json"): (),
    ("GET", "/open311/v2/services/<service_code>.xml"): (),
    ("POST", "/open311/v2/requests.json"): ("reporter", "system"),
    ("POST", "/open311/v2/requests.xml"): ("reporter", "system"),
    ("GET", "/open311/v2/requests.json"): (),
    ("GET", "/open311/v2/requests.xml"): (),
    ("GET", "/open311/v2/requests/<request_id>.json"): (),
    ("GET", "/open311/v2/requests/<request_id>.xml"): (),
    ("GET", "/open311/v2/media/<request_id>"): (),
    ("POST", "/api/v1/petitions"): ("system", "admin"),
    ("GET", "/api/v1/petitions/<petition_id>"): ("system", "admin", "supervisor", "leader"),
    ("POST", "/api/v1/petitions/<petition_id>/extend"): ("supervisor", "admin"),
}


def test_report_routes_are_in_the_matrix_with_their_owner_roles(app):
    routes = {(m, r.rule): v.allowed_roles for r, m, v in _routes(app)
              if r.rule.startswith(("/open311", "/api/v1/petitions"))}
    assert routes == REPORT_ROUTES


def test_posting_an_open311_request_refuses_people_and_strangers_in_open311_shape(users):
    for caller in ["anonymous", *ROLE_CALLERS]:
        r = users[caller].post("/open311/v2/requests.json", data={"service_code": "noise"})
        if caller == "system":  # the key is accepted; the request itself is bad
            assert r.status_code == 400
            continue
        assert r.status_code == (401 if caller == "anonymous" else 403), caller
        assert r.get_json()[0]["code"] == r.status_code


# The monitoring source register: admins change it; admins, leaders and supervisors (in their grid) read it.
SOURCE_ROUTES = {
    ("GET", "/api/v1/sources"): ("admin", "supervisor", "leader"),
    ("GET", "/api/v1/sources/<mn>"): ("admin", "supervisor", "leader"),
    ("POST", "/api/v1/sources"): ("admin",),
    ("PATCH", "/api/v1/sources/<mn>"): ("admin",),
    ("PUT", "/api/v1/sources/<mn>/limits"): ("admin",),
    ("POST", "/api/v1/sources/import"): ("admin",),
}


def test_source_routes_are_in_the_matrix_with_their_owner_roles(app):
    routes = {(m, r.rule): v.allowed_roles for r, m, v in _routes(app) if r.rule.startswith("/api/v1/sources")}
    assert routes == SOURCE_ROUTES
