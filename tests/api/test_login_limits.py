"""Guessing passwords is slowed down: failed logins are counted per username and per client
address, and past the limit even the right password waits for the window to turn. /metrics can
ask for a token."""

from datetime import timedelta

import pytest

from api import accounts, create_app
from api.settings import Settings
from tests.api.conftest import PASSWORD


@pytest.fixture
def client(rt):
    settings = Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False, login_rate_user="3/300",
                        login_rate_ip="5/300", metrics_token="scrape-me")
    accounts.create_user(rt.db, rt.clock.now(), username="admin", password=PASSWORD, roles=["admin"],
                         hash_method="pbkdf2:sha256:1000")
    return create_app(settings, runtime=rt).test_client()


def login(client, username="admin", password=PASSWORD, ip="10.0.0.1"):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": ip})


def test_after_too_many_failures_even_the_right_password_waits(client, clock):
    assert login(client).status_code == 200  # successes are not counted
    for _ in range(3):
        assert login(client, password="guess").status_code == 401
    refused = login(client)
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["Retry-After"]) <= 300
    assert login(client, username="ADMIN", ip="10.0.0.2").status_code == 429  # usernames compare without case
    clock.advance(timedelta(seconds=300))
    assert login(client).status_code == 200


def test_one_address_trying_many_usernames_is_stopped_too(client):
    for i in range(5):
        assert login(client, username=f"user{i}", password="guess").status_code == 401
    assert login(client, ip="10.0.0.1").status_code == 429
    assert login(client, ip="10.0.0.9").status_code == 200  # another address is not held back


def test_metrics_need_the_token_when_one_is_set(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert scraped.status_code == 200 and "gridloop_" in scraped.get_data(as_text=True)
