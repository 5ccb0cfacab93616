"""Official Account template messages against a fake API: data mapping, NotFollower, tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications.providers.base import Channel, NotFollower, OutgoingMessage, PermanentError, RetriableError
from notifications.providers.wechat_oa import OaTemplate, WeChatOfficialAccount
from tests.notifications.fakes import FakeWeChatOA

APP, SECRET = "wx0123456789abcdef", "oa-secret"
TEMPLATES = {"case_closed": OaTemplate("TPL-closed", {"character_string1": "case_no", "thing2": "address",
                                                      "thing3": "result"})}
CITIZEN = "oRfollower0001"


@pytest.fixture
def fake() -> Iterator[FakeWeChatOA]:
    with FakeWeChatOA(APP, SECRET, followers={CITIZEN}) as server:
        yield server


def provider(fake: FakeWeChatOA) -> WeChatOfficialAccount:
    return WeChatOfficialAccount(APP, SECRET, templates=TEMPLATES, base_url=fake.url, timeout=5)


def closed(to: str = CITIZEN, n: str = "n-9", result: str = "已责令停工并洒水降尘") -> OutgoingMessage:
    params = {"case_no": "GL-9", "address": "海州区朝阳路12号", "result": result}
    return OutgoingMessage(n, Channel.WECHAT_OA, to, "您反映的问题已办结", url="https://gridloop.example/r/9",
                           kind="case_closed", params=params)


def test_sends_the_template_with_mapped_data_and_the_notification_id(fake):
    result = provider(fake).send(closed())

    assert (result.provider, result.provider_message_id, result.status) == ("wechat_oa", "200001", "sent")
    (payload,) = fake.messages
    assert payload["touser"] == CITIZEN and payload["template_id"] == "TPL-closed"
    assert payload["client_msg_id"] == "n-9" and payload["url"] == "https://gridloop.example/r/9"
    assert payload["data"] == {"character_string1": {"value": "GL-9"}, "thing2": {"value": "海州区朝阳路12号"},
                               "thing3": {"value": "已责令停工并洒水降尘"}}


def test_thing_values_are_clipped_to_twenty_characters(fake):
    provider(fake).send(closed(result="现场核查确认存在裸土未覆盖问题，已责令施工单位立即整改并处以罚款"))
    value = fake.messages[0]["data"]["thing3"]["value"]
    assert len(value) == 20 and value.endswith("…")


def test_a_citizen_who_does_not_follow_raises_not_follower(fake):
    with pytest.raises(NotFollower) as err:
        provider(fake).send(closed(to="oRstranger"))
    assert isinstance(err.value, PermanentError) and err.value.code == 43004


def test_busy_is_retriable_then_succeeds(fake):
    fake.fail_next(-1)
    p = provider(fake)
    with pytest.raises(RetriableError):
        p.send(closed())
    assert p.send(closed()).status == "sent"


def test_the_stable_token_is_fetched_once_and_refreshed_when_expired(fake):
    p = provider(fake)
    p.send(closed(n="a"))
    p.send(closed(n="b"))
    fake.tokens.expire_all()
    p.send(closed(n="c"))

    assert sum(r.path == "/cgi-bin/stable_token" for r in fake.received) == 2
    assert fake.forced_refreshes == 0 and len(fake.messages) == 3


def test_a_rejected_token_still_handed_out_is_force_refreshed(fake):
    p = provider(fake)
    p.send(closed(n="a"))
    fake.revoke_current_token()

    p.send(closed(n="b"))

    assert fake.forced_refreshes == 1 and len(fake.messages) == 2


def test_a_kind_without_template_or_with_missing_params_is_permanent(fake):
    p = provider(fake)
    with pytest.raises(PermanentError, match="no Official Account template"):
        p.send(OutgoingMessage("n", Channel.WECHAT_OA, CITIZEN, "x", kind="warning"))
    with pytest.raises(PermanentError, match="address"):
        p.send(OutgoingMessage("n", Channel.WECHAT_OA, CITIZEN, "x", kind="case_closed",
                               params={"case_no": "GL-9", "result": "ok"}))
    assert fake.received == []
