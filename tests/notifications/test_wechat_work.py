"""WeChat Work app messages against a fake API: token caching and refresh, error mapping, and the
per-member limit held by the Redis rate limiter (delayed, never dropped)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications.providers.base import Channel, OutgoingMessage, PermanentError, RetriableError
from notifications.providers.wechat_token import RedisTokenStore
from notifications.providers.wechat_work import WeChatWork
from notifications.ratelimit import WECHAT_WORK_MEMBER_LIMITS, RateLimiter
from tests.notifications.fakes import FakeWeChatWork, Reply

CORP, SECRET, AGENT = "ww0123456789", "app-secret", 1000002


@pytest.fixture
def fake() -> Iterator[FakeWeChatWork]:
    with FakeWeChatWork(CORP, SECRET, users={"zhangsan", "lisi"}) as server:
        yield server


def provider(fake: FakeWeChatWork, **kwargs) -> WeChatWork:
    return WeChatWork(CORP, kwargs.pop("secret", SECRET), AGENT, base_url=fake.url, timeout=5, **kwargs)


def notice(to: str = "zhangsan", *, title: str | None = None, url: str | None = None,
           n: str = "n-1") -> OutgoingMessage:
    # the notification id in the text: WeChat Work's duplicate check drops identical content
    text = f"案件GL-1已派遣给您，请于12:00前签收。({n})"
    return OutgoingMessage(n, Channel.WECHAT_WORK, to, text, title=title, url=url)


def test_sends_a_text_message_to_the_member(fake):
    result = provider(fake).send(notice())

    assert (result.provider, result.provider_message_id, result.status) == ("wechat_work", "msg1", "sent")
    (payload,) = fake.messages
    assert payload["touser"] == "zhangsan" and payload["agentid"] == AGENT and payload["msgtype"] == "text"
    assert payload["text"]["content"] == "案件GL-1已派遣给您，请于12:00前签收。(n-1)"
    assert payload["enable_duplicate_check"] == 1


def test_a_notice_with_title_and_link_is_a_textcard(fake):
    provider(fake).send(notice(title="【案件派遣】GL-1", url="https://gridloop.example/cases/1"))
    (payload,) = fake.messages
    assert payload["msgtype"] == "textcard"
    assert payload["textcard"]["title"] == "【案件派遣】GL-1"
    assert payload["textcard"]["url"] == "https://gridloop.example/cases/1"


def test_the_token_is_fetched_once_and_reused(fake):
    p = provider(fake)
    for i in range(3):
        p.send(notice(n=f"n-{i}"))
    assert fake.token_requests == 1 and len(fake.messages) == 3


def test_the_token_cached_in_redis_is_shared_by_provider_instances(fake, redis_db):
    provider(fake, token_store=RedisTokenStore(redis_db)).send(notice(n="a"))
    provider(fake, token_store=RedisTokenStore(redis_db)).send(notice(n="b"))  # another worker
    assert fake.token_requests == 1 and len(fake.messages) == 2


def test_an_expired_token_is_refreshed_and_the_send_retried_once(fake, redis_db):
    store = RedisTokenStore(redis_db)
    p = provider(fake, token_store=store)
    p.send(notice(n="a"))
    fake.expire_tokens()

    p.send(notice(n="b"))

    assert fake.token_requests == 2 and len(fake.messages) == 2
    assert store.get(f"wecom:{CORP}:{AGENT}") == "wwtoken-2"
    sends = [r.query["access_token"] for r in fake.received if r.path == "/cgi-bin/message/send"]
    assert sends == ["wwtoken-1", "wwtoken-1", "wwtoken-2"]


def test_a_wrong_secret_is_permanent(fake):
    with pytest.raises(PermanentError) as err:
        provider(fake, secret="wrong").send(notice())
    assert err.value.code == 40001


@pytest.mark.parametrize("failure", [-1, 45009, 45033, Reply(500, None), Reply(429, None, {"Retry-After": "7"})])
def test_busy_and_rate_limit_codes_are_retriable_then_succeed(fake, failure):
    fake.fail_next(failure)
    p = provider(fake)

    with pytest.raises(RetriableError) as err:
        p.send(notice())
    if isinstance(failure, Reply) and failure.status == 429:
        assert err.value.retry_after == 7.0
    assert p.send(notice()).status == "sent"
    assert len(fake.messages) == 1


@pytest.mark.parametrize("to, code", [("nobody", 81013), ("zhangsan", 60111)])
def test_invalid_recipients_are_permanent(fake, to, code):
    if to == "zhangsan":
        fake.fail_next(code)
    with pytest.raises(PermanentError) as err:
        provider(fake).send(notice(to=to))
    assert err.value.code == code


def test_a_recipient_listed_in_invaliduser_of_an_ok_answer_is_permanent(fake):
    fake.fail_next(Reply(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "zhangsan", "msgid": "m"}))
    with pytest.raises(PermanentError) as err:
        provider(fake).send(notice())
    assert err.value.code == "invaliduser"


def test_the_31st_message_to_a_member_in_a_minute_is_delayed_not_sent(fake, redis_db, fake_time):
    limiter = RateLimiter(redis_db, WECHAT_WORK_MEMBER_LIMITS, clock=fake_time)
    p = provider(fake, rate_limiter=limiter)
    for i in range(30):
        p.send(notice(n=f"n-{i}"))
        fake_time.advance(1)  # 30 messages over 30 seconds

    with pytest.raises(RetriableError) as err:
        p.send(notice(n="n-30"))

    assert err.value.retry_after == pytest.approx(30.0)  # when the first of the 30 leaves the window
    assert len(fake.delivered_to("zhangsan")) == 30
    p.send(notice(to="lisi", n="other"))  # another member has a budget of their own
    fake_time.advance(30)
    p.send(notice(n="n-30"))
    assert len(fake.delivered_to("zhangsan")) == 31
