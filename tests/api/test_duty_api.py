"""The duty roster over HTTP: who may roster whom (scope, tenant, the person's own grid), every field
checked and named, overlaps refused, a week of night duty in one request, ending and deleting, reading
within scope, and the audit trail of every change."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from api import accounts
from engine.models import AuditEvent
from tests.api.conftest import PASSWORD, Caller, plain_grids
from workflows.people import Category, DutyShift, Person

NOW = datetime(2026, 10, 12, 2, 0, tzinfo=UTC)  # Monday 10:00 in China
CITY, HAIZHOU, GANYU = "320700", "320706", "320721"
TOWN, UNIT, OTHER_TOWN = "320706001", "320706001000001", "320721001"
GRIDS = [(CITY, "city", None), (HAIZHOU, "district", CITY), (GANYU, "district", CITY),
         (TOWN, "town", HAIZHOU), (UNIT, "unit", TOWN), (OTHER_TOWN, "town", GANYU), ("320800", "city", None)]


def at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


@pytest.fixture
def roster(rt, clock, users):
    clock.set(NOW)
    with rt.db.transaction() as s:
        s.add_all(plain_grids(GRIDS, NOW - timedelta(days=30)))
        s.add(Category(code="noise", tenant=CITY, name="噪声"))
        people = {u: Person(tenant=t, username=u, name=u, post=post, grid_code=g, active=active)
                  for u, t, post, g, active in [
                      ("wang", CITY, "inspector", UNIT, True), ("li", CITY, "inspector", TOWN, True),
                      ("zhou", CITY, "inspector", OTHER_TOWN, True), ("gone", CITY, "inspector", UNIT, False),
                      ("hu", "320800", "inspector", "320800", True), ("sup-hz", CITY, "supervisor", HAIZHOU, True),
                      ("insp", CITY, "inspector", TOWN, True)]}
        s.add_all(people.values())
        s.flush()
        ids = {u: p.id for u, p in people.items()}
    hz = _login(rt, users["admin"].client, "sup-hz", ["supervisor"], HAIZHOU)
    return ids, hz


def _login(rt, client, username, roles, scope) -> Caller:
    accounts.create_user(rt.db, rt.clock.now(), username=username, password=PASSWORD, roles=roles, scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


def shift(person_id, grid=HAIZHOU, start=8, end=22.5, **extra):
    return {"personId": person_id, "grid": grid, "startsAt": at(start), "endsAt": at(end), **extra}


def count(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(DutyShift))


def test_a_district_centre_rosters_a_week_of_night_duty_for_town_staff(rt, users, roster):
    ids, hz = roster
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], kind="night", repeatDays=7))
    assert r.status_code == 201, r.get_json()
    week = r.get_json()
    assert [datetime.fromisoformat(s["startsAt"]) for s in week] == [NOW + timedelta(days=d, hours=8)
                                                                     for d in range(7)]
    assert len(week) == 7 and {(s["kind"], s["grid"], s["username"]) for s in week} == {("night", HAIZHOU, "li")}
    assert datetime.fromisoformat(week[-1]["endsAt"]) == NOW + timedelta(days=6, hours=22.5)
    listed = hz.get("/api/v1/duty-shifts", query_string={"grid": HAIZHOU, "from": at(20), "to": at(40),
                                                         "kind": "night"}).get_json()
    assert listed["total"] == 2  # the first two of the week overlap 20..40 h from now
    for moment, on_duty in ((8, 1), (22.5, 0), (32, 1)):  # from = to: on duty at that moment
        r = hz.get("/api/v1/duty-shifts", query_string={"grid": HAIZHOU, "from": at(moment), "to": at(moment)})
        assert r.get_json()["total"] == on_duty, moment
    with rt.db.session() as s:
        (event,) = s.scalars(select(AuditEvent).where(AuditEvent.action == "duty.add")).all()
    assert event.actor == "sup-hz" and len(event.details["shifts"]) == 7


def test_a_district_may_not_roster_another_districts_staff_nor_another_districts_grid(rt, roster):
    ids, hz = roster
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["zhou"]))
    assert r.status_code == 422 and "not 320706 or under it" in r.get_json()["error"]["fields"]["personId"][0]
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["zhou"], grid=GANYU))
    assert r.status_code == 403 and "outside your scope" in r.get_json()["error"]["fields"]["grid"][0]
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], grid=UNIT))  # li belongs to the town, above the unit
    assert r.status_code == 422 and "personId" in r.get_json()["error"]["fields"]
    assert count(rt) == 0


@pytest.mark.parametrize("body, field, words", [
    ({"personId": 9999}, "personId", "no member of staff"),
    ({"person": "gone"}, "personId", "is not active"),
    ({"person": "hu"}, "personId", "works for tenant 320800"),
    ({"grid": "320799"}, "grid", "no current grid"),
    ({"endsAt": at(80.5)}, "endsAt", "at most 72 hours"),
    ({"endsAt": at(8)}, "endsAt", "after startsAt"),
    ({"startsAt": at(-30), "endsAt": at(-1)}, "endsAt", "the shift is over"),
    ({"kind": "weekend"}, "kind", "Must be one of"),
    ({"category": "air.exceedance"}, "category", "no category"),
    ({"startsAt": "2026-10-13T08:30:00"}, "startsAt", "aware"),
    ({"repeatDays": 32}, "repeatDays", "less than or equal to 31"),
    ({"personId": "7"}, "personId", "integer"),
    ({"extra": 1}, "extra", "Unknown field"),
])
def test_every_bad_value_is_a_422_naming_its_field_and_nothing_is_stored(rt, users, roster, body, field, words):
    ids, _ = roster
    body = dict(body)
    r = users["admin"].post("/api/v1/duty-shifts", json=shift(ids[body.pop("person", "li")]) | body)
    assert r.status_code == 422, r.get_json()
    messages = " ".join(r.get_json()["error"]["fields"][field])
    assert words in messages
    assert count(rt) == 0


def test_the_same_person_cannot_stand_two_overlapping_watches_in_one_grid(rt, users, roster):
    ids, hz = roster
    assert hz.post("/api/v1/duty-shifts", json=shift(ids["li"])).status_code == 201
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], start=20, end=30))
    assert r.status_code == 409 and "overlaps duty shift" in r.get_json()["error"]["fields"]["startsAt"][0]
    assert hz.post("/api/v1/duty-shifts", json=shift(ids["li"], start=22.5, end=30)).status_code == 201  # back to back
    assert hz.post("/api/v1/duty-shifts", json=shift(ids["li"], grid=TOWN, start=20, end=30)).status_code == 201
    r = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], start=8, end=33, repeatDays=2))  # 25 h, daily
    assert r.status_code == 409
    assert count(rt) == 3


def test_a_batch_is_all_or_nothing_with_problems_by_index(rt, users, roster):
    ids, hz = roster
    batch = [shift(ids["li"], kind="holiday"), shift(ids["wang"], grid=TOWN), shift(ids["li"], start=10, end=12),
             shift(ids["wang"], grid=TOWN, kind="x")]
    r = hz.post("/api/v1/duty-shifts/batch", json=batch)
    assert r.status_code == 422 and set(r.get_json()["error"]["fields"]) == {"3"}
    r = hz.post("/api/v1/duty-shifts/batch", json=batch[:3])
    assert r.status_code == 409 and r.get_json()["error"]["fields"]["2"]["startsAt"] == [
        "overlaps item 0 of this request (same person, same grid)"]
    r = hz.post("/api/v1/duty-shifts/batch", json=batch[:2])
    assert r.status_code == 201 and [s["kind"] for s in r.get_json()] == ["holiday", "day"]
    assert count(rt) == 2
    assert hz.post("/api/v1/duty-shifts/batch", json=[]).status_code == 422


def test_ending_and_deleting_keep_the_record_of_who_was_on_duty(rt, users, roster, clock):
    ids, hz = roster
    (now_on,) = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], start=-1, end=8)).get_json()
    (later,) = hz.post("/api/v1/duty-shifts", json=shift(ids["li"], start=24, end=32)).get_json()
    assert hz._call("delete", f"/api/v1/duty-shifts/{now_on['id']}").status_code == 409  # begun: end it
    r = hz.post(f"/api/v1/duty-shifts/{now_on['id']}/end", json={"at": at(-0.5)})
    assert r.status_code == 422 and "past" in r.get_json()["error"]["fields"]["at"][0]
    r = hz.post(f"/api/v1/duty-shifts/{later['id']}/end", json={})
    assert r.status_code == 422 and "delete it instead" in r.get_json()["error"]["fields"]["at"][0]
    r = hz.post(f"/api/v1/duty-shifts/{now_on['id']}/end", json={})
    assert r.status_code == 200 and datetime.fromisoformat(r.get_json()["endsAt"]) == NOW
    assert hz._call("delete", f"/api/v1/duty-shifts/{later['id']}").status_code == 204
    assert hz._call("delete", f"/api/v1/duty-shifts/{later['id']}").status_code == 404
    with rt.db.session() as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["duty.add", "duty.add", "duty.end", "duty.delete"]


def test_readers_see_their_scope_and_their_own_writers_only_their_scope(rt, users, roster, clock):
    ids, hz = roster
    admin = users["admin"]
    (other,) = admin.post("/api/v1/duty-shifts", json=shift(ids["zhou"], grid=GANYU)).get_json()
    (mine,) = admin.post("/api/v1/duty-shifts", json=shift(ids["insp"], grid=HAIZHOU)).get_json()
    assert admin.post("/api/v1/duty-shifts", json=shift(ids["wang"], grid=UNIT)).status_code == 201
    assert hz.get(f"/api/v1/duty-shifts/{other['id']}").status_code == 404
    assert hz.post(f"/api/v1/duty-shifts/{other['id']}/end", json={}).status_code == 404
    assert hz._call("delete", f"/api/v1/duty-shifts/{other['id']}").status_code == 404
    assert users["leader"].get(f"/api/v1/duty-shifts?grid={GANYU}").get_json()["total"] == 1
    # the inspector "insp" (scope 320706001): the unit's shift is in their grid, their own at the district
    insp = users["insp"]
    assert insp.get(f"/api/v1/duty-shifts?grid={HAIZHOU}&subgrids=true").get_json()["total"] == 2
    assert insp.get(f"/api/v1/duty-shifts?grid={HAIZHOU}&personId={ids['insp']}").get_json()["items"][0]["id"] \
        == mine["id"]
    assert insp.get(f"/api/v1/duty-shifts?grid={GANYU}").get_json()["total"] == 0
    assert insp.post("/api/v1/duty-shifts", json=shift(ids["insp"])).status_code == 403
    assert users["leader"].post(f"/api/v1/duty-shifts/{mine['id']}/end", json={}).status_code == 403
    r = admin.get("/api/v1/duty-shifts", query_string={"grid": HAIZHOU, "from": at(10), "to": at(9)})
    assert r.status_code == 422 and "to" in r.get_json()["error"]["fields"]
