"""SMS through Aliyun dysmsapi `SendSms` (RPC style, signature version 1.0) over plain HTTP, and
the SmsReport delivery receipts Aliyun pushes.

SendSms is not idempotent: the notification id travels as `OutId` and comes back in the receipt,
which is how a duplicate send after an ambiguous timeout can be recognised."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from ._http import call, json_object
from .base import OutgoingMessage, PermanentError, ProviderError, RetriableError, SendResult

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
API_VERSION = "2017-05-25"

PERMANENT_CODES: dict[str, str] = {
    "isv.MOBILE_NUMBER_ILLEGAL": "invalid mobile number",
    "isv.MOBILE_COUNT_OVER_LIMIT": "too many numbers in one request",
    "isv.TEMPLATE_MISSING_PARAMETERS": "template variables missing",
    "isv.TEMPLATE_PARAMS_ILLEGAL": "template variables illegal",
    "isv.SMS_TEMPLATE_ILLEGAL": "template not approved or not found",
    "isv.SMS_SIGNATURE_ILLEGAL": "sign name not approved or not found",
    "isv.INVALID_PARAMETERS": "invalid parameters",
    "isv.INVALID_JSON_PARAM": "TemplateParam is not valid JSON",
    "isv.PARAM_LENGTH_LIMIT": "a parameter is too long",
    "isv.BLACK_KEY_CONTROL_LIMIT": "content contains a blocked keyword",
    "isv.DAY_LIMIT_CONTROL": "the account's daily sending limit is reached",
    "isv.AMOUNT_NOT_ENOUGH": "account balance insufficient",
    "isv.OUT_OF_SERVICE": "account suspended",
    "isv.DENY_IP_RANGE": "source IP not allowed",
    "isp.RAM_PERMISSION_DENY": "RAM user lacks permission",
    "SignatureDoesNotMatch": "request signature rejected (wrong AccessKey secret?)",
    "InvalidAccessKeyId.NotFound": "unknown AccessKey id",
    "InvalidTimeStamp.Expired": "request timestamp rejected (host clock off?)",
}
# code -> (reason, retry_after seconds or None)
RETRIABLE_CODES: dict[str, tuple[str, float | None]] = {
    "isv.BUSINESS_LIMIT_CONTROL": ("per-number flow control", 60.0),
    "Throttling": ("throttled", None),
    "Throttling.User": ("throttled (user QPS)", None),
    "Throttling.Api": ("throttled (API QPS)", None),
    "isp.SYSTEM_ERROR": ("Aliyun system error", None),
    "ServiceUnavailable": ("service unavailable", None),
    "SignatureNonceUsed": ("nonce reused", 0.0),
}


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun specifies it: only A-Z a-z 0-9 - _ . ~ stay; space is %20."""
    return quote(value, safe="~")


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    canonical = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()))
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"


def sign(params: Mapping[str, str], access_key_secret: str, method: str = "POST") -> str:
    """Signature v1: base64(HMAC-SHA1(key = secret + "&", StringToSign)); `params` without Signature."""
    digest = hmac.new(
        f"{access_key_secret}&".encode(), string_to_sign(method, params).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode()


def classify(code: str, message: str) -> ProviderError:
    if code in PERMANENT_CODES:
        return PermanentError(f"{PERMANENT_CODES[code]}: {message}", code=code)
    if code in RETRIABLE_CODES:
        reason, retry_after = RETRIABLE_CODES[code]
        return RetriableError(f"{reason}: {message}", code=code, retry_after=retry_after)
    if code.startswith(("isp.", "Throttling")):
        return RetriableError(message or code, code=code)
    return PermanentError(message or code, code=code)


@dataclass(frozen=True)
class AliyunTemplate:
    """An approved Aliyun template: its code and the variables it takes (taken from message.params;
    an empty tuple passes every param)."""

    code: str
    variables: tuple[str, ...] = ()


class AliyunSms:
    name = "aliyun"

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        sign_name: str,
        templates: Mapping[str, AliyunTemplate],
        endpoint: str = DEFAULT_ENDPOINT,
        region_id: str = "cn-hangzhou",
        timeout: float = 10.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.templates = dict(templates)
        self.endpoint = endpoint
        self.region_id = region_id
        self.timeout = timeout
        self.session = session or requests.Session()
        self.clock = clock

    def send(self, message: OutgoingMessage) -> SendResult:
        template = self.templates.get(message.kind or "")
        if template is None:
            raise PermanentError(f"no Aliyun template configured for notice kind {message.kind!r}")
        variables = template.variables or tuple(message.params)
        missing = [v for v in variables if v not in message.params]
        if missing:
            raise PermanentError(f"template {template.code} needs {', '.join(missing)}")
        business = {
            "PhoneNumbers": message.recipient,
            "SignName": self.sign_name,
            "TemplateCode": template.code,
            "TemplateParam": json.dumps({v: str(message.params[v]) for v in variables}, ensure_ascii=False),
            "OutId": message.notification_id,
        }
        params = self.signed({"Action": "SendSms", **business})
        body = json_object(call(self.session, "POST", self.endpoint, data=params, timeout=self.timeout))
        code = str(body.get("Code", ""))
        if code == "OK":
            return SendResult(self.name, body.get("BizId"), "queued")
        raise classify(code, str(body.get("Message", "")))

    def signed(self, params: Mapping[str, str]) -> dict[str, str]:
        """The request parameters with the common ones and the Signature added."""
        full = {
            "AccessKeyId": self.access_key_id,
            "Format": "JSON",
            "RegionId": self.region_id,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "Version": API_VERSION,
            **params,
        }
        full["Signature"] = sign(full, self.access_key_secret, "POST")
        return full


# --- delivery receipts (SmsReport push) ----------------------------------------------------------

REPORT_ACK: dict[str, Any] = {"code": 0, "msg": "接收成功"}  # answer with HTTP 200, or Aliyun retries


@dataclass(frozen=True)
class DeliveryReport:
    biz_id: str | None
    notification_id: str | None  # the OutId we sent
    phone_number: str | None
    delivered: bool
    err_code: str | None
    err_msg: str | None
    report_time: str | None

    @property
    def status(self) -> str:
        return "delivered" if self.delivered else "undelivered"


def parse_sms_report(body: bytes | str) -> list[DeliveryReport]:
    """Parse an SmsReport push (a JSON array of receipts); ValueError if it is not one."""
    items = json.loads(body)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("SmsReport must be a JSON array of objects")
    return [
        DeliveryReport(
            biz_id=item.get("biz_id"),
            notification_id=item.get("out_id") or None,
            phone_number=item.get("phone_number"),
            delivered=item.get("success") in (True, "true", "True"),
            err_code=item.get("err_code"),
            err_msg=item.get("err_msg"),
            report_time=item.get("report_time"),
        )
        for item in items
    ]
