"""An app per test over the parametrized database, plus users of every role and a system key."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from api import accounts, create_app
from api.settings import Settings
from tests.api.statuses import recorded_successes, undeclared
from workflows.grids import Grid


@dataclass
class Caller:
    client: object
    headers: dict[str, str]
    name: str

    def _call(self, method: str, path: str, **kw):
        headers = {**self.headers, **kw.pop("headers", {})}
        return getattr(self.client, method)(path, headers=headers, **kw)

    def get(self, path, **kw):
        return self._call("get", path, **kw)

    def post(self, path, **kw):
        return self._call("post", path, **kw)

    def put(self, path, **kw):
        return self._call("put", path, **kw)

    def patch(self, path, **kw):
        return self._call("patch", path, **kw)


USERS = {
    "admin": dict(roles=["admin"], scope=None),
    "sup": dict(roles=["supervisor"], scope="3207"),
    "insp": dict(roles=["inspector"], scope="320706001"),
    "insp_other": dict(roles=["inspector"], scope="320703002"),
    "leader": dict(roles=["leader"], scope=None),
}
PASSWORD = "correct horse battery"


@pytest.fixture
def app(rt):
    settings = Settings(database_url=rt.db.url, secret_key="test-secret", deploy_bundled=False)
    application = create_app(settings, runtime=rt)
    application.config["TESTING"] = True
    return application


@pytest.fixture(autouse=True)
def _success_statuses_are_declared():
    """Whatever app a test builds, each 2xx it answers must be declared in the OpenAPI document."""
    with recorded_successes() as seen:
        yield
    missing = undeclared(seen)
    assert not missing, f"success statuses the OpenAPI document does not declare: {missing}"


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def users(rt, client) -> dict[str, Caller]:
    callers = {}
    for name, spec in USERS.items():
        accounts.create_user(rt.db, rt.clock.now(), username=name, password=PASSWORD,
                             hash_method="pbkdf2:sha256:1000", **spec)
        token = client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD}).get_json()
        callers[name] = Caller(client, {"Authorization": f"Bearer {token['access_token']}"}, name)
    key = accounts.create_api_key(rt.db, rt.clock.now(), name="enforcement", roles=["system"])
    callers["system"] = Caller(client, {"X-API-Key": key}, "system:enforcement")
    callers["anonymous"] = Caller(client, {}, "anonymous")
    return callers


def plain_grids(rows, since) -> list[Grid]:
    """Grids `(code, level, parent)`, each of the city its code begins with and current since `since`,
    with a placeholder shape: for tests of who may act where."""
    return [Grid(tenant=code[:4] + "00", code=code, name=code, level=level, parent_code=parent, valid_from=since,
                 geometry="{}", min_lon=0, min_lat=0, max_lon=1, max_lat=1) for code, level, parent in rows]
