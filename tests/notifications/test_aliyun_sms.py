"""Aliyun SendSms over HTTP against a fake that verifies the v1 signature, and SmsReport receipts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from notifications.providers.aliyun_sms import (
    REPORT_ACK,
    AliyunSms,
    AliyunTemplate,
    parse_sms_report,
    sign,
)
from notifications.providers.base import Channel, OutgoingMessage, PermanentError, RetriableError
from tests.notifications.fakes import FakeAliyunSms, Reply

KEY_ID, SECRET = "LTAI-test-id", "test-secret"
TEMPLATES = {"dispatch": AliyunTemplate("SMS_100001", ("case_no", "address"))}


@pytest.fixture
def fake() -> Iterator[FakeAliyunSms]:
    with FakeAliyunSms(KEY_ID, SECRET) as server:
        yield server


def provider(fake: FakeAliyunSms, secret: str = SECRET, clock=lambda: 1_772_413_200.0) -> AliyunSms:
    return AliyunSms(KEY_ID, secret, sign_name="连云港生态环境", templates=TEMPLATES, endpoint=fake.url + "/",
                     timeout=5, clock=clock)


def sms(kind: str = "dispatch", notification_id: str = "n-42") -> OutgoingMessage:
    return OutgoingMessage(notification_id, Channel.SMS, "13800138000", "案件GL-1待签收", kind=kind,
                           params={"case_no": "GL-1", "address": "海州区 朝阳路12号 (东门)*", "extra": "x"})


def test_signature_matches_the_documented_example():
    params = {"TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
              "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
              "SignatureVersion": "1.0"}
    assert sign(params, "testsecret", "GET") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_sends_a_signed_request_the_fake_verifies(fake):
    result = provider(fake).send(sms())

    assert (result.provider, result.provider_message_id, result.status) == ("aliyun", "1^0", "queued")
    assert fake.verified == 1
    (params,) = fake.messages
    assert params["Action"] == "SendSms" and params["Version"] == "2017-05-25"
    assert params["OutId"] == "n-42"  # the notification id, echoed back in the receipt
    assert params["TemplateCode"] == "SMS_100001" and params["SignName"] == "连云港生态环境"
    assert json.loads(params["TemplateParam"]) == {"case_no": "GL-1", "address": "海州区 朝阳路12号 (东门)*"}
    assert params["Timestamp"] == "2026-03-02T01:00:00Z"


def test_a_wrong_secret_fails_the_fakes_signature_check(fake):
    with pytest.raises(PermanentError) as err:
        provider(fake, secret="not-the-secret").send(sms())
    assert err.value.code == "SignatureDoesNotMatch"
    assert fake.verified == 0 and fake.messages == []


def test_every_request_gets_a_fresh_nonce(fake):
    p = provider(fake)
    p.send(sms(notification_id="a"))
    p.send(sms(notification_id="b"))
    assert fake.verified == 2 and len(fake.nonces) == 2


def test_flow_control_is_retriable_then_succeeds(fake):
    fake.fail_next("isv.BUSINESS_LIMIT_CONTROL")
    p = provider(fake)

    with pytest.raises(RetriableError) as err:
        p.send(sms())
    assert err.value.code == "isv.BUSINESS_LIMIT_CONTROL" and err.value.retry_after == 60.0
    assert p.send(sms()).status == "queued"
    assert len(fake.messages) == 1


@pytest.mark.parametrize("reply", ["Throttling.User", "isp.SYSTEM_ERROR", Reply(503, {"Code": "ServiceUnavailable"}),
                                   Reply(500, None)])
def test_throttling_and_server_errors_are_retriable(fake, reply):
    fake.fail_next(reply)
    with pytest.raises(RetriableError):
        provider(fake).send(sms())


@pytest.mark.parametrize("code", ["isv.MOBILE_NUMBER_ILLEGAL", "isv.AMOUNT_NOT_ENOUGH", "isv.SOMETHING_NEW"])
def test_invalid_number_and_other_refusals_are_permanent(fake, code):
    fake.fail_next(code)
    with pytest.raises(PermanentError) as err:
        provider(fake).send(sms())
    assert err.value.code == code


def test_a_kind_without_template_is_permanent_and_not_sent(fake):
    with pytest.raises(PermanentError, match="no Aliyun template"):
        provider(fake).send(sms(kind="warning"))
    assert fake.received == []


def test_a_missing_template_variable_is_permanent(fake):
    message = OutgoingMessage("n-1", Channel.SMS, "13800138000", "x", kind="dispatch", params={"case_no": "GL-1"})
    with pytest.raises(PermanentError, match="address"):
        provider(fake).send(message)


def test_sms_report_push_is_parsed():
    body = json.dumps([
        {"phone_number": "13800138000", "send_time": "2026-03-02 09:00:00", "report_time": "2026-03-02 09:00:05",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "1^0",
         "out_id": "n-42"},
        {"phone_number": "13900139000", "success": False, "err_code": "MK:0001", "err_msg": "空号", "biz_id": "2^0",
         "out_id": ""},
    ], ensure_ascii=False).encode()

    delivered, failed = parse_sms_report(body)

    assert (delivered.notification_id, delivered.biz_id, delivered.status) == ("n-42", "1^0", "delivered")
    assert (failed.notification_id, failed.status, failed.err_code) == (None, "undelivered", "MK:0001")
    assert REPORT_ACK == {"code": 0, "msg": "接收成功"}


def test_a_report_that_is_not_a_list_is_refused():
    with pytest.raises(ValueError):
        parse_sms_report(b'{"success": true}')
