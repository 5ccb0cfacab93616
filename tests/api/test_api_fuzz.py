"""The API fuzzed from its own OpenAPI document (tests/api/fuzzing.py) over the demo city on
PostgreSQL, as an admin and as a city supervisor: no server error, every status declared, every
body as documented. Bounded: GRIDLOOP_FUZZ_EXAMPLES requests per operation and mode (default 3: 1,546 in all)."""

from __future__ import annotations

import json
import os

import pytest

from api import accounts, create_app
from api.settings import Settings
from tests.api.fuzzing import fuzz

EXAMPLES = int(os.environ.get("GRIDLOOP_FUZZ_EXAMPLES", "3"))
PASSWORD = "correct horse battery"
# Ending the fuzzer's own session would turn the rest of the run into 401s.
EXCLUDED = {("POST", "/api/v1/auth/logout")}


def _login(client, username: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.get_data(as_text=True)
    return {"Authorization": f"Bearer {r.get_json()['access_token']}"}


@pytest.mark.slow
@pytest.mark.parametrize("db", ["pg"], indirect=True)
@pytest.mark.parametrize("role, scope", [("admin", None), ("supervisor", "3207")])
def test_fuzzed_requests_get_no_server_error_and_documented_answers(city, role, scope):
    rt, _index = city
    app = create_app(Settings(database_url=rt.db.url, secret_key="fuzz-secret", deploy_bundled=False), runtime=rt)
    client = app.test_client()
    user = accounts.create_user(rt.db, rt.clock.now(), username=f"fuzz-{role}", password=PASSWORD, roles=[role],
                                scope=scope, hash_method="pbkdf2:sha256:1000")
    own_id = str(getattr(user, "id", user))
    headers = {**_login(client, f"fuzz-{role}"), "Accept-Encoding": "identity"}  # bodies the checks can read

    def own_account(method: str, path: str, params: dict) -> bool:  # disabling or re-keying ourselves
        return path.startswith("/api/v1/users/{user_id}") and method != "GET" and str(params.get("user_id")) == own_id

    report = fuzz(app, headers=lambda: headers, max_examples=EXAMPLES, skip=own_account,
                  exclude=lambda method, path: (method, path) in EXCLUDED)
    print(json.dumps({"fuzz": role, **report.figures()}))
    assert report.operations > 100 and report.requests > report.operations * EXAMPLES
    assert client.get("/api/v1/me", headers=headers).status_code == 200, "the fuzzer's session must survive"
    assert not report.failures, "\n".join(f"{k}: {v}" for k, v in sorted(report.failures.items()))
