"""The staff register over HTTP: admins register and change staff anywhere, supervisors the inspectors
and supervisors of their own area, leaders read; every field checked and named, nothing written on a
refusal; a username is given once; the audit trail records every change without whole phone numbers."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api import accounts
from engine.models import AuditEvent
from tests.api.conftest import PASSWORD, Caller, plain_grids
from tests.api.test_duty_api import CITY, GANYU, GRIDS, HAIZHOU, NOW, OTHER_TOWN, TOWN, UNIT
from workflows.people import Department, Person


@pytest.fixture
def register(rt, clock, users):
    """The grids, one department, two people already on the register, and a supervisor of 海州区."""
    clock.set(NOW)
    with rt.db.transaction() as s:
        s.add_all(plain_grids(GRIDS, NOW - timedelta(days=30)))
        s.add_all([Department(code="hz-sthj", tenant=CITY, name="海州生态环境分局"),
                   Department(code="lyg-other", tenant="320800", name="另一城市")])
        people = [Person(tenant=CITY, username="zhou", name="周巡查", post="inspector", grid_code=OTHER_TOWN),
                  Person(tenant=CITY, username="lead-hz", name="海州区领导", post="leader", grid_code=HAIZHOU)]
        s.add_all(people)
        s.flush()
        ids = {p.username: p.id for p in people}
    accounts.create_user(rt.db, rt.clock.now(), username="sup-hz", password=PASSWORD, roles=["supervisor"],
                         scope=HAIZHOU, hash_method="pbkdf2:sha256:1000")
    token = users["admin"].client.post("/api/v1/auth/token",
                                       json={"username": "sup-hz", "password": PASSWORD}).get_json()
    hz = Caller(users["admin"].client, {"Authorization": f"Bearer {token['access_token']}"}, "sup-hz")
    return ids, hz


def person(**extra):
    return {"tenant": CITY, "name": "王芳", "post": "inspector", "grid": UNIT, **extra}


def staff_count(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(Person))


def audit_events(rt) -> list[AuditEvent]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action.startswith("staff."))
                              .order_by(AuditEvent.id)))


def test_an_admin_registers_an_inspector_with_the_channels_notices_reach_them_on(rt, users, register):
    admin = users["admin"]
    r = admin.post("/api/v1/staff", json=person(username="wangfang", department="hz-sthj",
                                                 phone="+86 138-0013-8000", wecomId="WangFang",
                                                 channels=["sms", "wechat_work"]))
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert {k: created[k] for k in ("name", "post", "grid", "username", "department", "phone", "wecomId",
                                    "channels", "active")} == {
        "name": "王芳", "post": "inspector", "grid": UNIT, "username": "wangfang", "department": "hz-sthj",
        "phone": "+8613800138000", "wecomId": "WangFang", "channels": ["sms", "wechat_work"], "active": True}
    assert admin.get(f"/api/v1/staff/{created['id']}").get_json() == created
    listed = admin.get("/api/v1/staff", query_string={"tenant": CITY, "grid": TOWN}).get_json()
    assert [p["username"] for p in listed["items"]] == ["wangfang"] and listed["total"] == 1
    assert admin.get("/api/v1/staff", query_string={"tenant": CITY, "q": "周"}).get_json()["total"] == 1
    assert admin.get("/api/v1/staff", query_string={"tenant": CITY, "post": "leader"}).get_json()["total"] == 1
    unreachable = admin.get("/api/v1/staff", query_string={"tenant": CITY, "unreachable": "true"}).get_json()
    assert {p["username"] for p in unreachable["items"]} == {"zhou", "lead-hz"}  # no phone, no WeChat id
    (event,) = audit_events(rt)
    assert event.action == "staff.added" and event.actor == "admin"
    assert event.details["phone"] == "**********8000" and "13800138000" not in str(event.details)
    assert event.details["wecom_id"] == "****Fang"


def test_every_field_is_checked_and_named_and_nothing_is_written(rt, users, register):
    admin, before = users["admin"], staff_count(rt)
    cases = [
        (person(post="boss"), "post"), (person(tenant="32"), "tenant"), (person(grid="abc"), "grid"),
        (person(grid="320799"), "grid"),  # not a grid
        (person(grid="320800"), "grid"),  # another city's grid
        (person(department="nope"), "department"), (person(department="lyg-other"), "department"),
        (person(phone="12345"), "phone"), (person(phone="+86 138 0013"), "phone"),
        (person(phone="+86 010 6552 9988"), "phone"),  # a landline: no SMS
        (person(phone="13８00138000"), "phone"),  # a full-width digit (an IME's): no provider takes it
        (person(name="   "), "name"),
        (person(wecomId="王 芳"), "wecomId"), (person(channels=["fax"]), "channels"),
        (person(channels=["sms"]), "channels"),  # chosen, but no phone to send to
        (person(channels=["sms", "sms"], phone="13800138000"), "channels"),
        (person(username="-x"), "username"), (person(name=""), "name"), (person(colour="red"), "colour"),
        ({k: v for k, v in person().items() if k != "grid"}, "grid"),
    ]
    for body, field in cases:
        r = admin.post("/api/v1/staff", json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert field in r.get_json()["error"]["fields"], (body, r.get_json())
    r = admin.post("/api/v1/staff", json=person(channels=["sms"]))
    assert r.get_json()["error"]["fields"]["channels"] == {"0": ["sms needs phone"]}
    assert staff_count(rt) == before and audit_events(rt) == []


def test_a_supervisor_keeps_the_register_of_their_own_area_only(rt, users, register):
    ids, hz = register
    r = hz.post("/api/v1/staff", json=person(grid=TOWN))
    assert r.status_code == 201, r.get_json()
    mine = r.get_json()["id"]
    r = hz.post("/api/v1/staff", json=person(grid=OTHER_TOWN))
    assert r.status_code == 403 and "grid" in r.get_json()["error"]["fields"]
    r = hz.post("/api/v1/staff", json=person(grid=TOWN, post="leader"))
    assert r.status_code == 403 and "post" in r.get_json()["error"]["fields"]
    assert hz.patch(f"/api/v1/staff/{mine}", json={"grid": OTHER_TOWN}).status_code == 403  # moved out of reach
    assert hz.patch(f"/api/v1/staff/{mine}", json={"post": "admin"}).status_code == 403
    assert hz.patch(f"/api/v1/staff/{ids['lead-hz']}", json={"phone": "13800138001"}).status_code == 403
    assert hz.get(f"/api/v1/staff/{ids['zhou']}").status_code == 404  # outside the area: as if not there
    assert hz.patch(f"/api/v1/staff/{ids['zhou']}", json={"active": False}).status_code == 404
    listed = hz.get("/api/v1/staff", query_string={"tenant": CITY}).get_json()
    assert {p["id"] for p in listed["items"]} == {mine, ids["lead-hz"]}
    assert users["insp"].get("/api/v1/staff", query_string={"tenant": CITY}).status_code == 403
    assert users["insp"].post("/api/v1/staff", json=person()).status_code == 403
    assert users["leader"].get("/api/v1/staff", query_string={"tenant": CITY}).get_json()["total"] == 3
    assert users["leader"].post("/api/v1/staff", json=person()).status_code == 403
    assert users["anonymous"].get("/api/v1/staff", query_string={"tenant": CITY}).status_code == 401
    assert staff_count(rt) == 3


def test_a_change_is_audited_with_before_and_after_and_contact_details_masked(rt, users, register):
    ids, _hz = register
    admin = users["admin"]
    r = admin.patch(f"/api/v1/staff/{ids['zhou']}", json={"phone": "13900139000", "channels": ["sms"]})
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["phone"], r.get_json()["channels"]) == ("+8613900139000", ["sms"])  # in E.164
    r = admin.patch(f"/api/v1/staff/{ids['zhou']}", json={"phone": None})  # sms is still chosen
    assert r.status_code == 422 and r.get_json()["error"]["fields"]["channels"] == {"0": ["sms needs phone"]}
    r = admin.patch(f"/api/v1/staff/{ids['zhou']}", json={"phone": None, "channels": None, "active": False})
    assert r.status_code == 200 and (r.get_json()["phone"], r.get_json()["active"]) == (None, False)
    assert admin.patch(f"/api/v1/staff/{ids['zhou']}", json={"active": False}).status_code == 200  # no change
    assert admin.patch(f"/api/v1/staff/{ids['zhou']}", json={}).status_code == 422
    assert admin.patch("/api/v1/staff/999999", json={"name": "x"}).status_code == 404
    first, second = audit_events(rt)  # the unchanged PATCH wrote nothing
    assert first.details["before"] == {"channels": None, "phone": None}
    assert first.details["after"] == {"channels": "sms", "phone": "**********9000"}
    assert second.details["after"] == {"active": False, "channels": None, "phone": None}


def test_a_registration_sent_twice_with_its_idempotency_key_registers_one_person(rt, users, register):
    admin, before = users["admin"], staff_count(rt)
    key = {"Idempotency-Key": "register-wangfang-1"}
    first = admin.post("/api/v1/staff", json=person(name=" 王芳 "), headers=key)
    again = admin.post("/api/v1/staff", json=person(name=" 王芳 "), headers=key)
    assert first.status_code == again.status_code == 201 and first.get_json() == again.get_json()
    assert first.get_json()["name"] == "王芳" and staff_count(rt) == before + 1  # stored without the spaces


def test_a_username_is_given_once_and_nobody_else_may_take_it(rt, users, register):
    ids, _hz = register
    admin = users["admin"]
    r = admin.post("/api/v1/staff", json=person(username="ZHOU"))  # names differ only in case: taken
    assert r.status_code == 409 and "username" in r.get_json()["error"]["fields"]
    nameless = admin.post("/api/v1/staff", json=person()).get_json()
    assert nameless["username"] is None
    r = admin.patch(f"/api/v1/staff/{nameless['id']}", json={"username": "wangfang"})
    assert r.status_code == 200 and r.get_json()["username"] == "wangfang"
    r = admin.patch(f"/api/v1/staff/{nameless['id']}", json={"username": "wang2"})
    assert r.status_code == 409 and "username" in r.get_json()["error"]["fields"]
    r = admin.patch(f"/api/v1/staff/{ids['zhou']}", json={"username": "zhou"})  # the same: no change
    assert r.status_code == 200
    assert staff_count(rt) == 3  # the two already there and the nameless one


def test_a_person_takes_a_logins_name_only_where_that_login_works_and_within_the_actors_area(rt, users, register):
    """Registering a person under a login's username makes its tasks, notices and figures theirs."""
    _ids, hz = register
    for username in ("admin", "insp_other", "leader"):  # an admin's, another district's, an unscoped login
        r = hz.post("/api/v1/staff", json=person(grid=TOWN, username=username, phone="13800138000",
                                                 channels=["sms"]))
        assert r.status_code == 403 and "username" in r.get_json()["error"]["fields"], (username, r.get_json())
    r = hz.post("/api/v1/staff", json=person(grid=HAIZHOU, username="insp"))  # the login works in 320706001
    assert r.status_code == 422 and "username" in r.get_json()["error"]["fields"]
    r = users["admin"].post("/api/v1/staff", json=person(grid=TOWN, username="INSP"))
    assert r.status_code == 422 and "spelt 'insp'" in r.get_json()["error"]["fields"]["username"][0]
    nameless = hz.post("/api/v1/staff", json=person(grid=TOWN)).get_json()
    assert hz.patch(f"/api/v1/staff/{nameless['id']}", json={"username": "admin"}).status_code == 403
    r = hz.post("/api/v1/staff", json=person(grid=TOWN, username="insp"))  # the login of their own town
    assert r.status_code == 201, r.get_json()
    linked = r.get_json()["id"]
    assert users["admin"].get("/api/v1/users", query_string={"q": "insp"}).get_json()["items"][0]["person"]["id"] \
        == linked
    r = users["admin"].patch(f"/api/v1/staff/{linked}", json={"grid": HAIZHOU})  # out of the login's grid
    assert r.status_code == 422 and "username" in r.get_json()["error"]["fields"]
    assert staff_count(rt) == 4


def test_a_username_with_a_line_break_is_refused(users, register):
    for username in ("wangfang\n", "wang fang"):
        r = users["admin"].post("/api/v1/staff", json=person(username=username))
        assert r.status_code == 422 and "username" in r.get_json()["error"]["fields"]
    r = users["admin"].post("/api/v1/staff", json=person(wecomId="WangFang\n"))
    assert r.status_code == 422 and "wecomId" in r.get_json()["error"]["fields"]


def test_a_scoped_leader_reads_the_register_of_their_area_only(rt, users, register):
    ids, _hz = register
    accounts.create_user(rt.db, rt.clock.now(), username="lead-gy", password=PASSWORD, roles=["leader"],
                         scope=GANYU, hash_method="pbkdf2:sha256:1000")
    token = users["admin"].client.post("/api/v1/auth/token",
                                       json={"username": "lead-gy", "password": PASSWORD}).get_json()
    gy = Caller(users["admin"].client, {"Authorization": f"Bearer {token['access_token']}"}, "lead-gy")
    listed = gy.get("/api/v1/staff", query_string={"tenant": CITY}).get_json()
    assert [p["id"] for p in listed["items"]] == [ids["zhou"]] and listed["total"] == 1
    assert gy.get(f"/api/v1/staff/{ids['lead-hz']}").status_code == 404
    assert gy.patch(f"/api/v1/staff/{ids['zhou']}", json={"active": False}).status_code == 403


def test_someone_whose_grid_was_redrawn_and_whose_channels_were_written_loosely_can_still_be_changed(
        rt, users, register):
    with rt.db.transaction() as s:  # as an older import left them: a grid since retired, spaces in the list
        p = Person(tenant=CITY, username="old", name="老周", post="inspector", grid_code="320706001000099",
                   phone="+8613800138000", wecom_id="laozhou", channels="sms , wechat_work")
        s.add(p)
        s.flush()
        pid = p.id
    r = users["admin"].patch(f"/api/v1/staff/{pid}", json={"active": False})
    assert r.status_code == 200 and r.get_json()["active"] is False
    r = users["admin"].patch(f"/api/v1/staff/{pid}", json={"phone": None})  # sms is still chosen
    assert r.get_json()["error"]["fields"]["channels"] == {"0": ["sms needs phone"]}


def test_a_roster_is_imported_whole_or_refused_whole_with_every_problem_by_item(rt, users, register):
    _ids, hz = register
    admin, before = users["admin"], staff_count(rt)
    roster = [person(name=f"巡查员{i}", username=f"xc{i}", phone=f"1380013{i:04d}", channels=["sms"])
              for i in range(30)]
    bad = [*roster[:3], person(phone="12345"), person(username="XC1"), {"name": "x"}, person(grid="320800")]
    r = admin.post("/api/v1/staff/import", json=bad)
    assert r.status_code == 422, r.get_json()
    fields = r.get_json()["error"]["fields"]
    assert set(fields) == {"3", "4", "5", "6"} and "phone" in fields["3"] and "username" in fields["4"]
    assert {"tenant", "post", "grid"} <= set(fields["5"]) and "grid" in fields["6"]
    assert staff_count(rt) == before and audit_events(rt) == []  # nothing of the good items either
    r = hz.post("/api/v1/staff/import", json=[person(grid=TOWN), person(grid=OTHER_TOWN)])
    assert r.status_code == 403 and set(r.get_json()["error"]["fields"]) == {"1"}
    r = admin.post("/api/v1/staff/import", json=[person(username="zhou"), person(username="zhou")])
    assert r.status_code == 409 and set(r.get_json()["error"]["fields"]) == {"0", "1"}
    assert admin.post("/api/v1/staff/import", json=[]).status_code == 422
    r = admin.post("/api/v1/staff/import", json=roster, headers={"Idempotency-Key": "roster-1"})
    assert r.status_code == 201 and r.get_json()["imported"] == 30
    again = admin.post("/api/v1/staff/import", json=roster, headers={"Idempotency-Key": "roster-1"})
    assert again.get_json() == r.get_json() and staff_count(rt) == before + 30
    (event,) = audit_events(rt)
    assert event.action == "staff.imported" and event.details["count"] == 30
    assert event.details["people"][0]["phone"] == "**********0000" and "13800130000" not in str(event.details)
    listed = admin.get("/api/v1/staff", query_string={"tenant": CITY, "q": "xc", "limit": 500}).get_json()
    assert listed["total"] == 30 and {p["channels"] == ["sms"] for p in listed["items"]} == {True}
