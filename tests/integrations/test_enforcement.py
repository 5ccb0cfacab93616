import json
import time

import pytest

from engine.operations import PermanentFailure
from integrations.enforcement import (
    EnforcementClient,
    EnforcementUnavailable,
    map_fields,
    parse_field_map,
    sign,
    verify,
)
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


# -- the protocol in detail -------------------------------------------------------------------------

def test_every_push_carries_the_case_id_as_idempotency_key_and_a_signature_the_callback_side_accepts():
    from api.views.enforcement import callback_signature

    with FakeEnforcement("s3cret") as fake:
        client = EnforcementClient(fake.url, "s3cret")
        fake.script.append(503)
        with pytest.raises(EnforcementUnavailable):
            client.push(CASE)
        client.push(CASE)
        assert len(fake.headers) == 2
        for headers in fake.headers:
            assert headers["Idempotency-Key"] == "C-1"
            assert headers["Content-Type"].startswith("application/json")
        # the same construction as the callbacks GridLoop verifies, the Idempotency-Key as the message id
        ts = fake.headers[1]["X-Timestamp"]
        body = json.dumps(CASE, ensure_ascii=False, sort_keys=True).encode()
        assert fake.headers[1]["X-Signature"] == callback_signature("s3cret", "C-1", ts, body) == sign(
            "s3cret", "C-1", ts, body)


def test_the_signature_binds_key_timestamp_and_body():
    body, ts = b'{"a": 1}', str(int(time.time()))
    good = sign("k", "C-1", ts, body)
    assert verify("k", "C-1", ts, good, body)
    assert not verify("k", "C-2", ts, good, body)  # replayed under another key
    assert not verify("k", "C-1", ts, good, b'{"a": 2}')
    assert not verify("other", "C-1", ts, good, body)
    assert not verify("k", "C-1", ts, good, body, now=int(ts) + 301)  # stale
    assert not verify("k", "C-1", "soon", good, body)
    assert not verify("", "C-1", ts, sign("", "C-1", ts, body), body)  # no secret: nothing verifies


def test_the_field_map_renames_nests_and_leaves_out():
    mapping = parse_field_map('{"caseNo": "case_id", "violation.type": "category", "violation.text": "findings",'
                              ' "area": "not_passed"}')
    assert map_fields(CASE, mapping) == {"caseNo": "C-1",
                                         "violation": {"type": "air.exceedance", "text": "超标排放"}}
    assert map_fields(CASE, None) == CASE  # no map: as they are
    with FakeEnforcement("s3cret") as fake:
        assert EnforcementClient(fake.url, "s3cret", field_map=mapping).push(CASE) == {"ticket": "ZF-0001"}
        assert fake.received == [{"caseNo": "C-1", "violation": {"type": "air.exceedance", "text": "超标排放"}}]
        assert fake.headers[0]["Idempotency-Key"] == "C-1"  # the key is the case id whatever the body


@pytest.mark.parametrize("text", ["[1]", "{}", "{not json", '{"x": 1}', '{"": "case_id"}', '{"a..b": "case_id"}'])
def test_a_malformed_field_map_stops_the_start(text):
    with pytest.raises(ValueError, match="GRIDLOOP_ENFORCEMENT_FIELD_MAP"):
        parse_field_map(text)


def test_the_deployment_reads_map_ticket_field_and_timeout_from_the_environment(monkeypatch):
    from api.settings import Settings

    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "x")  # no var/secret_key written
    monkeypatch.setenv("GRIDLOOP_ENFORCEMENT_FIELD_MAP", '{"caseNo": "case_id"}')
    monkeypatch.setenv("GRIDLOOP_ENFORCEMENT_TICKET_FIELD", "data.no")
    monkeypatch.setenv("GRIDLOOP_ENFORCEMENT_TIMEOUT", "3.5")
    s = Settings.from_env()
    client = EnforcementClient.configured("http://x/cases", "s", timeout_s=s.enforcement_timeout_s,
                                          field_map=s.enforcement_field_map, ticket_field=s.enforcement_ticket_field)
    assert (client.field_map, client.ticket_field, client.timeout_s) == ({"caseNo": "case_id"}, "data.no", 3.5)
    for name in ("FIELD_MAP", "TICKET_FIELD", "TIMEOUT"):
        monkeypatch.setenv(f"GRIDLOOP_ENFORCEMENT_{name}", "")  # empty: the default
    s = Settings.from_env()
    default = EnforcementClient.configured("http://x/cases", "s", timeout_s=s.enforcement_timeout_s,
                                           field_map=s.enforcement_field_map, ticket_field=s.enforcement_ticket_field)
    assert (default.field_map, default.ticket_field, default.timeout_s) == (None, "ticket", 10.0)


def test_the_ticket_is_read_where_their_answer_puts_it():
    with FakeEnforcement("s3cret") as fake:
        fake.script.append((201, {"data": {"no": 77}}))
        assert EnforcementClient(fake.url, "s3cret", ticket_field="data.no").push(CASE) == {"ticket": "77"}


def test_a_duplicate_answer_naming_the_original_ticket_is_a_success():
    with FakeEnforcement("s3cret") as fake:
        client = EnforcementClient(fake.url, "s3cret")
        fake.script.append((409, {"error": "duplicate", "ticket": "ZF-0042"}))
        assert client.push(CASE) == {"ticket": "ZF-0042", "duplicate": True}
        fake.script.append((409, {"error": "in progress"}))  # no ticket yet: the first push is still running
        with pytest.raises(EnforcementUnavailable, match="409"):
            client.push(CASE)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_refusals_are_permanent(status):
    with FakeEnforcement("s3cret") as fake, pytest.raises(PermanentFailure, match=str(status)):
        fake.script.append(status)
        EnforcementClient(fake.url, "s3cret").push(CASE)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_overload_and_server_errors_are_retriable(status):
    with FakeEnforcement("s3cret") as fake, pytest.raises(EnforcementUnavailable, match=str(status)):
        fake.script.append(status)
        EnforcementClient(fake.url, "s3cret").push(CASE)


def test_a_slow_system_times_out_retriably():
    with FakeEnforcement("s3cret") as fake:
        fake.hold_s = 1.0
        with pytest.raises(EnforcementUnavailable, match=r"within 0\.2 s"):
            EnforcementClient(fake.url, "s3cret", timeout_s=0.2).push(CASE)


def test_a_redirect_is_not_followed_as_a_get_but_refused():
    with FakeEnforcement("s3cret") as fake, pytest.raises(PermanentFailure, match="redirected"):
        fake.script.append((302, {}))
        EnforcementClient(fake.url, "s3cret").push(CASE)


def test_a_push_without_a_case_id_or_with_a_bad_url_is_permanent():
    with pytest.raises(PermanentFailure, match="Idempotency-Key"):
        EnforcementClient("http://127.0.0.1:1/cases", "s").push({"category": "noise"})
    with pytest.raises(PermanentFailure, match="not usable"):
        EnforcementClient("ftp-ish:/nowhere", "s").push(CASE)
