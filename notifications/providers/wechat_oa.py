"""WeChat Official Account (公众号) template messages to citizens, addressed by openid.

A citizen who does not follow the account cannot receive them (errcode 43004): that raises
`NotFollower`, a PermanentError the caller can catch to fall back to SMS. The notification id is
sent as `client_msg_id`, which WeChat uses to drop a repeated send."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from ._http import call, json_object
from .base import NotFollower, OutgoingMessage, PermanentError, ProviderError, RetriableError, SendResult
from .wechat_token import AccessTokens, TokenStore, call_with_token

DEFAULT_BASE_URL = "https://api.weixin.qq.com"

RETRIABLE_ERRCODES: dict[int, str] = {
    -1: "system busy",
    45009: "API daily quota reached",
    45011: "API minute quota reached",
}
PERMANENT_ERRCODES: dict[int, str] = {
    40001: "invalid appsecret",
    40003: "invalid openid",
    40013: "invalid appid",
    40037: "invalid template_id",
    40125: "invalid appsecret",
    40164: "source IP not in the account's whitelist",
    43004: "recipient does not follow the account",
    43101: "recipient refused the subscription message",
    47003: "template data invalid",
    48001: "API not authorised for this account",
}

# Keyword value limits by data key prefix (characters); longer values are refused with 47003.
VALUE_LIMITS: dict[str, int] = {"thing": 20, "character_string": 32, "phrase": 5}


def classify(errcode: int, errmsg: str) -> ProviderError:
    if errcode == 43004:
        return NotFollower(f"{PERMANENT_ERRCODES[errcode]}: {errmsg}", code=errcode)
    if errcode in RETRIABLE_ERRCODES:
        return RetriableError(f"{RETRIABLE_ERRCODES[errcode]}: {errmsg}", code=errcode)
    return PermanentError(f"{PERMANENT_ERRCODES.get(errcode, 'WeChat refused')}: {errmsg}", code=errcode)


def clip_value(key: str, value: str) -> str:
    limit = next((n for prefix, n in VALUE_LIMITS.items() if key.startswith(prefix)), None)
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1] + "…"


@dataclass(frozen=True)
class OaTemplate:
    """A template of the account: its id and which message param fills each data key
    (e.g. {"thing1": "address", "time2": "reported_at"})."""

    template_id: str
    fields: Mapping[str, str] = field(default_factory=dict)


class WeChatOfficialAccount:
    name = "wechat_oa"

    def __init__(
        self,
        app_id: str,
        secret: str,
        *,
        templates: Mapping[str, OaTemplate],
        base_url: str = DEFAULT_BASE_URL,
        token_store: TokenStore | None = None,
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.app_id = app_id
        self.secret = secret
        self.templates = dict(templates)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.tokens = AccessTokens(f"wxoa:{app_id}", self._fetch_token, token_store)

    def send(self, message: OutgoingMessage) -> SendResult:
        template = self.templates.get(message.kind or "")
        if template is None:
            raise PermanentError(f"no Official Account template configured for notice kind {message.kind!r}")
        missing = sorted(name for name in template.fields.values() if name not in message.params)
        if missing:
            raise PermanentError(f"template {template.template_id} needs {', '.join(missing)}")
        payload: dict[str, Any] = {
            "touser": message.recipient,
            "template_id": template.template_id,
            "client_msg_id": message.notification_id,
            "data": {
                key: {"value": clip_value(key, str(message.params[name]))} for key, name in template.fields.items()
            },
        }
        if message.url:
            payload["url"] = message.url
        body = call_with_token(self.tokens, lambda token: self._post("/cgi-bin/message/template/send", token, payload))
        errcode = int(body.get("errcode", 0))
        if errcode != 0:
            raise classify(errcode, str(body.get("errmsg", "")))
        msgid = body.get("msgid")
        return SendResult(self.name, None if msgid is None else str(msgid), "sent")

    def _post(self, path: str, token: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        response = call(
            self.session, "POST", self.base_url + path,
            params={"access_token": token}, json=payload, timeout=self.timeout,
        )
        return json_object(response)

    def _fetch_token(self, force: bool) -> tuple[str, float]:
        # stable_token hands every worker the same token until it expires (unlike /cgi-bin/token,
        # where each call invalidates the previous token); force_refresh only after a rejection.
        response = call(
            self.session, "POST", self.base_url + "/cgi-bin/stable_token",
            json={"grant_type": "client_credential", "appid": self.app_id, "secret": self.secret,
                  "force_refresh": force},
            timeout=self.timeout,
        )
        body = json_object(response)
        if int(body.get("errcode", 0)) != 0 or not body.get("access_token"):
            raise classify(int(body.get("errcode", -1)), str(body.get("errmsg", "no access_token")))
        return str(body["access_token"]), float(body.get("expires_in", 7200))
