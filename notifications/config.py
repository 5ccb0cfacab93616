"""Which providers this deployment has, from environment variables (GRIDLOOP_NOTIFY_*, documented
in the README). A channel whose credentials are not set has no provider: its notices fail over to
the person's next channel, or become incidents."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

from redis import Redis

from .providers.aliyun_sms import AliyunSms, AliyunTemplate
from .providers.base import Channel, Provider
from .providers.twilio_sms import TwilioSms
from .providers.wechat_oa import OaTemplate, WeChatOfficialAccount
from .providers.wechat_token import RedisTokenStore
from .providers.wechat_work import WeChatWork
from .quiet_hours import QuietHours
from .ratelimit import WECHAT_WORK_MEMBER_LIMITS, RateLimiter

MAX_BATCH = 100  # a batch is sent one notice after another, inside one job's time budget


@dataclass(frozen=True)
class NotifySettings:
    sms_provider: str = "twilio"  # twilio | aliyun
    twilio_account_sid: str = ""
    twilio_auth_token: str = field(default="", repr=False)
    twilio_from: str = ""
    twilio_base_url: str = ""  # empty: api.twilio.com
    aliyun_access_key_id: str = ""
    aliyun_access_key_secret: str = field(default="", repr=False)
    aliyun_sign_name: str = ""
    aliyun_templates: Mapping[str, str] = field(default_factory=dict)  # notice kind → template code
    aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com/"
    aliyun_receipt_token: str = field(default="", repr=False)  # ?token= of the SmsReport push URL; empty: refused
    wecom_corp_id: str = ""
    wecom_secret: str = field(default="", repr=False)
    wecom_agent_id: int = 0
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    oa_app_id: str = ""
    oa_secret: str = field(default="", repr=False)
    oa_templates: Mapping[str, Mapping[str, object]] = field(default_factory=dict)  # kind → {template_id, fields}
    oa_base_url: str = "https://api.weixin.qq.com"
    public_url: str = ""  # where providers and people reach this deployment (receipts, links)
    quiet_hours: str = "22:00-07:00"
    batch: int = 10  # notices one delivery job carries

    def __post_init__(self) -> None:
        if not 1 <= self.batch <= MAX_BATCH:
            raise ValueError(f"GRIDLOOP_NOTIFY_BATCH must be 1 to {MAX_BATCH}: {self.batch}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> NotifySettings:
        def get(name: str, default: str = "") -> str:
            return environ.get(f"GRIDLOOP_NOTIFY_{name}", default)

        d = cls()
        return cls(
            sms_provider=get("SMS_PROVIDER", d.sms_provider), twilio_account_sid=get("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=get("TWILIO_AUTH_TOKEN"), twilio_from=get("TWILIO_FROM"),
            twilio_base_url=get("TWILIO_BASE_URL"), aliyun_access_key_id=get("ALIYUN_ACCESS_KEY_ID"),
            aliyun_access_key_secret=get("ALIYUN_ACCESS_KEY_SECRET"), aliyun_sign_name=get("ALIYUN_SIGN_NAME"),
            aliyun_templates=json.loads(get("ALIYUN_TEMPLATES", "{}")),
            aliyun_endpoint=get("ALIYUN_ENDPOINT", d.aliyun_endpoint),
            aliyun_receipt_token=get("ALIYUN_RECEIPT_TOKEN"), wecom_corp_id=get("WECOM_CORP_ID"),
            wecom_secret=get("WECOM_SECRET"), wecom_agent_id=int(get("WECOM_AGENT_ID", "0")),
            wecom_base_url=get("WECOM_BASE_URL", d.wecom_base_url), oa_app_id=get("OA_APP_ID"),
            oa_secret=get("OA_SECRET"), oa_templates=json.loads(get("OA_TEMPLATES", "{}")),
            oa_base_url=get("OA_BASE_URL", d.oa_base_url), public_url=get("PUBLIC_URL").rstrip("/"),
            quiet_hours=get("QUIET_HOURS", d.quiet_hours), batch=_whole_number("BATCH", get("BATCH", str(d.batch))))

    @property
    def quiet(self) -> QuietHours:
        return QuietHours.parse(self.quiet_hours)

    def twilio_callback_url(self) -> str | None:
        return f"{self.public_url}/api/v1/notifications/receipts/twilio" if self.public_url else None


def _whole_number(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"GRIDLOOP_NOTIFY_{name} must be a whole number: {value!r}") from None


def build_providers(cfg: NotifySettings, redis_url: str = "") -> dict[str, Provider]:
    """The configured providers by channel. Redis, when there is one, holds the WeChat access tokens
    and the per-member rate limit for every process; without it each process keeps its own."""
    redis = Redis.from_url(redis_url) if redis_url else None
    providers: dict[str, Provider] = {}
    if cfg.sms_provider == "aliyun" and cfg.aliyun_access_key_id:
        providers[Channel.SMS] = AliyunSms(
            cfg.aliyun_access_key_id, cfg.aliyun_access_key_secret, sign_name=cfg.aliyun_sign_name,
            templates={kind: AliyunTemplate(code) for kind, code in cfg.aliyun_templates.items()},
            endpoint=cfg.aliyun_endpoint)
    elif cfg.sms_provider == "twilio" and cfg.twilio_account_sid:
        providers[Channel.SMS] = TwilioSms(cfg.twilio_account_sid, cfg.twilio_auth_token, from_number=cfg.twilio_from,
                                           status_callback_url=cfg.twilio_callback_url(),
                                           base_url=cfg.twilio_base_url or None)
    if cfg.wecom_corp_id:
        providers[Channel.WECHAT_WORK] = WeChatWork(
            cfg.wecom_corp_id, cfg.wecom_secret, cfg.wecom_agent_id, base_url=cfg.wecom_base_url,
            token_store=RedisTokenStore(redis) if redis else None,
            rate_limiter=RateLimiter(redis, WECHAT_WORK_MEMBER_LIMITS) if redis else None)
    if cfg.oa_app_id:
        providers[Channel.WECHAT_OA] = WeChatOfficialAccount(
            cfg.oa_app_id, cfg.oa_secret, base_url=cfg.oa_base_url,
            token_store=RedisTokenStore(redis) if redis else None,
            # "fields" in GRIDLOOP_NOTIFY_OA_TEMPLATES: {template data key: message param}
            templates={kind: OaTemplate(str(t["template_id"]), dict(cast(Mapping[str, str], t.get("fields", {}))))
                       for kind, t in cfg.oa_templates.items()})
    return providers
