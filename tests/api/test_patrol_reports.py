"""Problems an inspector finds on patrol, reported over REST (POST /reports): a case of source
"patrol" reviewed by the grid's supervisor like every intake, its photos on the case for the
reviewer; the refusals (role, place, category, photos) leave nothing behind; a replayed write
files one case. Fixtures are those of the full-loop test (tests/api/test_closed_loop_http.py)."""

from __future__ import annotations

import io
import threading

import pytest
import shapely
from sqlalchemy import delete, func, select

from api.idempotency import IdempotencyRecord
from engine.models import Incident
from tests.api import test_closed_loop_http as full_loop
from tests.api.images import JPEG, PNG, image
from tests.api.test_closed_loop_http import login, point_in_first_unit, run_jobs
from workflows.cases import Case, CaseAlarm
from workflows.evidence import Evidence
from workflows.grids import Grid
from workflows.notices import reporters
from workflows.people import Person

world = full_loop.world  # the demo city 320700, env_case deployed, an app with 10 000-byte photos


def second_unit(rt) -> tuple[str, float, float]:
    with rt.db.session() as s:
        code, geometry = s.execute(select(Grid.code, Grid.geometry).where(Grid.level == "unit")
                                   .order_by(Grid.code).offset(1).limit(1)).one()
    p = shapely.from_geojson(geometry).representative_point()
    return code, p.x, p.y


def multipart(fields: dict[str, str], photos, boundary: str = "gridloop-test-boundary") -> tuple[bytes, str]:
    """The body as the phone's offline queue builds it: fixed bytes, so a replay is the same request."""
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for n, (data, content_type) in enumerate(photos):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="p{n}"\r\n'
                     f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def report(caller, lon, lat, *, photos=((JPEG, "image/jpeg"),), key=None, **fields):
    form = {"tenant": "320700", "category": "solid_waste", "lon": str(lon), "lat": str(lat),
            "description": "河道旁倾倒建筑垃圾", **fields}
    body, content_type = multipart({k: v for k, v in form.items() if v is not None}, photos)
    headers = {"Idempotency-Key": key} if key else {}
    return caller.post("/api/v1/reports", data=body, content_type=content_type, headers=headers)


def counts(rt) -> tuple[int, int, int]:
    with rt.db.session() as s:
        return (s.scalar(select(func.count()).select_from(Case).where(Case.source == "patrol")),
                s.scalar(select(func.count()).select_from(CaseAlarm).where(CaseAlarm.source == "patrol")),
                s.scalar(select(func.count()).select_from(Evidence)))


@pytest.fixture
def patrol(world, clock):
    rt, client, _fake = world
    unit, lon, lat = point_in_first_unit(rt)
    inspector = login(rt, client, clock, "insp-patrol", ["inspector"], unit)
    with rt.db.transaction() as s:
        s.add(Person(tenant="320700", username="insp-patrol", name="巡查员甲", post="inspector", grid_code=unit,
                     phone="+8613800000001"))
    sup = login(rt, client, clock, "city-sup", ["supervisor"], "3207")
    return rt, client, inspector, sup, (unit, lon, lat)


def test_a_patrol_report_is_a_case_reviewed_by_the_supervisor_who_sees_its_photos(patrol, clock):
    rt, client, inspector, sup, (unit, lon, lat) = patrol
    r = report(inspector, lon, lat, photos=[(JPEG, "image/jpeg"), (PNG, "image/png")], key="k-1")
    assert r.status_code == 201, r.get_json()
    case = r.get_json()
    assert (case["source"], case["outcome"], case["grid"], case["category"]) == ("patrol", "filed", unit, "solid_waste")
    assert case["description"] == "河道旁倾倒建筑垃圾" and (case["lon"], case["lat"]) == (lon, lat)
    assert [p["size"] for p in case["photos"]] == [len(JPEG), len(PNG)]
    with rt.db.session() as s:
        details = s.get(Case, case["id"]).details
    assert details["reporter"] == "insp-patrol" and details["patrol"]["report_id"] == case["reportId"]
    assert details["patrol"]["person"]["name"] == "巡查员甲"

    tasks = sup.get(f"/api/v1/task?processInstanceId={case['processInstanceId']}").get_json()["items"]
    assert [t["taskDefinitionKey"] for t in tasks] == ["review"]  # a supervisor reviews every intake
    home = sup.get("/api/v1/home?tenant=320700").get_json()
    assert case["id"] in [i["caseId"] for i in home["reported"]["items"]]

    photos = sup.get(f"/api/v1/cases/{case['id']}/photos").get_json()
    assert [(p["task"], p["taskId"], p["contentType"]) for p in photos] == [
        (None, case["reportId"], "image/jpeg"), (None, case["reportId"], "image/png")]
    for photo, raw in zip(photos, (JPEG, PNG), strict=True):
        got = sup.get(f"/api/v1/cases/{case['id']}/photos/{photo['id']}/file")
        assert got.status_code == 200 and got.data == raw
    other = login(rt, client, clock, "insp-elsewhere", ["inspector"], second_unit(rt)[0])
    assert other.get(f"/api/v1/cases/{case['id']}/photos").status_code == 404  # not their grid
    assert inspector.get(f"/api/v1/cases/{case['id']}/photos").status_code == 200
    assert sup.get(f"/api/v1/cases/{case['id']}/photos/999999/file").status_code == 404


def test_the_patrol_case_goes_round_the_loop_and_closes(patrol, clock):
    """The close tells the case's reporter: an inspector is staff, not a citizen, and is not sent a
    citizen's reply (the notice job must not fail on a reporter that is a username)."""
    rt, _client, inspector, sup, (_unit, lon, lat) = patrol
    case = report(inspector, lon, lat).get_json()
    pid = case["processInstanceId"]

    def act(caller, element, **variables):
        items = caller.get(f"/api/v1/task?processInstanceId={pid}").get_json()["items"]
        (task,) = [t for t in items if t["taskDefinitionKey"] == element]
        r = caller.post(f"/api/v1/task/{task['id']}/complete", json={"variables": variables})
        assert r.status_code == 200, r.get_json()
        return task["id"]

    act(sup, "review", review_result="valid")
    act(sup, "dispatch", inspector="insp-patrol")
    act(inspector, "sign_for")
    items = inspector.get(f"/api/v1/task?processInstanceId={pid}").get_json()["items"]
    (handle,) = [t for t in items if t["taskDefinitionKey"] == "handle"]
    assert inspector.post(f"/api/v1/task/{handle['id']}/checkin", json={"lon": lon, "lat": lat}).status_code == 201
    assert inspector.post(f"/api/v1/task/{handle['id']}/photos", content_type="multipart/form-data",
                          data={"file": (io.BytesIO(image("JPEG", 9, 9)), "s.jpg", "image/jpeg")}).status_code == 201
    act(inspector, "handle", handle_result="done", finding_kind="rectified")
    act(sup, "verify", verified=True, reply="已清理")
    run_jobs(rt)
    detail = sup.get(f"/api/v1/cases/{case['id']}").get_json()
    assert (detail["status"], detail["outcome"]) == ("closed", "closed")
    photos = sup.get(f"/api/v1/cases/{case['id']}/photos").get_json()
    assert [p["task"] for p in photos] == [None, "handle"]  # the report's, then the on-site one
    with rt.db.session() as s:
        assert s.scalars(select(Incident.message)).all() == []
        assert reporters(s, s.get(Case, case["id"])) == []  # no citizen to reply to


@pytest.mark.parametrize("who", ["city-sup", "leader", "admin", "system", "anonymous"])
def test_only_inspectors_report_from_patrol(patrol, clock, who):
    rt, client, _inspector, sup, (_unit, lon, lat) = patrol
    if who == "city-sup":
        caller, status = sup, 403
    elif who == "system":
        from api import accounts
        from tests.api.conftest import Caller

        key = accounts.create_api_key(rt.db, clock.now(), name="feed", roles=["system"])
        caller, status = Caller(client, {"X-API-Key": key}, "system"), 403
    elif who == "anonymous":
        from tests.api.conftest import Caller

        caller, status = Caller(client, {}, "anonymous"), 401
    else:
        caller, status = login(rt, client, clock, who, [who], None), 403
    assert report(caller, lon, lat).status_code == status
    assert counts(rt) == (0, 0, 0)


def test_a_position_outside_the_inspectors_grid_is_refused_naming_it(patrol, tmp_path):
    rt, _client, inspector, _sup, _place = patrol
    _other, lon, lat = second_unit(rt)
    r = report(inspector, lon, lat)
    assert r.status_code == 422 and set(r.get_json()["error"]["fields"]) == {"lon", "lat"}
    assert "outside your grid" in r.get_json()["error"]["message"]
    assert counts(rt) == (0, 0, 0)
    assert not list((tmp_path / "uploads").rglob("*.*"))  # no photo file kept either


@pytest.mark.parametrize(("fields", "named"), [
    ({"category": "no.such"}, "category"),
    ({"category": None}, "category"),
    ({"description": None}, "description"),
    ({"description": ""}, "description"),
    ({"at": ("east", None)}, "lon"),
    ({"at": (None, "95")}, "lat"),
    ({"extra": "x"}, "extra"),
])
def test_bad_fields_are_422_naming_them(patrol, fields, named):
    rt, _client, inspector, _sup, (_unit, lon, lat) = patrol
    fields = dict(fields)  # the parameters are shared by both databases
    given_lon, given_lat = fields.pop("at", (None, None))
    r = report(inspector, given_lon or lon, given_lat or lat, **fields)
    assert r.status_code == 422 and named in r.get_json()["error"]["fields"], r.get_json()
    assert counts(rt) == (0, 0, 0)


def test_a_tenant_the_inspector_does_not_work_in_is_403(patrol):
    rt, _client, inspector, _sup, (_unit, lon, lat) = patrol
    r = report(inspector, lon, lat, tenant="310100")
    assert r.status_code == 403 and "tenant" in r.get_json()["error"]["fields"]
    assert counts(rt) == (0, 0, 0)


@pytest.mark.parametrize(("photos", "status"), [
    ([(JPEG[: len(JPEG) // 2], "image/jpeg")], 422),  # cut short in transfer
    ([(b"\xff\xd8\xff" + b"\0" * 200, "image/jpeg")], 422),  # starts like a JPEG, is not one
    ([(PNG, "image/jpeg")], 415),  # says JPEG, is a PNG
    ([(b"GIF89a....", "image/gif")], 415),
    ([(JPEG, "image/jpeg"), (b"not an image", "image/png")], 415),  # one bad photo: none kept
    ([(image("JPEG", 400, 400) + b"\0" * 10_000, "image/jpeg")], 413),  # above the app's 10 000 bytes
    ([], 422),  # a report needs a photo
    ([(JPEG, "image/jpeg")] * 5, 422),  # at most four
])
def test_broken_or_missing_photos_are_refused_and_nothing_is_kept(patrol, tmp_path, photos, status):
    rt, _client, inspector, _sup, (_unit, lon, lat) = patrol
    r = report(inspector, lon, lat, photos=photos)
    assert r.status_code == status and "photos" in r.get_json()["error"]["fields"], r.get_json()
    assert counts(rt) == (0, 0, 0)
    assert not list((tmp_path / "uploads").rglob("*.*"))


def test_a_json_body_is_refused(patrol):
    _rt, _client, inspector, _sup, (_unit, lon, lat) = patrol
    r = inspector.post("/api/v1/reports", json={"tenant": "320700", "category": "noise", "lon": lon, "lat": lat,
                                                "description": "x"})
    assert r.status_code == 400 and "multipart" in r.get_json()["error"]["message"]


def test_the_same_write_replayed_files_one_case(patrol):
    rt, _client, inspector, _sup, (_unit, lon, lat) = patrol
    first = report(inspector, lon, lat, key="offline-7")
    again = report(inspector, lon, lat, key="offline-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert counts(rt) == (1, 1, 1)
    # the stored answer expired (24 h): the key still names the report, now a repeat of its case
    with rt.db.transaction() as s:
        s.execute(delete(IdempotencyRecord))
    late = report(inspector, lon, lat, key="offline-7")
    assert late.status_code == 200 and late.get_json()["outcome"] == "repeat"
    assert late.get_json()["id"] == first.get_json()["id"] and len(late.get_json()["photos"]) == 1
    assert counts(rt) == (1, 1, 1)
    other = report(inspector, lon, lat, key="offline-7", description="另一处")  # same key, different body
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"
    assert counts(rt) == (1, 1, 1)


def test_the_same_problem_reported_nearby_joins_the_open_case_with_its_photos(patrol):
    rt, _client, inspector, sup, (_unit, lon, lat) = patrol
    first = report(inspector, lon, lat).get_json()
    second = report(inspector, lon + 0.0002, lat, photos=[(PNG, "image/png")])
    assert second.status_code == 200 and second.get_json()["outcome"] == "occurrence"
    assert second.get_json()["id"] == first["id"]
    photos = sup.get(f"/api/v1/cases/{first['id']}/photos").get_json()
    assert [p["contentType"] for p in photos] == ["image/jpeg", "image/png"]
    assert counts(rt) == (1, 2, 2)
    other_category = report(inspector, lon, lat, category="noise")
    assert other_category.status_code == 201 and other_category.get_json()["id"] != first["id"]


def test_an_inspector_without_a_grid_cannot_report(world, clock):
    rt, client, _fake = world
    _unit, lon, lat = point_in_first_unit(rt)
    nowhere = login(rt, client, clock, "insp-nowhere", ["inspector"], None)
    assert report(nowhere, lon, lat).status_code == 403
    assert counts(rt) == (0, 0, 0)


def test_two_submits_of_one_write_at_the_same_moment_file_one_case(patrol):
    """The phone sent it, lost the connection, and its queue replayed it while the first was still in
    progress: one acts, the other is told so (409) or answered the stored reply; one case either way."""
    rt, client, inspector, _sup, (_unit, lon, lat) = patrol
    barrier, answers = threading.Barrier(2), []
    body, content_type = multipart({"tenant": "320700", "category": "noise", "lon": str(lon), "lat": str(lat),
                                    "description": "同时提交"}, [(JPEG, "image/jpeg")])

    def send() -> None:
        own = client.application.test_client()
        barrier.wait()
        answers.append(own.post("/api/v1/reports", data=body, content_type=content_type,
                                headers={**inspector.headers, "Idempotency-Key": "twice-at-once"}))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([201, 201], [201, 409]), [a.get_json() for a in answers]
    assert counts(rt) == (1, 1, 1)
