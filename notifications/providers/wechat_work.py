"""WeChat Work (企业微信) app messages to staff: text, or a textcard when the notice has a title
and a link.

WeChat Work silently drops messages beyond 30 a minute (and 1000 an hour) per member per app.
With a `RateLimiter` the provider takes a slot before sending; when there is none it raises
RetriableError(retry_after=<seconds until a slot frees>) instead of sending, so the job runner
re-enqueues the message for later rather than blocking a worker or losing the message."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from ..ratelimit import RateLimiter
from ._http import call, json_object
from .base import OutgoingMessage, PermanentError, ProviderError, RetriableError, SendResult
from .wechat_token import AccessTokens, TokenStore, call_with_token

DEFAULT_BASE_URL = "https://qyapi.weixin.qq.com"

RETRIABLE_ERRCODES: dict[int, str] = {
    -1: "system busy",
    45009: "API call frequency limit",
    45033: "API concurrency limit",
}
PERMANENT_ERRCODES: dict[int, str] = {
    40001: "invalid corpsecret",
    40003: "invalid userid",
    40013: "invalid corpid",
    40056: "invalid agentid",
    44004: "empty message content",
    45002: "message content too long",
    48002: "API forbidden for this app",
    60020: "source IP not in the app's trusted IP list",
    60111: "userid not found",
    81013: "all recipients invalid",
    82001: "no valid recipient",
}

# byte limits of the message fields (document/path/90236)
TEXT_MAX_BYTES = 2048
CARD_TITLE_MAX_BYTES = 128
CARD_DESCRIPTION_MAX_BYTES = 512


def classify(errcode: int, errmsg: str) -> ProviderError:
    """Unlisted errcodes are permanent: an operator should look rather than the job retry blindly."""
    if errcode in RETRIABLE_ERRCODES:
        return RetriableError(f"{RETRIABLE_ERRCODES[errcode]}: {errmsg}", code=errcode)
    return PermanentError(f"{PERMANENT_ERRCODES.get(errcode, 'WeChat Work refused')}: {errmsg}", code=errcode)


def clip_utf8(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8 without splitting a character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - len("…".encode())].decode(errors="ignore") + "…"


class WeChatWork:
    name = "wechat_work"

    def __init__(
        self,
        corp_id: str,
        secret: str,
        agent_id: int,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_store: TokenStore | None = None,
        rate_limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
        duplicate_check_interval: int | None = 1800,
        button_text: str = "详情",
    ) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.base_url = base_url.rstrip("/")
        self.rate_limiter = rate_limiter
        self.timeout = timeout
        self.session = session or requests.Session()
        self.duplicate_check_interval = duplicate_check_interval
        self.button_text = button_text
        self.tokens = AccessTokens(f"wecom:{corp_id}:{agent_id}", self._fetch_token, token_store)

    def send(self, message: OutgoingMessage) -> SendResult:
        if self.rate_limiter is not None:
            wait = self.rate_limiter.acquire(f"wecom:{self.corp_id}:{self.agent_id}:{message.recipient}")
            if wait > 0:
                raise RetriableError("per-member limit (30/min) reached", retry_after=wait, code="member_rate_limit")
        payload = self.payload(message)
        body = call_with_token(self.tokens, lambda token: self._post("/cgi-bin/message/send", token, payload))
        errcode = int(body.get("errcode", 0))
        if errcode != 0:
            raise classify(errcode, str(body.get("errmsg", "")))
        refused = {u for field in ("invaliduser", "unlicenseduser") for u in str(body.get(field) or "").split("|")}
        if message.recipient in refused:
            raise PermanentError(f"recipient {message.recipient} is invalid or unlicensed", code="invaliduser")
        return SendResult(self.name, body.get("msgid"), "sent")

    def payload(self, message: OutgoingMessage) -> dict[str, Any]:
        payload: dict[str, Any] = {"touser": message.recipient, "agentid": self.agent_id, "safe": 0}
        if message.title and message.url:
            payload["msgtype"] = "textcard"
            payload["textcard"] = {
                "title": clip_utf8(message.title, CARD_TITLE_MAX_BYTES),
                "description": clip_utf8(message.text, CARD_DESCRIPTION_MAX_BYTES),
                "url": message.url,
                "btntxt": self.button_text,
            }
        else:
            payload["msgtype"] = "text"
            payload["text"] = {"content": clip_utf8(message.text, TEXT_MAX_BYTES)}
        if self.duplicate_check_interval:  # a retry after an ambiguous timeout is not shown twice
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = self.duplicate_check_interval
        return payload

    def _post(self, path: str, token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        response = call(
            self.session, "POST", self.base_url + path,
            params={"access_token": token}, json=payload, timeout=self.timeout,
        )
        return json_object(response)

    def _fetch_token(self, _force: bool) -> tuple[str, float]:
        response = call(
            self.session, "GET", self.base_url + "/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret}, timeout=self.timeout,
        )
        body = json_object(response)
        if int(body.get("errcode", 0)) != 0 or not body.get("access_token"):
            raise classify(int(body.get("errcode", -1)), str(body.get("errmsg", "no access_token")))
        return str(body["access_token"]), float(body.get("expires_in", 7200))
