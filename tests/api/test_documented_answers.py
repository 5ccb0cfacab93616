"""What the API fuzzer (test_api_fuzz.py) found answering otherwise than the OpenAPI document says,
each checked here against the document with the fuzzer's own checks on a request that shows it."""

from __future__ import annotations

from schemathesis import openapi

from api import accounts, create_app
from api.settings import Settings
from tests.api.fuzzing import CHECKS
from tests.city import inside

PASSWORD = "correct horse battery"


def _app_and_admin(rt):
    app = create_app(Settings(database_url=rt.db.url, secret_key="doc-secret", deploy_bundled=False), runtime=rt)
    accounts.create_user(rt.db, rt.clock.now(), username="doc-admin", password=PASSWORD, roles=["admin"],
                         hash_method="pbkdf2:sha256:1000")
    token = app.test_client().post("/api/v1/auth/token", json={"username": "doc-admin", "password": PASSWORD})
    return app, {"Authorization": f"Bearer {token.get_json()['access_token']}"}


def test_patrol_target_list_is_the_documented_page(city):
    """GET /patrol/targets answers {items, total}; the document said a bare array."""
    rt, index = city
    app, headers = _app_and_admin(rt)
    _unit, lon, lat = inside(rt.db, index)
    created = app.test_client().post("/api/v1/patrol/targets", headers=headers, json={
        "tenant": "320700", "code": "E-1", "name": "某化工厂", "targetClass": "key", "lon": lon, "lat": lat})
    assert created.status_code == 201, created.get_json()
    operation = openapi.from_wsgi("/api/v1/openapi.json", app)["/api/v1/patrol/targets"]["GET"]
    case = operation.Case(query={"tenant": "320700"})
    response = case.call(headers=headers)
    assert response.status_code == 200 and response.json()["total"] == 1
    case.validate_response(response, checks=CHECKS, headers=headers)  # raises on a body the document refuses
