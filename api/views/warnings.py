"""Graded warnings (分级预警, DOMAIN.md §1; workflows/warnings.py): raise, list and read them within
the caller's grids, acknowledge them signed in or through the signed link in the notice, and the
per-level policy that decides who is told and how long they have.

The link acknowledges without a login: its token is an HMAC of the recipient group's id under the
application secret, so it cannot be guessed or forged (404), and using it again changes nothing.
Opening it (GET) only shows the warning and a button: link previews in chat apps and mail scanners
fetch URLs on their own, and must not acknowledge for anyone. The button POSTs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from markupsafe import escape
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from engine.db import given, page
from engine.errors import Conflict, InvalidInput, NotAllowed, NotFound
from engine.models import ProcessInstance
from engine.visibility import grid_filter, grid_visible
from notifications.models import Notification
from notifications.templates import warning_level
from workflows import warning_policies
from workflows.warning_models import NOTIFY_LEVELS, NOTIFY_POSTS, STATUSES, GradedWarning, WarningEvent, WarningGroup
from workflows.warning_plans import UnknownGrid
from workflows.warning_policies import NewPolicy
from workflows.warnings import (
    WarningInput,
    ack_token,
    acknowledge,
    group_of_token,
    raise_warning,
)

from .. import schemas
from ..auth import Principal, current, public, roles
from ..fields import EventTime
from ..http import doc, json_body, optional_json_body, query_args, runtime
from ..idempotency import idempotent
from ..schemas import Strict
from .grids import TENANT

ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}
READERS = ("admin", "supervisor", "leader", "inspector")
LINK_PATH = "/api/v1/warnings/ack/"


class Level(fields.Field):
    """A warning level: 1–4, or "I"–"IV" (also "Ⅰ"–"Ⅳ"); always 1–4 once loaded."""

    default_error_messages = {"invalid": 'a level I–IV: 1–4 or "I"–"IV"'}

    def _deserialize(self, value: Any, attr, data, **kwargs) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str) or len(str(value)) > 10:
            raise self.make_error("invalid")
        try:
            return warning_level(value)
        except ValueError:
            raise self.make_error("invalid") from None

    def _serialize(self, value: Any, attr, obj, **kwargs) -> Any:
        return value


class RaiseSchema(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    level = Level(required=True)
    grid = fields.String(required=True, validate=validate.Length(min=1, max=40))
    source = fields.String(validate=validate.Length(min=1, max=100))
    station = fields.String(required=True, validate=validate.Length(min=1, max=200))
    pollutant = fields.String(required=True, validate=validate.Length(min=1, max=100))
    value = fields.Float(required=True)
    limit = fields.Float(required=True)
    unit = fields.String(load_default="", validate=validate.Length(max=20))
    observed_at = EventTime(data_key="observedAt", required=True)


class WarningView(Schema):
    id = fields.String()
    tenant = fields.String()
    level = fields.Integer()
    level_label = fields.Function(lambda w: ROMAN[w.level], data_key="levelLabel")
    grid_code = fields.String(data_key="grid")
    source = fields.String(allow_none=True)
    station = fields.String()
    pollutant = fields.String()
    value = fields.Float()
    unit = fields.String()
    limit = fields.Float()
    observed_at = fields.AwareDateTime(data_key="observedAt")
    status = fields.String()
    created_at = fields.AwareDateTime(data_key="createdAt")
    created_by = fields.String(data_key="createdBy")
    acknowledged_by = fields.String(data_key="acknowledgedBy", allow_none=True)
    acknowledged_at = fields.AwareDateTime(data_key="acknowledgedAt", allow_none=True)


class GroupView(Schema):
    id = fields.String()
    seq = fields.Integer()
    scope = fields.String()
    post = fields.String()
    recipient = fields.String(allow_none=True)
    policy = fields.String()
    ack_minutes = fields.Integer(data_key="ackMinutes")
    renotify = fields.Boolean()
    escalation_scopes = fields.List(fields.String(), data_key="escalationScopes")
    current_scope = fields.String(data_key="currentScope")
    escalations = fields.Integer()
    status = fields.String()
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    acknowledged_by = fields.String(data_key="acknowledgedBy", allow_none=True)
    acknowledged_at = fields.AwareDateTime(data_key="acknowledgedAt", allow_none=True)
    ack_via = fields.String(data_key="via", allow_none=True)
    ended_at = fields.AwareDateTime(data_key="endedAt", allow_none=True)


class WarningListArgs(schemas.PageArgs):
    tenant = fields.String(required=True, validate=TENANT)
    status = fields.String(validate=validate.OneOf(STATUSES))
    level = Level()
    grid = fields.String(validate=validate.Length(max=40))


class AckSchema(Strict):
    note = fields.String(validate=validate.Length(min=1, max=1000))
    group = fields.String(validate=validate.Length(min=1, max=32))  # only this recipient group


class PolicySchema(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    level = Level(required=True)
    grid_prefix = fields.String(data_key="gridPrefix", load_default=None, allow_none=True,
                                validate=validate.Regexp(r"^[0-9]{1,40}\Z", error="digits of a grid code"))
    notify_level = fields.String(data_key="notifyLevel", load_default="grid", validate=validate.OneOf(NOTIFY_LEVELS))
    notify_post = fields.String(data_key="notifyPost", load_default="supervisor",
                                validate=validate.OneOf(NOTIFY_POSTS))
    ack_minutes = fields.Integer(data_key="ackMinutes", required=True, validate=validate.Range(min=1, max=7 * 24 * 60))
    renotify = fields.Boolean(load_default=True)


class PolicyView(PolicySchema):
    id = fields.Integer()


class PolicyListArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)


bp = Blueprint("warnings", __name__, url_prefix="/api/v1")


def _scoped(p: Principal, stmt):
    return stmt.where(grid_filter(p.viewer, GradedWarning.grid_code))


def _visible(warning_id: str) -> GradedWarning:
    with runtime().db.session() as s:
        w = s.scalar(_scoped(current(), select(GradedWarning).where(GradedWarning.id == warning_id)))
    if w is None:
        raise NotFound(f"warning {warning_id} does not exist")
    return w


def may_acknowledge(p: Principal, g: WarningGroup) -> bool:
    """Admins and leaders any group; a supervisor the groups of grids within theirs (told first or
    escalated to); an inspector their own group, or an inspectors' group of a grid within theirs."""
    v = p.viewer
    if v.sees_all:
        return True
    if p.has("supervisor") and (grid_visible(v, g.scope) or grid_visible(v, g.current_scope)):
        return True
    return p.has("inspector") and (g.recipient == p.name or (g.post == "inspector" and grid_visible(v, g.scope)))


def _link_base() -> str:
    public_url = current_app.config["GRIDLOOP_SETTINGS"].notify.public_url
    return (public_url or request.url_root).rstrip("/")


@bp.post("/warnings")
@roles("system", "admin", "supervisor")
@idempotent
@doc("Raise a graded warning (level I–IV): its recipients are told at once and must acknowledge in time",
     body=RaiseSchema, response=WarningView, status=201)
def post_warning():
    a = json_body(RaiseSchema())
    p = current()
    if p.has("supervisor") and not grid_visible(p.viewer, a["grid"]):
        raise NotAllowed("a supervisor raises warnings only inside their own grid")
    secret, base = current_app.config["SECRET_KEY"], _link_base()
    w = WarningInput(tenant=a["tenant"], level=a["level"], grid_code=a["grid"], station=a["station"],
                     pollutant=a["pollutant"], value=a["value"], limit=a["limit"], observed_at=a["observed_at"],
                     unit=a["unit"], source=a.get("source"))
    try:
        warning = raise_warning(runtime(), w, p.name, lambda gid: f"{base}{LINK_PATH}{ack_token(secret, gid)}")
    except UnknownGrid:
        raise InvalidInput(f"{a['grid']} is not a current grid of tenant {a['tenant']}", fields=["grid"]) from None
    except NotFound as exc:  # the graded_warning model is not deployed
        raise Conflict(exc.message) from None
    return jsonify(_detail(warning)), 201


@bp.get("/warnings")
@roles(*READERS)
@doc("Warnings in the caller's grids, newest first", query=WarningListArgs,
     response=schemas.page_of(WarningView, "WarningPage"))
def list_warnings():
    args = query_args(WarningListArgs())
    stmt = _scoped(current(), select(GradedWarning).where(GradedWarning.tenant == args["tenant"], *given(
        GradedWarning.status == args["status"] if "status" in args else None,
        GradedWarning.level == args["level"] if "level" in args else None,
        GradedWarning.grid_code.startswith(args["grid"], autoescape=True) if "grid" in args else None)))
    rows, total = page(runtime().db, stmt, [GradedWarning.created_at.desc(), GradedWarning.id], args["offset"],
                       args["limit"])
    return jsonify({"items": WarningView(many=True).dump(rows), "total": total, "offset": args["offset"],
                    "limit": args["limit"]})


@bp.get("/warnings/<warning_id>")
@roles(*READERS)
@doc("One warning with its recipient groups (who, deadline, escalation, acknowledgement), the notices "
     "sent and its timeline")
def get_warning(warning_id: str):
    return jsonify(_detail(_visible(warning_id)))


def _detail(w: GradedWarning) -> dict[str, Any]:
    with runtime().db.session() as s:
        groups = list(s.scalars(select(WarningGroup).where(WarningGroup.warning_id == w.id).order_by(WarningGroup.seq)))
        by_instance: dict[str | None, str] = {g.instance_id: g.id for g in groups if g.instance_id}
        due: dict[str | None, datetime | None] = dict(s.execute(
            select(ProcessInstance.id, ProcessInstance.next_wakeup_at).where(
                ProcessInstance.id.in_(list(by_instance)), ProcessInstance.status == "running")).all())
        notices = s.scalars(select(Notification).where(Notification.instance_id.in_(list(by_instance)))
                            .order_by(Notification.created_at, Notification.recipient)).all()
        events = s.scalars(select(WarningEvent).where(WarningEvent.warning_id == w.id)
                           .order_by(WarningEvent.at, WarningEvent.id)).all()
    body = WarningView().dump(w)
    body["groups"] = [{**GroupView().dump(g), "ackDue": at.isoformat() if (at := due.get(g.instance_id)) else None}
                      for g in groups]
    # never the notice's text or link: the link acknowledges for whoever holds it
    body["notices"] = [{"group": by_instance.get(n.instance_id), "recipient": n.recipient, "channel": n.channel,
                        "status": n.status, "attempt": n.data.get("attempt"), "escalation": n.data.get("escalation"),
                        "createdAt": n.created_at.isoformat()} for n in notices]
    body["timeline"] = [{"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "group": e.group_id,
                         "detail": e.detail} for e in events]
    return body


@bp.post("/warnings/<warning_id>/ack")
@roles(*READERS)
@idempotent
@doc("Acknowledge a warning for the recipient groups the caller answers for (or just `group`)", body=AckSchema)
def ack_warning(warning_id: str):
    args = optional_json_body(AckSchema())
    w, p = _visible(warning_id), current()
    with runtime().db.session() as s:
        groups = list(s.scalars(select(WarningGroup).where(WarningGroup.warning_id == w.id).order_by(WarningGroup.seq)))
    if "group" in args:
        groups = [g for g in groups if g.id == args["group"]]
        if not groups:
            raise NotFound(f"warning {warning_id} has no recipient group {args['group']}")
    mine = [g for g in groups if may_acknowledge(p, g)]
    if not mine:
        raise NotAllowed("you are not among those who answer for this warning")
    outcomes = {g.id: acknowledge(runtime(), g.id, by=p.name, via="api", note=args.get("note")) for g in mine}
    if not any(o in ("acknowledged", "duplicate") for o in outcomes.values()):
        raise Conflict("too late: the warning ended without an acknowledgement", groups=outcomes)
    return jsonify({"warningId": w.id, "groups": outcomes, "status": _visible(w.id).status})


# -- the link in the notice ------------------------------------------------------------------------------

def _by_token(token: str) -> tuple[WarningGroup, GradedWarning]:
    group_id = group_of_token(current_app.config["SECRET_KEY"], token) if len(token) <= 100 else None
    with runtime().db.session() as s:
        g = s.get(WarningGroup, group_id) if group_id else None
        w = s.get(GradedWarning, g.warning_id) if g else None
    if g is None or w is None:  # forged, or a group that does not exist: nothing to tell apart
        raise NotFound("no such acknowledgement link")
    return g, w


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]


def _summary(w: GradedWarning, g: WarningGroup) -> dict[str, Any]:
    return {"warningId": w.id, "level": w.level, "levelLabel": ROMAN[w.level], "station": w.station,
            "pollutant": w.pollutant, "value": w.value, "unit": w.unit, "limit": w.limit,
            "observedAt": w.observed_at.isoformat(), "status": g.status}


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"</head><body><h1>{escape(title)}</h1>{body}</body></html>")
    return Response(html, status=status, content_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


@bp.get("/warnings/ack/<token>")
@public
@doc("The acknowledgement link of a notice: shows the warning and how to acknowledge it (acknowledges nothing)")
def ack_link_page(token: str):
    g, w = _by_token(token)
    info = _summary(w, g)
    if not _wants_html():
        return jsonify({**info, "acknowledge": {"method": "POST", "url": request.path}})
    reading = escape(f"{w.station} {w.pollutant} {info['value']:g}{w.unit} / {w.limit:g}{w.unit}")
    action = (f'<form method="post" action="{escape(request.path)}"><button type="submit">确认收到 Acknowledge'
              f"</button></form>" if g.status in ("open", "escalated") else f"<p>{escape(g.status)}</p>")
    return _page(f"{ROMAN[w.level]}级预警 Level {ROMAN[w.level]} warning",
                 f"<p>{reading}</p><p>{escape(info['observedAt'])}</p>{action}")


@bp.post("/warnings/ack/<token>")
@public
@doc("Acknowledge through the link of a notice, without a login; using it again changes nothing")
def ack_by_link(token: str):
    g, w = _by_token(token)
    outcome = acknowledge(runtime(), g.id, by="link", via="link")
    if outcome not in ("acknowledged", "duplicate"):
        if _wants_html():
            return _page("已过期 Expired", "<p>预警已结束，未能确认。The warning ended unacknowledged.</p>", 409)
        raise Conflict("too late: the warning ended without an acknowledgement", status=outcome)
    if _wants_html():
        return _page("已确认 Acknowledged", "<p>感谢确认。Thank you.</p>")
    return jsonify({"warningId": w.id, "group": g.id, "status": "acknowledged", "duplicate": outcome == "duplicate"})


# -- policy ----------------------------------------------------------------------------------------

@bp.get("/warning-policies")
@roles("admin", "leader", "supervisor")
@doc("Who is told of a warning of each level, per grid prefix (without a row: the defaults)",
     query=PolicyListArgs, response=PolicyView, many=True)
def list_policies():
    args = query_args(PolicyListArgs())
    return jsonify(PolicyView(many=True).dump(warning_policies.policies(runtime(), args["tenant"])))


@bp.post("/warning-policies")
@roles("admin")
@doc("Add a policy row: one recipient group for warnings of `level` in grids under `gridPrefix`",
     body=PolicySchema, response=PolicyView, status=201)
def add_policy():
    new = NewPolicy(**json_body(PolicySchema()))
    return jsonify(PolicyView().dump(warning_policies.add_policy(runtime(), new))), 201


@bp.delete("/warning-policies/<int(max=2147483647):policy_id>")  # an INTEGER column: 2^31-1
@roles("admin")
@doc("Remove a policy row (warnings already raised keep their recipients)", status=204)
def delete_policy(policy_id: int):
    warning_policies.remove_policy(runtime(), policy_id)
    return "", 204

