"""The whole loop over HTTP: an alarm is filed, reviewed, dispatched, signed for and handled by the
routed inspector, pushed to the (fake) enforcement system, whose signed callback brings the result
back; the supervisor verifies and the case closes."""

import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely
from sqlalchemy import select

from api import accounts, create_app
from api.settings import Settings
from api.views.enforcement import callback_signature
from engine import definitions, outbox
from engine.queues import ManualJobQueue
from integrations.enforcement import EnforcementClient
from tests.api.conftest import PASSWORD, Caller
from tests.api.images import JPEG
from tests.integrations.fake_enforcement import FakeEnforcement
from workflows.demo_seed import seed_demo
from workflows.grids import Grid
from workflows.install import install
from workflows.working_time import CalendarService, seed_from_package

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "env_case.bpmn"
SECRET = "enforcement-shared-secret"


@pytest.fixture
def world(rt, clock, tmp_path):
    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(rt.db, clock.now(), years=[2026])
    seed_demo(rt.db, clock.now() - timedelta(hours=1))
    with FakeEnforcement(SECRET) as fake:
        install(rt, calendar=CalendarService(rt.db).calendar,
                            enforcement=EnforcementClient(fake.url, SECRET))
        definitions.deploy(rt, MODEL.read_bytes(), "admin")
        app = create_app(Settings(database_url=rt.db.url, secret_key="t", enforcement_secret=SECRET,
                                  deploy_bundled=False, storage_dir=str(tmp_path / "uploads"),
                                  max_photo_bytes=10_000), runtime=rt)
        yield rt, app.test_client(), fake


def login(rt, client, clock, username, roles, scope):
    accounts.create_user(rt.db, clock.now(), username=username, password=PASSWORD, roles=roles, scope=scope,
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD}).get_json()
    return Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, username)


def signed(client, body: dict, callback_id: str, ts: int | None = None, secret: str = SECRET):
    raw = json.dumps(body).encode()
    ts_text = str(ts if ts is not None else int(time.time()))
    return client.post("/api/v1/enforcement/callback", data=raw, headers={
        "Content-Type": "application/json", "X-Callback-Id": callback_id, "X-Timestamp": ts_text,
        "X-Signature": callback_signature(secret, callback_id, ts_text, raw)})


def point_in_first_unit(rt):
    with rt.db.session() as s:
        code, geometry = s.execute(select(Grid.code, Grid.geometry).where(Grid.level == "unit")
                                   .order_by(Grid.code).limit(1)).one()
    p = shapely.from_geojson(geometry).representative_point()
    return code, p.x, p.y


def to_enforcement(rt, client, clock):
    """File an alarm and take its case, over HTTP, to the point where it is pushed to enforcement."""
    unit, lon, lat = point_in_first_unit(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="monitoring",
                                                                   roles=["system"])}, "system")
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")  # the city 320700 and all under it
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    case = system.post("/api/v1/alarms", json={
        "tenant": "320700", "source": "monitoring", "externalId": "A-1", "sourceRef": "MN-7",
        "category": "air.exceedance", "occurredAt": clock.now().isoformat(), "lon": lon, "lat": lat}).get_json()

    def act(caller, element, **variables):
        items = caller.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"]
        (task,) = [t for t in items if t["taskDefinitionKey"] == element]
        r = caller.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables})
        assert r.status_code == 200, r.get_json()

    act(sup, "review", review_result="valid")
    act(sup, "dispatch")
    act(inspector, "sign_for")
    handle = inspector.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"][0]
    r = inspector.post(f"/api/v1/task/{handle['id']}/complete", json={"variables": {
        "handle_result": "done", "finding_kind": "violation"}})
    assert r.status_code == 422 and "evidence" in r.get_json()["error"]["fields"]  # not without evidence
    assert inspector.post(f"/api/v1/task/{handle['id']}/checkin", json={"lon": lon, "lat": lat}).status_code == 201
    photo = inspector.post(f"/api/v1/task/{handle['id']}/photos", content_type="multipart/form-data",
                           data={"file": (io.BytesIO(JPEG), "site.jpg", "image/jpeg")})
    assert photo.status_code == 201 and photo.get_json()["size"] == len(JPEG)
    act(inspector, "handle", handle_result="done", finding_kind="violation", findings="治污设施停运")
    return case, sup, act


def run_jobs(rt):
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()


def test_a_violation_is_pushed_answered_by_signed_callback_verified_and_closed(world, clock):
    rt, client, fake = world
    case, sup, act = to_enforcement(rt, client, clock)
    run_jobs(rt)
    assert fake.received[0]["case_id"] == case["id"]
    body = {"caseId": case["id"], "result": "penalized", "amount": 50000, "ticket": "ZF-0001"}
    assert signed(client, body, "cb-1", secret="forged").status_code == 401
    assert signed(client, body, "cb-1", ts=int(time.time()) - 301).status_code == 401
    first = signed(client, body, "cb-1")
    assert first.status_code == 200 and first.get_json()["status"] == "delivered"
    replay = signed(client, body, "cb-1")
    assert replay.get_json()["duplicate"] is True
    urged = sup.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "请尽快核查"})
    assert urged.status_code == 201 and urged.get_json()["urged"] == ["verify"]
    act(sup, "verify", verified=True)
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert detail["processStatus"] == "completed" and detail["openTasks"] == []
    assert (detail["status"], detail["outcome"]) == ("closed", "closed")
    assert sorted(st["task"] for st in detail["stages"]) == ["dispatch", "handle", "review", "sign_for", "verify"]
    assert all(st["status"] == "completed" and st["onTime"] for st in detail["stages"])
    assessment = detail["assessment"]
    assert assessment["violation"] is True and assessment["closedOnTime"] is True
    assert assessment["counts"]["urges"] == 0 and assessment["inspector"].startswith("insp-")
    for status, expected in (("closed", [case["id"]]), ("open", [])):
        listed = sup.get(f"/api/v1/cases?tenant=320700&status={status}").get_json()["items"]
        assert [c["id"] for c in listed] == expected
    assert sup.get("/api/v1/cases?tenant=320700&outcome=closed").get_json()["total"] == 1
    assert sup.get("/api/v1/cases?tenant=320700&outcome=finished").status_code == 422
    actions = [e["action"] for e in detail["timeline"]]
    assert "message.correlated" in actions and "case.urged" in actions
    assert sup.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "x"}).status_code == 409
    assert sup.post(f"/api/v1/cases/{case['id']}/urge", json={}).status_code == 422


def test_a_callback_before_the_case_waits_for_it_is_kept_until_it_does(world, clock):
    rt, client, _fake = world
    case, sup, _act = to_enforcement(rt, client, clock)
    early = signed(client, {"caseId": case["id"], "result": "rectified"}, "cb-early")
    assert early.status_code == 202 and early.get_json()["status"] == "buffered"
    run_jobs(rt)  # the push completes; the case starts waiting and finds the callback already there
    items = sup.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in items] == ["verify"]


@pytest.mark.parametrize("body", [{"caseId": "C-1"}, {"caseId": "C-1", "result": "maybe"}, {"result": "rectified"}])
def test_bad_callbacks_are_422(world, body):
    _rt, client, _fake = world
    assert signed(client, body, "cb-bad").status_code == 422


def test_the_supervisor_home_page_lists_what_needs_them(world, clock):
    rt, client, _fake = world
    _unit, lon, lat = point_in_first_unit(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="feeds",
                                                                   roles=["system"])}, "system")
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    elsewhere = login(rt, client, clock, "sh-sup", ["supervisor"], "3101")

    def file(external_id, source, category="air.exceedance"):
        return system.post("/api/v1/alarms", json={
            "tenant": "320700", "source": source, "externalId": external_id, "category": category,
            "occurredAt": clock.now().isoformat(), "lon": lon, "lat": lat}).get_json()

    file("A-1", "monitoring")
    reported = file("R-1", "citizen", "citizen.report")
    for element in ("review", "dispatch"):
        items = sup.get(f"/api/v1/task?processInstanceId={reported['processInstanceId']}").get_json()["items"]
        (task,) = [t for t in items if t["taskDefinitionKey"] == element]
        variables = {"review_result": "valid"} if element == "review" else {}
        assert sup.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables}).status_code == 200
    file("R-2", "citizen", "citizen.report")
    page = sup.get("/api/v1/home?tenant=320700").get_json()
    assert {k: v["count"] for k, v in page.items()} == {
        "reported": 1, "alarms": 1, "awaitingDispatch": 0, "dispatchedNotSigned": 1, "awaitingVerification": 0,
        "overdue": 0, "deferred": 0}
    clock.advance(timedelta(days=3))  # past the sign-for deadline and both reviews' (30 min, 10 min urgent)
    page = sup.get("/api/v1/home?tenant=320700").get_json()
    assert page["overdue"]["count"] == 3
    assert sorted(i["task"] for i in page["overdue"]["items"]) == ["review", "review", "sign_for"]
    assert all(v["count"] == 0 for v in elsewhere.get("/api/v1/home?tenant=320700").get_json().values())
    assert sup.get("/api/v1/home?tenant=32070").status_code == 422


def test_evidence_is_checked(world, clock):
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="m",
                                                                   roles=["system"])}, "system")
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    case = system.post("/api/v1/alarms", json={"tenant": "320700", "source": "monitoring", "externalId": "E-1",
                                               "category": "noise", "occurredAt": clock.now().isoformat(),
                                               "lon": lon, "lat": lat}).get_json()
    review = sup.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"][0]
    url = f"/api/v1/task/{review['id']}"
    far = inspector.post(f"{url}/checkin", json={"lon": lon + 0.5, "lat": lat})
    assert far.status_code == 404  # a supervisor's task is not the inspector's to see
    far = sup.post(f"{url}/checkin", json={"lon": lon + 0.5, "lat": lat})
    assert far.status_code == 422 and "outside grid" in far.get_json()["error"]["message"]
    inside = sup.post(f"{url}/checkin", json={"lon": lon, "lat": lat})
    assert inside.status_code == 201 and inside.get_json()["outsideM"] == 0

    def upload(data, name, content_type):
        return sup.post(f"{url}/photos", content_type="multipart/form-data",
                        data={"file": (io.BytesIO(data), name, content_type)})

    assert upload(JPEG, "a.gif", "image/gif").status_code == 415
    assert upload(b"not a jpeg at all", "a.jpg", "image/jpeg").status_code == 415
    assert upload(JPEG + b"x" * 20_000, "big.jpg", "image/jpeg").status_code == 413
    assert sup.post(f"{url}/photos", json={}).status_code == 400
    assert upload(JPEG, "ok.jpg", "image/jpeg").status_code == 201
    kinds = [e["kind"] for e in sup.get(f"{url}/evidence").get_json()]
    assert kinds.count("photo") == 1


def test_urging_a_case_tells_the_inspector_working_on_it(world, clock):
    from notifications.models import Notification

    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="m",
                                                                   roles=["system"])}, "system")
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    leader = login(rt, client, clock, "leader", ["leader"], None)
    inspector = login(rt, client, clock, f"insp-{unit}", ["inspector"], unit)
    case = system.post("/api/v1/alarms", json={"tenant": "320700", "source": "monitoring", "externalId": "U-1",
                                               "category": "noise", "occurredAt": clock.now().isoformat(),
                                               "lon": lon, "lat": lat}).get_json()
    for caller, element, variables in ((sup, "review", {"review_result": "valid"}), (sup, "dispatch", {}),
                                       (inspector, "sign_for", {})):
        items = caller.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"]
        (task,) = [t for t in items if t["taskDefinitionKey"] == element]
        assert caller.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables}).status_code == 200
    urged = leader.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "群众反映强烈，今日办结"},
                        headers={"Idempotency-Key": "urge-1"})
    assert urged.status_code == 201 and urged.get_json()["urged"] == ["handle"]
    # the demo's inspectors have no phone or WeChat id: told nobody, and the answer says so
    assert urged.get_json()["notified"] == [] and urged.get_json()["notNotified"] == [
        {"user": f"insp-{unit}", "reason": "no channel"}]
    again = leader.post(f"/api/v1/cases/{case['id']}/urge", json={"note": "群众反映强烈，今日办结"},
                        headers={"Idempotency-Key": "urge-1"})
    assert again.get_json() == urged.get_json()  # a retried request: the first answer, no second notice
    with rt.db.session() as s:
        (n,) = s.scalars(select(Notification).where(Notification.kind == "urge")).all()
    assert (n.recipient, n.case_id) == (f"insp-{unit}", case["id"])
    assert "群众反映强烈" in n.text and "leader" in n.text


def _multipart(boundary: str, data: bytes, name: str) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_a_retried_photo_upload_with_a_new_multipart_boundary_is_the_same_request(world, clock):
    """A phone's retry re-encodes the form with a new random boundary: it is replayed, not refused
    as a reused Idempotency-Key (the chaos run lost loops to that); another photo under the key is."""
    rt, client, _fake = world
    _unit, lon, lat = point_in_first_unit(rt)
    system = Caller(client, {"X-API-Key": accounts.create_api_key(rt.db, clock.now(), name="m",
                                                                   roles=["system"])}, "system")
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    case = system.post("/api/v1/alarms", json={"tenant": "320700", "source": "monitoring", "externalId": "E-1",
                                               "category": "noise", "occurredAt": clock.now().isoformat(),
                                               "lon": lon, "lat": lat}).get_json()
    review = sup.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"][0]
    url = f"/api/v1/task/{review['id']}"
    assert sup.post(f"{url}/checkin", json={"lon": lon, "lat": lat}).status_code == 201

    def upload(boundary: str, name: str, data: bytes = JPEG):
        return sup.post(f"{url}/photos", data=_multipart(boundary, data, name), headers={
            "Idempotency-Key": "photo-1", "Content-Type": f"multipart/form-data; boundary={boundary}"})

    first = upload("first-boundary", "site.jpg")
    again = upload("another-boundary", "site.jpg")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == first.get_json()
    assert [e["kind"] for e in sup.get(f"{url}/evidence").get_json()].count("photo") == 1
    other = upload("third-boundary", "other.jpg")
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    changed = upload("fourth-boundary", "site.jpg", JPEG[:-2] + b"\x00\xff\xd9")
    assert changed.status_code == 422
