"""notifications: what was sent to whom and how it went (scoped like cases), the text a notice
would have, and the providers' delivery receipts.

Who sees which notifications: admins and leaders all; a supervisor those of the cases in their
grid (the case scope rule) and their own; an inspector only their own (recipient = username).
A citizen's phone number or openid is shown to admins only.

Receipts are public endpoints with a credential of their own: Twilio signs its status callbacks
(X-Twilio-Signature over the URL it called, which is the callback URL we gave it, and the form
fields); Aliyun does not sign SmsReport pushes, so the push URL carries a shared token."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import false, or_, select
from werkzeug.exceptions import BadRequest

from engine.db import given, page
from engine.errors import InvalidInput, NotFound
from notifications import receipts, templates
from notifications.config import NotifySettings
from notifications.models import STATUSES, Notification, NotificationEvent, masked
from notifications.providers.aliyun_sms import REPORT_ACK, parse_sms_report
from notifications.providers.base import Channel
from notifications.providers.twilio_sms import InvalidSignature, parse_status_callback
from notifications.queueing import SMS_MAX_SEGMENTS
from notifications.sms_segments import count_segments
from workflows.cases import Case

from .. import schemas
from ..auth import AuthError, Principal, current, public, roles
from ..http import check_json, doc, json_body, query_args, runtime
from ..schemas import Strict
from .cases import _scope_filter as case_scope

log = logging.getLogger(__name__)

bp = Blueprint("notifications", __name__, url_prefix="/api/v1")
READERS = ("admin", "leader", "supervisor", "inspector")
CHANNELS = tuple(c.value for c in Channel)
MAX_REPORT_BODY = 1024 * 1024  # Aliyun pushes up to a few hundred receipts at once


# -- reading -------------------------------------------------------------------------------------

class EventView(Schema):
    status = fields.String()
    at = fields.AwareDateTime()
    detail = fields.Dict()


class NotificationView(Schema):
    id = fields.String()
    kind = fields.String()
    case_id = fields.String(data_key="caseId", allow_none=True)
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    recipient = fields.String()
    channel = fields.String()
    address = fields.String()
    locale = fields.String()
    title = fields.String(allow_none=True)
    text = fields.String()
    url = fields.String(allow_none=True)
    urgent = fields.Boolean()
    status = fields.String()
    attempts = fields.Integer()
    provider = fields.String(allow_none=True)
    provider_message_id = fields.String(data_key="providerMessageId", allow_none=True)
    last_error = fields.String(data_key="lastError", allow_none=True)
    fallback_channels = fields.Method("_fallback_channels", data_key="fallbackChannels")
    fallback_of = fields.String(data_key="fallbackOf", allow_none=True)
    send_after = fields.AwareDateTime(data_key="sendAfter")
    created_at = fields.AwareDateTime(data_key="created")
    updated_at = fields.AwareDateTime(data_key="updated")

    def _fallback_channels(self, n: Notification) -> list[str]:
        return [str(c[0]) for c in n.fallbacks or []]


class NotificationDetail(NotificationView):
    data = fields.Dict()
    events = fields.List(fields.Nested(EventView))
    fallback_ids = fields.List(fields.String(), data_key="fallbackIds")


class NotificationListArgs(schemas.PageArgs):
    case_id = fields.String(data_key="caseId", validate=validate.Length(min=1, max=40))
    recipient = fields.String(validate=validate.Length(min=1, max=200))
    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.OneOf(templates.KINDS))
    channel = fields.String(validate=validate.OneOf((*CHANNELS, "none")))  # none: nobody to reach


def _visible(p: Principal, stmt):
    """`stmt` narrowed to the notifications `p` may see (nothing, for a role not named here)."""
    if p.has("admin", "leader"):
        return stmt
    seen = []
    if p.has("supervisor", "inspector"):
        seen.append(Notification.recipient == p.name)
    if p.has("supervisor"):  # the case scope rule: nothing beyond their own without a grid
        seen.append(Notification.case_id.in_(case_scope(p, select(Case.id))))
    return stmt.where(or_(*seen)) if seen else stmt.where(false())


def _dump(schema: Schema, n: Notification, p: Principal) -> dict:
    body = schema.dump(n)
    if n.recipient.startswith("citizen:") and not p.has("admin"):
        body["address"] = masked(n.address)
    return body


@bp.get("/notifications")
@roles(*READERS)
@doc("Notifications the caller may see, newest first: admins and leaders all, supervisors those of the cases "
     "in their grid and their own, inspectors their own", query=NotificationListArgs,
     response=schemas.page_of(NotificationView, "NotificationPage"))
def list_notifications():
    args = query_args(NotificationListArgs())
    p = current()
    stmt = _visible(p, select(Notification).where(*given(
        Notification.case_id == args["case_id"] if "case_id" in args else None,
        Notification.recipient == args["recipient"] if "recipient" in args else None,
        Notification.status == args["status"] if "status" in args else None,
        Notification.kind == args["kind"] if "kind" in args else None,
        Notification.channel == args["channel"] if "channel" in args else None)))
    rows, total = page(runtime().db, stmt, [Notification.created_at.desc(), Notification.id.desc()],
                       args["offset"], args["limit"])
    view = NotificationView()
    return jsonify({"items": [_dump(view, n, p) for n in rows], "total": total, "offset": args["offset"],
                    "limit": args["limit"]})


@bp.get("/notifications/<notification_id>")
@roles(*READERS)
@doc("One notification with its status history and the notifications that fell back from it",
     response=NotificationDetail)
def get_notification(notification_id: str):
    p = current()
    with runtime().db.session() as s:
        n = s.scalar(_visible(p, select(Notification).where(Notification.id == notification_id)))
        if n is None:
            raise NotFound(f"notification {notification_id} does not exist")
        events = list(s.scalars(select(NotificationEvent).where(NotificationEvent.notification_id == n.id)
                                .order_by(NotificationEvent.at, NotificationEvent.id)))
        fallback_ids = list(s.scalars(select(Notification.id).where(Notification.fallback_of == n.id)
                                      .order_by(Notification.created_at, Notification.id)))
    body = _dump(NotificationDetail(), n, p)
    body.update(events=EventView(many=True).dump(events), fallbackIds=fallback_ids)
    return jsonify(body)


# -- preview -------------------------------------------------------------------------------------

class TemplateValue(fields.Field):
    """A template value: a string (at most 1000 characters) or a number."""

    default_error_messages = {"invalid": "must be a string or a number", "too_long": "at most 1000 characters"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.make_error("invalid")
        if isinstance(value, str) and len(value) > 1000:
            raise self.make_error("too_long")
        return value


class PreviewSchema(Strict):
    kind = fields.String(required=True, validate=validate.OneOf(templates.KINDS))
    data = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=50)), values=TemplateValue(),
                       load_default=dict, validate=validate.Length(max=50))
    locale = fields.String(load_default="zh-CN", validate=validate.Regexp(
        r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?\Z", error="a language tag such as zh-CN or en"))
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))


class PreviewView(Schema):
    title = fields.String()
    text = fields.String()
    url = fields.String(allow_none=True)
    segments = fields.Integer(allow_none=True, metadata={"description": "SMS segments (sms only)"})
    encoding = fields.String(allow_none=True, metadata={"description": "GSM-7 or UCS-2 (sms only)"})
    truncated = fields.Boolean(metadata={"description": "the SMS text was cut to fit"})


@bp.post("/notifications/preview")
@roles("admin", "supervisor")
@doc("The notice a kind and its values give on a channel (SMS: the text as sent, cut to "
     f"{SMS_MAX_SEGMENTS} segments, and its segment count); missing values show as {templates.MISSING}",
     body=PreviewSchema, response=PreviewView)
def preview():
    args = json_body(PreviewSchema())
    kind, data, locale = args["kind"], args["data"], args["locale"]
    try:
        notice = templates.render(kind, data, locale)
    except ValueError as exc:  # a warning's level
        raise ValidationError({"data": {"level": [str(exc)]}}) from None
    body: dict[str, Any] = {"title": notice.title, "text": notice.text, "url": notice.url, "segments": None,
                            "encoding": None, "truncated": False}
    if args["channel"] == Channel.SMS:
        full = notice.text + (f" {notice.url}" if notice.url else "")
        try:
            text = templates.render_sms(kind, data, locale, max_segments=SMS_MAX_SEGMENTS)
        except ValueError as exc:  # the link alone takes more than the segments
            raise ValidationError({"data": {"url": [str(exc)]}}) from None
        segments = count_segments(text)
        body.update(text=text, segments=segments.count, encoding=segments.encoding, truncated=text != full)
    return jsonify(PreviewView().dump(body))


# -- receipts ------------------------------------------------------------------------------------

def _notify() -> NotifySettings:
    return current_app.config["GRIDLOOP_SETTINGS"].notify


class TwilioStatusSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # Twilio sends a dozen more fields (AccountSid, To, From, ApiVersion, ...)

    message_sid = fields.String(data_key="MessageSid", required=True, validate=validate.Length(min=1, max=100))
    message_status = fields.String(data_key="MessageStatus", required=True, validate=validate.Length(min=1, max=40))
    error_code = fields.String(data_key="ErrorCode", validate=validate.Length(max=20))


@bp.post("/notifications/receipts/twilio")
@public  # the signature is the credential
@doc("Twilio SMS status callback (form fields MessageSid, MessageStatus, ErrorCode), signed with "
     "X-Twilio-Signature; 403 when the signature is missing or wrong. Answers 204, also for an unknown message",
     status=204, content_type="application/x-www-form-urlencoded")
def twilio_receipt():
    cfg = _notify()
    base = cfg.twilio_callback_url()
    if not base or not cfg.twilio_auth_token:
        log.error("Twilio status callback refused: GRIDLOOP_NOTIFY_PUBLIC_URL or TWILIO_AUTH_TOKEN is not set")
        raise AuthError(403, "invalid_signature", "status callbacks cannot be verified here")
    # The URL Twilio called and signed: the callback URL it was given (the public one, whatever proxies
    # did to host and scheme since) with the query it was given, byte for byte.
    query = request.query_string.decode("utf-8", "replace")
    url = f"{base}?{query}" if query else base
    form = request.form
    try:
        receipt = parse_status_callback(url, form, request.headers.get("X-Twilio-Signature"), cfg.twilio_auth_token)
    except InvalidSignature:
        log.warning("Twilio status callback with a missing or wrong signature", extra={"url": url})
        raise AuthError(403, "invalid_signature", "X-Twilio-Signature is missing or does not match") from None
    except ValueError as exc:  # signed, but without MessageSid/MessageStatus
        TwilioStatusSchema().load(form.to_dict())
        raise InvalidInput(str(exc)) from None
    TwilioStatusSchema().load(form.to_dict())
    receipts.twilio_status(runtime(), receipt, cfg.quiet)
    return "", 204


class AliyunReportSchema(Schema):
    """One SmsReport receipt (the push is a JSON array of these)."""

    class Meta:
        unknown = EXCLUDE

    phone_number = fields.String(allow_none=True, validate=validate.Length(max=40))
    success = fields.Raw(required=True, validate=validate.OneOf([True, False, "true", "false", "True", "False"]))
    biz_id = fields.String(allow_none=True, validate=validate.Length(max=100))
    out_id = fields.String(allow_none=True, validate=validate.Length(max=100))
    err_code = fields.String(allow_none=True, validate=validate.Length(max=100))
    err_msg = fields.String(allow_none=True, validate=validate.Length(max=1000))
    report_time = fields.String(allow_none=True, validate=validate.Length(max=40))


class ReceiptTokenArgs(Schema):
    class Meta:
        unknown = EXCLUDE

    token = fields.String(load_default="")


@bp.post("/notifications/receipts/aliyun")
@public  # the shared token is the credential
@doc("Aliyun SmsReport push (a JSON array of receipts) with ?token= the shared GRIDLOOP_NOTIFY_ALIYUN_RECEIPT_TOKEN; "
     "403 when it is missing or wrong. Answers Aliyun's acknowledgement {code: 0} with 200",
     query=ReceiptTokenArgs)
def aliyun_receipt():
    cfg = _notify()
    token = ReceiptTokenArgs().load(request.args.to_dict())["token"]
    if not cfg.aliyun_receipt_token or not hmac.compare_digest(token.encode(), cfg.aliyun_receipt_token.encode()):
        log.warning("Aliyun SmsReport push with a missing or wrong token")
        raise AuthError(403, "invalid_token", "the receipt token is missing or wrong")
    request.max_content_length = MAX_REPORT_BODY  # a larger body is a 413 that says the limit
    raw = request.get_data(cache=True)
    try:
        items = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise BadRequest("the body must be a JSON array")
    check_json(items)
    AliyunReportSchema(many=True).load(items)
    receipts.aliyun_report(runtime(), parse_sms_report(raw), cfg.quiet)
    return jsonify(REPORT_ACK), 200
