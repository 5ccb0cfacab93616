"""Photos and request sizes: a photo is decoded whole before it is kept, the photo routes take bodies
up to the photo limit (above the general request limit), and every 413 says the limit."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api import create_app
from api.http import FORM_OVERHEAD
from api.settings import Settings
from tests.api import test_open311 as open311_tests
from tests.api.images import JPEG, PNG, image, noisy_jpeg
from workflows.cases import Case
from workflows.evidence import Evidence

REQUEST_LIMIT = 100_000  # scaled down from 4 MB and 8 MB: the same code path, smaller files
PHOTO_LIMIT = 300_000

world = open311_tests.world
city = open311_tests.city


@pytest.fixture
def app(rt, tmp_path):
    settings = Settings(database_url=rt.db.url, secret_key="test-secret", deploy_bundled=False,
                        storage_dir=str(tmp_path / "uploads"), max_request_bytes=REQUEST_LIMIT,
                        max_photo_bytes=PHOTO_LIMIT, enforcement_secret="shared")
    application = create_app(settings, runtime=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def task_url(users, reference_xml, clock):
    assert users["admin"].post("/api/v1/process-definition", data=reference_xml,
                               headers={"Content-Type": "application/xml"}).status_code == 201
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start",
                          json={"variables": {"case_id": "C-1", "value": 1, "grid": "320706001", "handle_due": due}})
    assert r.status_code == 201, r.get_json()
    task = users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]
    return f"/api/v1/task/{task['id']}"


def upload(users, url, data: bytes, content_type: str = "image/jpeg", name: str = "site.jpg"):
    return users["sup"].post(f"{url}/photos", content_type="multipart/form-data",
                             data={"file": (io.BytesIO(data), name, content_type)})


def photos(rt) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(Evidence).where(Evidence.kind == "photo"))


def refusal(r) -> dict:
    error = r.get_json()["error"]
    assert set(error) <= {"code", "message", "fields", "details"}, error
    return error


# -- decoding --------------------------------------------------------------------------------------

@pytest.mark.parametrize("data, content_type", [
    (noisy_jpeg(64, 64)[:200], "image/jpeg"),  # the first 200 bytes of a JPEG
    (noisy_jpeg(64, 64)[:-40], "image/jpeg"),  # all but its end
    (b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9", "image/jpeg"),  # starts and ends like one, nothing inside
    (image("PNG", 32, 32)[:-30], "image/png"),
])
def test_a_photo_that_does_not_decode_whole_is_422_naming_the_file(rt, users, task_url, data, content_type):
    r = upload(users, task_url, data, content_type)
    assert r.status_code == 422, r.get_json()
    error = refusal(r)
    assert "cannot be decoded" in error["fields"]["file"][0]
    assert photos(rt) == 0


@pytest.mark.parametrize("data, content_type", [(JPEG, "image/jpeg"), (PNG, "image/png")])
def test_a_whole_photo_is_kept(rt, users, task_url, data, content_type):
    r = upload(users, task_url, data, content_type)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["size"] == len(data) and photos(rt) == 1


def test_a_bomb_of_pixels_is_refused_before_it_is_decoded(rt, users, task_url):
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (9_000, 8_000)).save(out, "PNG")  # a few kB that decode to 72 megapixels
    r = upload(users, task_url, out.getvalue(), "image/png")
    assert r.status_code == 422 and "megapixels" in refusal(r)["fields"]["file"][0]
    assert photos(rt) == 0


# -- sizes -----------------------------------------------------------------------------------------

def test_a_photo_above_the_request_limit_but_within_the_photo_limit_is_kept(rt, users, task_url):
    data = noisy_jpeg(350, 350)
    assert REQUEST_LIMIT < len(data) < PHOTO_LIMIT
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.jpg\"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n--b0undary--\r\n")
    headers = {"Content-Type": "multipart/form-data; boundary=b0undary", "Idempotency-Key": "photo-1"}
    r = users["sup"].post(f"{task_url}/photos", data=body, headers=headers)  # the key's fingerprint reads it all
    assert r.status_code == 201, r.get_json()
    again = users["sup"].post(f"{task_url}/photos", data=body, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert photos(rt) == 1


def test_a_photo_above_the_photo_limit_is_413_saying_the_limit(rt, users, task_url):
    data = noisy_jpeg(520, 520)
    assert PHOTO_LIMIT < len(data) < PHOTO_LIMIT + FORM_OVERHEAD
    r = upload(users, task_url, data)
    assert r.status_code == 413 and f"{PHOTO_LIMIT} bytes" in refusal(r)["message"]
    body_too_large = upload(users, task_url, noisy_jpeg(600, 600))  # beyond the photo route's body limit too
    assert body_too_large.status_code == 413
    assert f"{PHOTO_LIMIT + FORM_OVERHEAD} bytes" in refusal(body_too_large)["message"]
    assert photos(rt) == 0


def test_other_routes_keep_the_request_limit_and_their_413_says_it(users):
    r = users["admin"].post("/api/v1/process-definition", data="<x>" + "a" * REQUEST_LIMIT + "</x>",
                            headers={"Content-Type": "application/xml"})
    assert r.status_code == 413
    error = refusal(r)
    assert error["code"] == "request_entity_too_large" and f"{REQUEST_LIMIT} bytes (0.0954 MB)" in error["message"]


def test_the_enforcement_callback_413_says_its_limit(users):
    from api.views.enforcement import MAX_BODY

    r = users["anonymous"].client.post("/api/v1/enforcement/callback", data="x" * (MAX_BODY + 1),
                                       headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and f"{MAX_BODY} bytes" in refusal(r)["message"]


# -- Open311 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["json", "xml"])
def test_open311_posted_as_json_is_415_before_the_api_key_is_asked_for(users, suffix):
    r = users["anonymous"].client.post(f"/open311/v2/requests.{suffix}",
                                       json={"service_code": "noise", "lat": 34.6, "long": 119.2})
    assert r.status_code == 415
    assert "x-www-form-urlencoded" in r.get_data(as_text=True) and "api_key" not in r.get_data(as_text=True)


def test_open311_refuses_a_truncated_photo_and_files_nothing(city):
    rt, client, key = city
    r = client.post("/open311/v2/requests.json", content_type="multipart/form-data", data={
        "api_key": key, "service_code": "noise", "address_string": "某处",
        "media": (io.BytesIO(noisy_jpeg(64, 64)[:200]), "cut.jpg", "image/jpeg")})
    assert r.status_code == 422
    (error,) = r.get_json()
    assert error["code"] == 422 and error["description"].startswith("media: the photo cannot be decoded")
    with rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 0


def test_open311_413_says_the_limit_in_its_own_format(city):
    _rt, client, key = city
    client.application.config["MAX_CONTENT_LENGTH"] = 1000  # below the photo route's own limit
    limit = 10_000 + FORM_OVERHEAD  # the world's photo limit plus the form around it
    r = client.post("/open311/v2/requests.json", content_type="multipart/form-data", data={
        "api_key": key, "service_code": "noise", "address_string": "某处",
        "media": (io.BytesIO(noisy_jpeg(400, 400)), "big.jpg", "image/jpeg")})
    assert r.status_code == 413
    (error,) = r.get_json()
    assert error["code"] == 413 and f"larger than the {limit} bytes" in error["description"]
