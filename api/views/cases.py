"""alarms (intake by systems) and cases (the business view, scoped to the caller's grids)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from engine import instances
from engine.db import given, page
from engine.errors import InvalidInput, NotFound
from engine.forms import Form, FormField
from engine.visibility import grid_filter
from workflows import urging
from workflows.case_closing import COUNTERS, OUTCOMES, CaseAssessment, task_on_time
from workflows.cases import SOURCES, Alarm, Case, UnknownCategory, file_alarm
from workflows.deferrals import CaseDeferral, request_deferral

from .. import schemas
from ..auth import Principal, current, roles
from ..fields import EventTime
from ..http import doc, json_body, query_args, runtime
from ..idempotency import idempotent
from ..schemas import Strict
from .grids import TENANT


class AlarmSchema(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    external_id = fields.String(data_key="externalId", required=True, validate=validate.Length(min=1, max=100))
    source_ref = fields.String(data_key="sourceRef", validate=validate.Length(min=1, max=100))
    category = fields.String(required=True, validate=validate.Length(min=1, max=50))
    occurred_at = EventTime(data_key="occurredAt", required=True)
    lon = fields.Float(validate=validate.Range(min=-180, max=180))
    lat = fields.Float(validate=validate.Range(min=-90, max=90))
    description = fields.String(validate=validate.Length(max=2000))
    details = fields.Dict(keys=fields.String(), load_default=dict)


class CaseView(Schema):
    id = fields.String()
    tenant = fields.String()
    source = fields.String()
    source_ref = fields.String(data_key="sourceRef", allow_none=True)
    external_id = fields.String(data_key="externalId")
    category = fields.String()
    description = fields.String(allow_none=True)
    lon = fields.Float(allow_none=True)
    lat = fields.Float(allow_none=True)
    grid_code = fields.String(data_key="grid")
    route_reason = fields.String(data_key="routeReason")
    urgent = fields.Boolean()
    status = fields.String()
    outcome = fields.String(allow_none=True)
    closed_at = fields.AwareDateTime(data_key="closedAt", allow_none=True)
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    occurrences = fields.Integer()
    deferred_until = fields.AwareDateTime(data_key="deferredUntil", allow_none=True,
                                          metadata={"description": "set while the case is on hold (缓办)"})
    first_seen = fields.AwareDateTime(data_key="firstSeen")
    last_seen = fields.AwareDateTime(data_key="lastSeen")


class CaseListArgs(schemas.PageArgs):
    tenant = fields.String(required=True, validate=TENANT)
    status = fields.String(validate=validate.OneOf(["open", "closed"]))
    outcome = fields.String(validate=validate.OneOf(OUTCOMES))
    category = fields.String(validate=validate.Length(max=50))
    grid = fields.String(validate=validate.Length(max=40))
    deferred = fields.Boolean(metadata={"description": "only cases on hold (缓办), or only those not"})


bp = Blueprint("cases", __name__, url_prefix="/api/v1")
READERS = ("admin", "supervisor", "leader", "inspector")
COUNT_CAP = 10_000  # beyond this the list says "10000+" (totalCapped) instead of counting every case


@bp.post("/alarms")
@roles("system", "admin")
@idempotent
@doc("File an alarm: a new case (201), the same alarm again (200), or an occurrence of an open case (200)",
     body=AlarmSchema, response=CaseView, status=201,
     also={200: "the same alarm again, or an occurrence of an open case"})
def post_alarm():
    a = json_body(AlarmSchema())
    if ("lon" in a) != ("lat" in a):
        raise InvalidInput("give both lon and lat, or neither", fields=["lon", "lat"])
    index = current_app.extensions["gridloop.grids"].get(a["tenant"])
    if index.city_code is None:
        raise NotFound(f"tenant {a['tenant']} has no grids")
    alarm = Alarm(tenant=a["tenant"], source=a["source"], external_id=a["external_id"], category=a["category"],
                  occurred_at=a["occurred_at"], source_ref=a.get("source_ref"), lon=a.get("lon"), lat=a.get("lat"),
                  description=a.get("description"), details=a["details"])
    try:
        intake = file_alarm(runtime(), index, alarm, current().name)
    except UnknownCategory:
        raise InvalidInput(f"unknown category {a['category']!r}", fields=["category"]) from None
    body = {**CaseView().dump(intake.case), "outcome": intake.outcome}
    return jsonify(body), 201 if intake.outcome == "filed" else 200


def _scope_filter(p: Principal, stmt):
    return stmt.where(grid_filter(p.viewer, Case.grid_code))


@bp.get("/cases")
@roles(*READERS)
@doc("Cases in the caller's grids, newest first", query=CaseListArgs,
     response=schemas.page_of(CaseView, "CasePage", capped=True))
def list_cases():
    args = query_args(CaseListArgs())
    stmt = _scope_filter(current(), select(Case).where(Case.tenant == args["tenant"], *given(
        Case.status == args["status"] if "status" in args else None,
        Case.outcome == args["outcome"] if "outcome" in args else None,
        Case.category == args["category"] if "category" in args else None,
        Case.grid_code.startswith(args["grid"], autoescape=True) if "grid" in args else None,
        (Case.deferred_until.is_not(None) if args["deferred"] else Case.deferred_until.is_(None))
        if "deferred" in args else None)))
    rows, total = page(runtime().db, stmt, [Case.created_at.desc(), Case.id.desc()], args["offset"], args["limit"],
                       count_cap=COUNT_CAP)
    return jsonify({"items": CaseView(many=True).dump(rows), "total": total, "totalCapped": total >= COUNT_CAP,
                    "offset": args["offset"], "limit": args["limit"]})


@bp.get("/cases/<case_id>")
@roles(*READERS)
@doc("One case with its stages (each user task: started, due, ended, on time), its timeline (from the audit "
     "trail), its open tasks and, once closed, its assessment record")
def get_case(case_id: str):
    with runtime().db.session() as s:
        case = s.scalar(_scope_filter(current(), select(Case).where(Case.id == case_id)))
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    body = CaseView().dump(case)
    if case.instance_id:
        rt = runtime()
        forms = instances.forms(rt, case.instance_id)
        body["timeline"] = [{"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "element": e.element_id,
                             "said": _said(e.action, e.details or {}, forms.get(e.element_id or ""))}
                            for e in instances.history(rt, case.instance_id)]
        body["openTasks"] = schemas.TaskSchema(many=True).dump(instances.open_tasks(rt, case.instance_id))
        status = instances.get(rt, case.instance_id).status
        body["processStatus"] = status
        body["stages"] = [_stage(t, status, rt.clock.now()) for t in instances.task_history(rt, case.instance_id)]
        with rt.db.session() as s:
            record = s.get(CaseAssessment, case.id)
            deferrals = s.scalars(select(CaseDeferral).where(CaseDeferral.case_id == case.id)
                                  .order_by(CaseDeferral.id)).all()
        body["assessment"] = AssessmentView().dump(record) if record else None
        body["deferrals"] = DeferralView(many=True).dump(deferrals)
    body["limits"] = {stage: {"limitMinutes": minutes, "clock": clock}
                      for stage, (minutes, clock) in (case.details or {}).get("limits", {}).items()}
    return jsonify(body)


def _said(action: str, details: dict, form: Form | None) -> list[dict]:
    """What an event decided, for the timeline to tell in words: the labelled fields a task was
    completed with (who it was dispatched to, the finding…), a message's payload (the enforcement
    decision and fine), an urge's note. Empty values and unlabelled fields are left out."""
    if action == "task.completed":
        values = (details.get("after") or {}).get("variables") or {}
        if form is None:
            return []
        return [_labelled(f, values[f.name]) for f in form.fields
                if f.label and not _blank(values.get(f.name))]
    if action in ("message.correlated", "message.delivered"):
        payload = details.get("payload")
        items = payload.items() if isinstance(payload, dict) else ()
        return [{"name": k, "value": v} for k, v in items if not _blank(v) and isinstance(v, str | int | float)]
    if action == "case.urged" and not _blank(details.get("note")):
        return [{"name": "note", "value": details["note"]}]
    return []


def _labelled(f: FormField, value: object) -> dict:
    said: dict = {"name": f.name, "label": f.label, "labelEn": f.label_en or f.label, "value": value}
    option = next((o for o in f.options if o.value == value), None)
    if option is not None and option.label:
        said["valueLabel"], said["valueLabelEn"] = option.label, option.label_en or option.label
    return said


def _blank(value: object) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _stage(t, process_status: str, now) -> dict:
    return {"task": t.element_id, "name": t.name, "status": t.status, "assignee": t.assignee,
            "completedBy": t.completed_by, "started": t.created_at.isoformat(),
            "due": t.due_at.isoformat() if t.due_at else None, "ended": t.ended_at.isoformat() if t.ended_at else None,
            "onTime": task_on_time(t.status, t.due_at, t.ended_at, by_timer=process_status != "cancelled", now=now)}


class AssessmentView(Schema):
    outcome = fields.String()
    inspector = fields.String(allow_none=True)
    violation = fields.Boolean()
    closed_at = fields.AwareDateTime(data_key="closedAt")
    lead_hours = fields.Float(data_key="leadHours")
    reviewed_on_time = fields.Boolean(data_key="reviewedOnTime", allow_none=True)
    dispatched_on_time = fields.Boolean(data_key="dispatchedOnTime", allow_none=True)
    signed_on_time = fields.Boolean(data_key="signedOnTime", allow_none=True)
    handled_on_time = fields.Boolean(data_key="handledOnTime", allow_none=True)
    verified_on_time = fields.Boolean(data_key="verifiedOnTime", allow_none=True)
    closed_on_time = fields.Boolean(data_key="closedOnTime", allow_none=True)
    counts = fields.Method("_counts")

    def _counts(self, record) -> dict:
        counts = {name: getattr(record, name) for name in (*COUNTERS, "reminders", "urges", "occurrences", "deferrals")}
        return {**counts, "deferredSeconds": record.deferred_seconds}


class DeferralView(Schema):
    reason = fields.String()
    requested_by = fields.String(data_key="requestedBy", allow_none=True)
    approved_by = fields.String(data_key="approvedBy", allow_none=True)
    until = fields.AwareDateTime()
    started_at = fields.AwareDateTime(data_key="startedAt")
    ended_at = fields.AwareDateTime(data_key="endedAt", allow_none=True)
    ended_how = fields.String(data_key="endedHow", allow_none=True, metadata={"description": "date | released"})
    remaining_seconds = fields.Integer(data_key="remainingSeconds",
                                       metadata={"description": "of the handling limit, kept while on hold"})


class UrgeSchema(Strict):
    note = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class NotNotifiedView(Schema):
    user = fields.String()
    reason = fields.String(metadata={"description": f"{urging.NO_CHANNEL!r} (no phone or WeChat Work id on record) "
                                                    f"or {urging.NOT_STAFF!r}"})


class UrgedView(Schema):
    case_id = fields.String(data_key="caseId")
    tasks = fields.List(fields.String(), data_key="urged", metadata={"description": "the open tasks urged"})
    notified = fields.List(fields.String(), metadata={
        "description": "who was told: a notice is queued on a channel they have (delivery follows; see "
                       "GET /notifications?caseId=)"})
    not_notified = fields.List(fields.Nested(NotNotifiedView), data_key="notNotified",
                               metadata={"description": "who could not be told, and why (each is an incident)"})
    notifications = fields.List(fields.String(), metadata={"description": "the ids of the notices queued"})


@bp.post("/cases/<case_id>/urge")
@roles("supervisor", "leader")
@idempotent
@doc("督办: urge the people working on an open case; recorded on its timeline together with a notice to each",
     body=UrgeSchema, response=UrgedView, status=201)
def urge(case_id: str):
    args = json_body(UrgeSchema())
    notify = current_app.config["GRIDLOOP_SETTINGS"].notify
    urged = urging.urge_case(runtime(), current().viewer, case_id, args["note"], quiet=notify.quiet,
                             public_url=notify.public_url)
    return jsonify(UrgedView().dump(urged)), 201


class DeferralRequestSchema(Strict):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))
    until = fields.AwareDateTime(required=True, metadata={"description": "when handling should resume (ahead of now)"})


@bp.post("/cases/<case_id>/deferral")
@roles("supervisor", "inspector")
@idempotent
@doc("缓办: ask to defer a case in handling until a date — the inspector handling it, or a supervisor of its "
     "grid on their behalf; the level above approves (task approve_deferral). Answers the handling task, "
     "completed", body=DeferralRequestSchema, response=schemas.TaskSchema, status=201)
def ask_deferral(case_id: str):
    args = json_body(DeferralRequestSchema())
    task = request_deferral(runtime(), current().viewer, case_id, args["reason"], args["until"])
    return jsonify(schemas.TaskSchema().dump(task)), 201
