"""Twilio SMS through the real SDK against a fake Messages API, and signed status callbacks."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from notifications.providers.base import Channel, OutgoingMessage, PermanentError, RetriableError
from notifications.providers.twilio_sms import (
    BaseUrlHttpClient,
    InvalidSignature,
    TwilioSms,
    furthest,
    parse_status_callback,
)
from tests.notifications.fakes import FakeTwilio, Reply, twilio_error, twilio_signature

SID, TOKEN = "AC" + "1" * 32, "secret-token"
CALLBACK = "https://gridloop.example/hooks/twilio/status"


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio(SID, TOKEN) as server:
        yield server


def provider(fake: FakeTwilio, token: str = TOKEN) -> TwilioSms:
    return TwilioSms(SID, token, from_number="+15005550006", status_callback_url=CALLBACK, base_url=fake.url,
                     timeout=5)


def sms(notification_id: str = "n-1", to: str = "+8613800138000") -> OutgoingMessage:
    return OutgoingMessage(notification_id, Channel.SMS, to, "【GridLoop】案件GL-1待签收")


def test_sends_through_the_sdk_to_the_configured_base_url(fake):
    result = provider(fake).send(sms())

    assert result.provider == "twilio" and result.status == "queued" and result.provider_message_id.startswith("SM")
    (form,) = fake.messages
    assert form["To"] == "+8613800138000" and form["From"] == "+15005550006"
    assert form["Body"] == "【GridLoop】案件GL-1待签收"
    callback = urlsplit(form["StatusCallback"])
    assert callback._replace(query="").geturl() == CALLBACK
    assert dict(parse_qsl(callback.query)) == {"notification_id": "n-1"}


def test_base_url_rewrite_keeps_path_and_query():
    client = BaseUrlHttpClient("http://127.0.0.1:9999/prefix/")
    assert client.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?x=1") == (
        "http://127.0.0.1:9999/prefix/2010-04-01/Accounts/AC1/Messages.json?x=1"
    )
    assert BaseUrlHttpClient(None).rewrite("https://api.twilio.com/a") == "https://api.twilio.com/a"


def test_wrong_auth_token_is_permanent(fake):
    with pytest.raises(PermanentError) as err:
        provider(fake, token="wrong").send(sms())
    assert err.value.code == 20003
    assert fake.messages == []


@pytest.mark.parametrize("reply", [twilio_error(429, 20429, "Too Many Requests"), twilio_error(500, 20500),
                                   twilio_error(503, 20503), Reply(502, {"oops": True})])
def test_throttling_and_server_errors_are_retriable_then_succeed(fake, reply):
    fake.fail_next(reply)
    p = provider(fake)

    with pytest.raises(RetriableError):
        p.send(sms())
    assert p.send(sms()).status == "queued"
    assert len(fake.messages) == 1


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_invalid_or_unsubscribed_recipient_is_permanent(fake, code):
    fake.fail_next(twilio_error(400, code))
    with pytest.raises(PermanentError) as err:
        provider(fake).send(sms())
    assert err.value.code == code


def test_unreachable_server_is_retriable():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = TwilioSms(SID, TOKEN, from_number="+15005550006", base_url=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(RetriableError):
        p.send(sms())


def test_messaging_service_sid_replaces_from(fake):
    TwilioSms(SID, TOKEN, messaging_service_sid="MG" + "2" * 32, base_url=fake.url).send(sms())
    (form,) = fake.messages
    assert form["MessagingServiceSid"] == "MG" + "2" * 32 and "From" not in form and "StatusCallback" not in form


# --- status callbacks ----------------------------------------------------------------------------

HOOK = CALLBACK + "?notification_id=n-7"


def callback(status: str, error_code: str | None = None) -> tuple[dict[str, str], str]:
    params = {"MessageSid": "SM" + "a" * 32, "MessageStatus": status, "SmsSid": "SM" + "a" * 32,
              "SmsStatus": status, "AccountSid": SID, "From": "+15005550006", "To": "+8613800138000",
              "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    return params, twilio_signature(TOKEN, HOOK, params)


def test_a_signed_callback_is_parsed_with_its_notification_id():
    params, signature = callback("undelivered", "30003")
    receipt = parse_status_callback(HOOK, params, signature, TOKEN)
    assert (receipt.status, receipt.error_code, receipt.notification_id) == ("undelivered", 30003, "n-7")
    assert receipt.message_sid == "SM" + "a" * 32


@pytest.mark.parametrize("arrival", [
    ["sending", "sent", "delivered"],
    ["delivered", "sent", "sending"],
    ["sent", "delivered", "queued", "sending"],
])
def test_out_of_order_receipts_never_move_the_status_backwards(arrival):
    status = "queued"  # what the send answered
    for name in arrival:
        params, signature = callback(name)
        status = furthest(status, parse_status_callback(HOOK, params, signature, TOKEN).status)
    assert status == "delivered"


def test_furthest_orders_statuses():
    assert furthest("sent", "failed") == "failed"
    assert furthest("failed", "sent") == "failed"
    assert furthest("delivered", "undelivered") == "delivered"  # the first terminal status stands
    assert furthest("delivered", "read") == "read"
    assert furthest(None, "queued") == "queued"
    assert furthest("sent", "some_new_status") == "sent"


@pytest.mark.parametrize("tamper", ["forged", "missing", "other_url", "changed_param"])
def test_a_forged_or_missing_signature_is_rejected(tamper):
    params, signature = callback("delivered")
    url = HOOK
    if tamper == "forged":
        signature = twilio_signature("not-the-token", HOOK, params)
    elif tamper == "missing":
        signature = None
    elif tamper == "other_url":
        url = CALLBACK + "?notification_id=n-8"
    else:
        params = {**params, "MessageStatus": "failed"}
    with pytest.raises(InvalidSignature):
        parse_status_callback(url, params, signature, TOKEN)


def test_signature_check_matches_twilios_documented_example():
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234",
              "From": "+12349013030", "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    with pytest.raises(ValueError, match="MessageSid"):  # signature fine, but not a status callback
        parse_status_callback(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", "12345")
