import pytest

from engine.operations import PermanentFailure
from integrations.enforcement import EnforcementClient
from tests.integrations.fake_enforcement import FakeEnforcement

CASE = {"case_id": "C-1", "category": "air.exceedance", "grid": "320706001000001", "findings": "超标排放"}


def test_a_signed_push_gets_a_ticket_and_a_retried_push_the_same_one():
    with FakeEnforcement("s3cret") as fake:
        client = EnforcementClient(fake.url, "s3cret")
        assert client.push(CASE) == {"ticket": "ZF-0001"}
        assert client.push(CASE) == {"ticket": "ZF-0001"}  # same Idempotency-Key
        assert fake.received[0]["findings"] == "超标排放"


def test_server_errors_are_retriable_and_refusals_permanent():
    with FakeEnforcement("s3cret") as fake:
        client = EnforcementClient(fake.url, "s3cret")
        fake.script.extend([503, 429, 400])
        with pytest.raises(ConnectionError):
            client.push(CASE)
        with pytest.raises(ConnectionError):
            client.push(CASE)
        with pytest.raises(PermanentFailure):
            client.push(CASE)


def test_a_wrong_secret_is_refused_by_the_other_side_as_permanent():
    with FakeEnforcement("s3cret") as fake, pytest.raises(PermanentFailure, match="401"):
        EnforcementClient(fake.url, "wrong").push(CASE)


def test_an_unconfigured_connector_fails_permanently():
    with pytest.raises(PermanentFailure, match="GRIDLOOP_ENFORCEMENT_URL"):
        EnforcementClient("", "").push(CASE)


def test_an_unreachable_system_is_retriable():
    with pytest.raises(OSError):
        EnforcementClient("http://127.0.0.1:1/cases", "s", timeout_s=1).push(CASE)
