"""Open311 GeoReport v2 from a citizen app's side: the services it may report, posting a request
(a point, an address only, a photo), its status from open to closed as the case goes round the
loop, a report of the same problem nearby joining the open case, errors in Open311's format, and
the rate limit in front of it all (in process and in Redis).

Fixtures are those of the full-loop test (tests/api/test_closed_loop_http.py)."""

from __future__ import annotations

import hashlib
import io
import math
import uuid
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest
from redis import Redis
from sqlalchemy import func, select

from api import accounts
from api.ratelimit import FixedWindowLimiter, Rate
from api.settings import Settings
from api.views.open311 import EXTENSION, Open311Config
from engine import instances, tasks
from tests.api import test_closed_loop_http as full_loop
from tests.api.conftest import PASSWORD
from tests.api.test_closed_loop_http import JPEG, point_in_first_unit
from tests.conftest import REDIS_URL
from workflows.cases import Case, CaseAlarm
from workflows.evidence import Evidence

world = full_loop.world  # the demo city 320700, the env_case model deployed, an app

BASE = "/open311/v2"


@pytest.fixture
def city(world, clock):
    """(rt, client, api_key), rate limits off unless a test sets them."""
    rt, client, _fake = world
    client.application.extensions[EXTENSION] = Open311Config()
    key = accounts.create_api_key(rt.db, clock.now(), name="citizen-app", roles=["reporter"])
    return rt, client, key


def post(client, key, **fields):
    return client.post(f"{BASE}/requests.json", data={"api_key": key, **fields})


def offset(lon: float, lat: float, east_m: float) -> tuple[float, float]:
    return lon + east_m / (111_320.0 * math.cos(math.radians(lat))), lat


def case_of(rt, request_id: str) -> Case:
    with rt.db.session() as s:
        return s.scalar(select(Case).join(CaseAlarm, CaseAlarm.case_id == Case.id)
                        .where(CaseAlarm.source == "citizen", CaseAlarm.external_id == request_id))


def status_of(client, request_id: str) -> dict:
    r = client.get(f"{BASE}/requests/{request_id}.json")
    assert r.status_code == 200, r.get_data(as_text=True)
    (request,) = r.get_json()
    return request


# -- services --------------------------------------------------------------------------------------

def test_services_are_the_citizen_reportable_categories_in_json_and_xml(city):
    _rt, client, _key = city
    r = client.get(f"{BASE}/services.json")
    assert r.status_code == 200 and r.content_type.startswith("application/json")
    services = r.get_json()
    assert [s["service_code"] for s in services] == ["citizen.report", "noise", "solid_waste"]
    assert services[1] == {"service_code": "noise", "service_name": "噪声扰民 Noise nuisance",
                           "description": "噪声扰民 Noise nuisance", "metadata": False, "type": "realtime",
                           "keywords": "", "group": ""}
    xml = client.get(f"{BASE}/services.xml?jurisdiction_id=320700")
    assert xml.content_type.startswith("text/xml") and xml.data.startswith(b"<?xml")
    root = ET.fromstring(xml.data)
    assert root.tag == "services" and [s.findtext("service_code") for s in root] == [
        "citizen.report", "noise", "solid_waste"]
    assert root[1].findtext("metadata") == "false"
    definition = client.get(f"{BASE}/services/noise.json").get_json()
    assert definition == {"service_code": "noise", "attributes": []}
    assert ET.fromstring(client.get(f"{BASE}/services/noise.xml").data).tag == "service_definition"
    missing = client.get(f"{BASE}/services/air.exceedance.json")  # monitoring's, not the public's
    assert missing.status_code == 404 and missing.get_json()[0]["code"] == 404
    unknown = client.get(f"{BASE}/services.json?jurisdiction_id=310100")
    assert unknown.status_code == 404 and "310100" in unknown.get_json()[0]["description"]


# -- posting requests --------------------------------------------------------------------------------

def test_a_request_with_a_point_files_a_case_in_its_grid_with_the_reporter(city, clock):
    rt, client, key = city
    unit, lon, lat = point_in_first_unit(rt)
    r = post(client, key, service_code="noise", lat=str(lat), long=str(lon), description="工地夜间施工噪声",
             first_name="张", last_name="三", phone="13800000000", email="z@example.cn", account_id="acct-9",
             device_id="dev-1")
    assert r.status_code == 201, r.get_data(as_text=True)
    (created,) = r.get_json()
    assert set(created) == {"service_request_id", "service_notice", "account_id"}
    assert created["account_id"] == "acct-9" and created["service_notice"]
    case = case_of(rt, created["service_request_id"])
    assert (case.source, case.external_id, case.category, case.grid_code) == (
        "citizen", created["service_request_id"], "noise", unit)
    assert case.instance_id and case.description == "工地夜间施工噪声"
    assert case.details["reporter"] == {"name": "张 三", "phone": "13800000000", "email": "z@example.cn"}
    request = status_of(client, created["service_request_id"])
    assert request["status"] == "open" and request["status_notes"].startswith("处理中")
    assert (request["lat"], request["long"], request["service_code"]) == (lat, lon, "noise")
    assert request["service_name"] == "噪声扰民 Noise nuisance" and request["agency_responsible"]
    assert request["requested_datetime"] == clock.now().isoformat(timespec="seconds")
    assert request["description"] == "工地夜间施工噪声" and request["media_url"] is None
    assert "13800000000" not in client.get(f"{BASE}/requests/{created['service_request_id']}.json").get_data(
        as_text=True)  # the reporter's contact never goes out


def test_a_request_with_only_an_address_goes_to_the_city_saying_why(city):
    rt, client, key = city
    r = post(client, key, service_code="solid_waste", address_string="海州区朝阳东路 88 号北侧空地")
    assert r.status_code == 201
    case = case_of(rt, r.get_json()[0]["service_request_id"])
    assert case.grid_code == "320700" and case.lon is None
    assert case.route_reason == "reported by address only (no geocoder): 海州区朝阳东路 88 号北侧空地"
    request = status_of(client, r.get_json()[0]["service_request_id"])
    assert request["address"] == "海州区朝阳东路 88 号北侧空地" and request["lat"] is None


def test_a_photo_posted_as_multipart_media_is_kept_and_served_at_media_url(city, clock):
    rt, client, key = city
    _unit, lon, lat = point_in_first_unit(rt)
    r = client.post(f"{BASE}/requests.json", content_type="multipart/form-data", data={
        "api_key": key, "service_code": "solid_waste", "lat": str(lat), "long": str(lon),
        "media": (io.BytesIO(JPEG), "dump.jpg", "image/jpeg")})
    assert r.status_code == 201, r.get_data(as_text=True)
    request = status_of(client, r.get_json()[0]["service_request_id"])
    assert request["media_url"].endswith(f"{BASE}/media/{request['service_request_id']}")
    photo = client.get(request["media_url"].removeprefix("http://localhost"))
    assert photo.status_code == 200 and photo.data == JPEG and photo.mimetype == "image/jpeg"
    with rt.db.session() as s:
        kept = s.scalar(select(Evidence).where(Evidence.task_id == request["service_request_id"]))
    assert kept.instance_id == case_of(rt, request["service_request_id"]).instance_id
    assert (kept.sha256, kept.size, kept.created_by) == (hashlib.sha256(JPEG).hexdigest(), len(JPEG),
                                                         "system:citizen-app")
    with rt.db.session() as s:  # an inspector's on-site photo is never served, whatever id is asked
        s.add(Evidence(task_id="task-1", instance_id="i", kind="photo", path=photo_path(rt, request),
                       content_type="image/jpeg", created_by="insp", created_at=clock.now()))
    assert client.get(f"{BASE}/media/task-1").status_code == 404
    assert client.get(f"{BASE}/media/R-none").status_code == 404


def photo_path(rt, request) -> str:
    with rt.db.session() as s:
        return s.scalar(select(Evidence.path).where(Evidence.task_id == request["service_request_id"]))


@pytest.mark.parametrize("media, status", [
    ((b"not a picture", "x.txt", "text/plain"), 415),
    ((JPEG, "x.png", "image/png"), 415),  # a JPEG sent as PNG
    ((JPEG + b"\x00" * 20_000, "big.jpg", "image/jpeg"), 413),  # the world allows 10 000 bytes
])
def test_a_bad_photo_is_refused_and_files_nothing(city, media, status):
    rt, client, key = city
    data, name, content_type = media
    r = client.post(f"{BASE}/requests.json", content_type="multipart/form-data", data={
        "api_key": key, "service_code": "noise", "address_string": "某处",
        "media": (io.BytesIO(data), name, content_type)})
    assert r.status_code == status
    (error,) = r.get_json()
    assert error["code"] == status and error["description"].startswith("media:")
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


@pytest.mark.parametrize("fields, fragment", [
    ({}, "service_code is required"),
    ({"service_code": "noise"}, "a location is required"),
    ({"service_code": "noise", "lat": "34.6"}, "both lat and long"),
    ({"service_code": "noise", "lat": "north", "long": "119.2"}, "lat must be a decimal number"),
    ({"service_code": "noise", "lat": "134.6", "long": "119.2"}, "lat must be between"),
    ({"service_code": "noise", "lat": "nan", "long": "119.2"}, "lat must be between"),
    ({"service_code": "air.exceedance", "address_string": "x"}, "not a service"),
    ({"service_code": "noise", "address_string": "x", "description": "长" * 2001}, "description is longer"),
    ({"service_code": "noise", "address_string": "x", "email": "not-an-address"}, "email"),
    ({"service_code": "noise", "address_string": "x", "media_url": "javascript:alert(1)"}, "media_url"),
    ({"service_code": "noise", "address_string": "x", "jurisdiction_id": "110000"}, "110000"),
])
def test_bad_input_is_an_open311_error_with_a_description(city, fields, fragment):
    rt, client, key = city
    r = post(client, key, **fields)
    assert r.status_code in (400, 404), r.get_data(as_text=True)
    (error,) = r.get_json()
    assert error["code"] == r.status_code and fragment in error["description"]
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_errors_of_xml_endpoints_are_xml(city):
    _rt, client, key = city
    r = client.post(f"{BASE}/requests.xml", data={"api_key": key, "service_code": "noise"})
    assert r.status_code == 400 and r.content_type.startswith("text/xml")
    root = ET.fromstring(r.data)
    assert root.tag == "errors" and root[0].findtext("code") == "400"
    assert "location" in root[0].findtext("description")


def test_posting_needs_an_api_key_of_a_reporting_system(city, clock):
    rt, client, _key = city
    fields = {"service_code": "noise", "address_string": "某处"}
    missing = client.post(f"{BASE}/requests.json", data=fields)
    assert missing.status_code == 401 and "api_key" in missing.get_json()[0]["description"]
    wrong = client.post(f"{BASE}/requests.json", data={**fields, "api_key": "glk_nope"})
    assert wrong.status_code == 403 and wrong.get_json() == [{"code": 403, "description": "invalid api_key"}]
    admin_key = accounts.create_api_key(rt.db, clock.now(), name="ops", roles=["admin"])
    assert client.post(f"{BASE}/requests.json", data={**fields, "api_key": admin_key}).status_code == 403
    reporter = {"X-API-Key": _key}  # the citizen app's key files reports and reads nothing of the staff API
    assert client.get("/api/v1/cases?tenant=320700", headers=reporter).status_code == 403
    assert client.post("/api/v1/alarms", json={}, headers=reporter).status_code == 403
    accounts.create_user(rt.db, clock.now(), username="a", password=PASSWORD, roles=["admin"],
                         hash_method="pbkdf2:sha256:1000")
    token = client.post("/api/v1/auth/token", json={"username": "a", "password": PASSWORD}).get_json()
    person = client.post(f"{BASE}/requests.json", data=fields,
                         headers={"Authorization": f"Bearer {token['access_token']}"})
    assert person.status_code == 403  # a person's token is not a reporting system's key
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0
    header = client.post(f"{BASE}/requests.json", data=fields, headers={"X-API-Key": _key})
    assert header.status_code == 201


def test_a_retried_post_with_an_idempotency_key_files_once(city):
    rt, client, key = city
    fields = {"api_key": key, "service_code": "noise", "address_string": "某处"}
    first = client.post(f"{BASE}/requests.json", data=fields, headers={"Idempotency-Key": "k-1"})
    again = client.post(f"{BASE}/requests.json", data=fields, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and first.get_json() == again.get_json()
    other = client.post(f"{BASE}/requests.json", data={**fields, "address_string": "别处"},
                        headers={"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1


# -- status from open to closed ----------------------------------------------------------------------

def do(rt, iid, element, actor, **variables):
    (task,) = [t for t in instances.open_tasks(rt, iid) if t.element_id == element]
    tasks.complete(rt, task.id, actor, variables)


def test_the_status_follows_the_case_from_open_to_closed(city, clock):
    rt, client, key = city
    unit, lon, lat = point_in_first_unit(rt)
    request_id = post(client, key, service_code="citizen.report", lat=str(lat), long=str(lon),
                      description="河道漂浮垃圾").get_json()[0]["service_request_id"]
    iid = case_of(rt, request_id).instance_id
    request = status_of(client, request_id)
    assert (request["status"], request["status_notes"]) == ("open", "处理中 In progress: 甄别 Review")
    do(rt, iid, "review", "sup", review_result="valid")
    do(rt, iid, "dispatch", "sup")
    request = status_of(client, request_id)
    assert request["status"] == "open" and "签收" in request["status_notes"]
    assert request["expected_datetime"] is not None  # the sign-for deadline
    do(rt, iid, "sign_for", f"insp-{unit}")
    clock.advance(timedelta(hours=2))
    do(rt, iid, "handle", f"insp-{unit}", handle_result="done", finding_kind="rectified")
    do(rt, iid, "verify", "sup", verified=True)
    request = status_of(client, request_id)
    assert request["status"] == "closed" and request["status_notes"].startswith("已办结")
    assert request["updated_datetime"] == clock.now().isoformat(timespec="seconds")
    assert request["expected_datetime"] is None
    xml = ET.fromstring(client.get(f"{BASE}/requests/{request_id}.xml").data)
    assert xml.tag == "service_requests" and xml[0].findtext("status") == "closed"
    assert client.get(f"{BASE}/requests/R-none.json").status_code == 404


def test_a_report_refused_at_review_is_closed_with_that_note(city):
    rt, client, key = city
    request_id = post(client, key, service_code="noise", address_string="某处").get_json()[0]["service_request_id"]
    do(rt, case_of(rt, request_id).instance_id, "review", "sup", review_result="invalid", invalid_reason="误报")
    request = status_of(client, request_id)
    assert request["status"] == "closed" and request["status_notes"].startswith("经核实不予立案")


# -- duplicates ----------------------------------------------------------------------------------------

def test_a_report_of_the_same_problem_nearby_joins_the_open_case(city, clock):
    rt, client, key = city
    _unit, lon, lat = point_in_first_unit(rt)
    first = post(client, key, service_code="solid_waste", lat=str(lat), long=str(lon)).get_json()[0]
    clock.advance(timedelta(hours=3))
    near_lon, near_lat = offset(lon, lat, 60)
    second = post(client, key, service_code="solid_waste", lat=str(near_lat), long=str(near_lon),
                  description="又倒了一车").get_json()[0]
    assert "joined" in second["service_notice"] or "合并" in second["service_notice"]
    case = case_of(rt, first["service_request_id"])
    assert case_of(rt, second["service_request_id"]).id == case.id
    assert case.occurrences == 2 and case.last_seen == clock.now()
    joined = status_of(client, second["service_request_id"])
    assert joined["status"] == "open" and "already reported nearby" in joined["status_notes"]
    assert (joined["lat"], joined["long"], joined["description"]) == (near_lat, near_lon, "又倒了一车")
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1


def test_a_far_report_another_category_or_a_stale_case_makes_a_new_case(city, clock):
    rt, client, key = city
    _unit, lon, lat = point_in_first_unit(rt)
    first = post(client, key, service_code="solid_waste", lat=str(lat), long=str(lon)).get_json()[0]
    far_lon, far_lat = offset(lon, lat, 150)
    far = post(client, key, service_code="solid_waste", lat=str(far_lat), long=str(far_lon)).get_json()[0]
    other = post(client, key, service_code="noise", lat=str(lat), long=str(lon)).get_json()[0]
    clock.advance(timedelta(hours=25))  # outside the 24 h window of the first case's last report
    late = post(client, key, service_code="solid_waste", lat=str(lat), long=str(lon)).get_json()[0]
    cases = {case_of(rt, r["service_request_id"]).id for r in (first, far, other, late)}
    assert len(cases) == 4


def test_the_duplicate_radius_and_window_are_configurable(city, clock):
    rt, client, key = city
    client.application.extensions[EXTENSION] = Open311Config.from_settings(Settings(
        secret_key="x", report_duplicate_radius_m=300, report_duplicate_window_h=48, open311_rate_ip="0",
        open311_rate_key="0"))
    _unit, lon, lat = point_in_first_unit(rt)
    first = post(client, key, service_code="solid_waste", lat=str(lat), long=str(lon)).get_json()[0]
    clock.advance(timedelta(hours=30))
    far_lon, far_lat = offset(lon, lat, 250)
    second = post(client, key, service_code="solid_waste", lat=str(far_lat), long=str(far_lon)).get_json()[0]
    assert case_of(rt, first["service_request_id"]).id == case_of(rt, second["service_request_id"]).id


# -- querying requests ---------------------------------------------------------------------------------

def test_requests_are_listed_with_the_specs_filters(city, clock):
    rt, client, key = city
    _unit, lon, lat = point_in_first_unit(rt)
    a = post(client, key, service_code="noise", address_string="一").get_json()[0]["service_request_id"]
    clock.advance(timedelta(days=2))
    b = post(client, key, service_code="solid_waste", lat=str(lat), long=str(lon)).get_json()[0]["service_request_id"]
    do(rt, case_of(rt, a).instance_id, "review", "sup", review_result="invalid", invalid_reason="误报")

    def ids(query: str) -> list[str]:
        r = client.get(f"{BASE}/requests.json{query}")
        assert r.status_code == 200, r.get_data(as_text=True)
        return [x["service_request_id"] for x in r.get_json()]

    assert ids("") == [b, a]  # newest first, the last 90 days
    assert ids(f"?service_request_id={a},{b}") == [b, a]
    assert ids(f"?service_request_id={a}&status=open") == [a]  # ids given: the other filters do not apply
    assert ids("?status=closed") == [a] and ids("?status=open,closed") == [b, a]
    assert ids("?service_code=solid_waste") == [b]
    since = (clock.now() - timedelta(days=1)).isoformat()
    assert ids(f"?start_date={since.replace('+', '%2B')}") == [b]
    assert ids(f"?end_date={since.replace('+', '%2B')}") == [a]
    xml = ET.fromstring(client.get(f"{BASE}/requests.xml?status=closed").data)
    assert [r.findtext("service_request_id") for r in xml] == [a]
    for query, fragment in (("?status=pending", "status"), ("?start_date=yesterday", "start_date"),
                            ("?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z", "90 days"),
                            ("?start_date=2026-06-01T00:00:00Z&end_date=2026-01-01T00:00:00Z", "before"),
                            ("?end_date=2026-06-01T00:00:00", "offset")):
        r = client.get(f"{BASE}/requests.json{query}")
        assert r.status_code == 400 and fragment in r.get_json()[0]["description"], query


# -- rate limits -------------------------------------------------------------------------------------

@pytest.fixture(params=["memory", "redis"])
def limiter_store(request):
    if request.param == "memory":
        yield None
        return
    redis = Redis.from_url(REDIS_URL)
    try:
        redis.ping()
    except Exception:
        pytest.skip("Redis not reachable")
    yield redis
    redis.close()


def test_too_many_requests_are_429_with_retry_after_per_ip_and_per_key(city, clock, limiter_store):
    rt, client, key = city
    prefix = f"gridloop:test:{uuid.uuid4().hex}:"

    def now() -> float:
        return clock.now().timestamp()

    client.application.extensions[EXTENSION] = Open311Config(
        per_ip=FixedWindowLimiter(Rate(5, 60), redis=limiter_store, prefix=prefix + "ip:", clock=now),
        per_key=FixedWindowLimiter(Rate(2, 60), redis=limiter_store, prefix=prefix + "key:", clock=now))
    fields = {"service_code": "noise", "address_string": "某处"}
    assert [post(client, key, **fields).status_code for _ in range(3)] == [201, 201, 429]
    refused = post(client, key, **fields)  # the 4th from this client: the key's limit answers first
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) == 60 - int(clock.now().timestamp()) % 60
    assert refused.get_json()[0]["code"] == 429 and "api_key" in refused.get_json()[0]["description"]
    assert client.get(f"{BASE}/services.json").status_code == 200  # the 5th from this client
    by_ip = client.get(f"{BASE}/services.json")
    assert by_ip.status_code == 429 and "client" in by_ip.get_json()[0]["description"]
    other_client = client.get(f"{BASE}/services.json", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other_client.status_code == 200
    clock.advance(timedelta(seconds=int(by_ip.headers["Retry-After"])))  # the next window
    assert post(client, key, **fields).status_code == 201
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 3


def test_rates_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")  # no var/secret_key written
    for name, value in (("OPEN311_RATE_IP", "10/30"), ("OPEN311_RATE_KEY", "0"),
                        ("OPEN311_SERVICES", "noise, citizen.report"), ("OPEN311_PROXY_HOPS", "1")):
        monkeypatch.setenv(f"GRIDLOOP_{name}", value)
    cfg = Open311Config.from_settings(Settings.from_env())
    assert cfg.per_ip.rate == Rate(10, 30) and cfg.per_key is None
    assert cfg.services == ("noise", "citizen.report") and cfg.proxy_hops == 1
    defaults = Open311Config.from_settings(Settings(secret_key="x"))
    assert defaults.per_ip.rate == Rate(120, 60) and defaults.per_key.rate == Rate(300, 60)
    assert defaults.duplicates.radius_m == 100 and defaults.duplicates.window == timedelta(hours=24)
    with pytest.raises(ValueError):
        Rate.parse("-1/60")


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited(city, clock):
    _rt, client, _key = city
    client.application.extensions[EXTENSION] = Open311Config(
        per_ip=FixedWindowLimiter(Rate(1, 60), clock=lambda: clock.now().timestamp()), proxy_hops=1)
    for forwarded, expected in (("1.1.1.1", 200), ("9.9.9.9, 2.2.2.2", 200), ("1.1.1.1", 429)):
        r = client.get(f"{BASE}/services.json", headers={"X-Forwarded-For": forwarded})
        assert r.status_code == expected, forwarded
