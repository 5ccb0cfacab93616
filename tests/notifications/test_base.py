"""The provider interface: every provider fits it, and the failures form one small hierarchy."""

from __future__ import annotations

from notifications.providers.aliyun_sms import AliyunSms
from notifications.providers.base import NotFollower, PermanentError, Provider, ProviderError, RetriableError
from notifications.providers.twilio_sms import TwilioSms
from notifications.providers.wechat_oa import WeChatOfficialAccount
from notifications.providers.wechat_work import WeChatWork


def test_every_provider_satisfies_the_protocol():
    providers = [
        TwilioSms("AC1", "t", from_number="+15005550006", base_url="http://127.0.0.1:9"),
        AliyunSms("id", "secret", sign_name="s", templates={}, endpoint="http://127.0.0.1:9/"),
        WeChatWork("corp", "secret", 1, base_url="http://127.0.0.1:9"),
        WeChatOfficialAccount("app", "secret", templates={}, base_url="http://127.0.0.1:9"),
    ]
    assert all(isinstance(p, Provider) for p in providers)
    assert [p.name for p in providers] == ["twilio", "aliyun", "wechat_work", "wechat_oa"]


def test_failures_carry_reason_code_and_retry_hint():
    retriable = RetriableError("busy", retry_after=12.5, code=-1)
    assert (retriable.reason, retriable.code, retriable.retry_after, retriable.maybe_sent) == ("busy", -1, 12.5, False)
    assert str(retriable) == "busy (code -1)"
    assert issubclass(NotFollower, PermanentError) and issubclass(PermanentError, ProviderError)
    assert not issubclass(RetriableError, PermanentError)
