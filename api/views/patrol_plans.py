"""Patrol (网格巡查): targets, the tenant's plans, the visits the rounds opened, findings filed from a
visit through the patrol intake, coverage and 漏报 (workflows/patrol_*.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from engine.errors import NotAllowed, NotFound
from workflows import patrol, patrol_coverage, patrol_plans, patrol_rounds, patrol_targets
from workflows.evaluations import period_between, period_of
from workflows.evidence import EvidenceError
from workflows.grids import GridIndex
from workflows.patrol_rounds import PatrolTask
from workflows.tenants import works_in

from .. import schemas
from ..auth import current, roles
from ..errors import error_body
from ..http import doc, json_body, query_args, runtime
from ..idempotency import HEADER as IDEMPOTENCY_HEADER
from ..idempotency import idempotent
from ..schemas import Strict
from .cases import CaseView
from .grids import TENANT
from .patrol import PatrolReportForm, _duplicate_policy, _report_upload

bp = Blueprint("patrol_plans", __name__, url_prefix="/api/v1/patrol")
STAFF = ("admin", "leader", "supervisor", "inspector")


class PatrolTenantArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)


class PatrolPlansIn(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    plans = fields.List(fields.Dict(), required=True)


class PatrolTargetItem(Strict):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    target_class = fields.String(data_key="targetClass", required=True,
                                 validate=validate.OneOf(patrol_plans.TARGET_CLASSES))
    lon = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    grid = fields.String(validate=validate.Length(min=1, max=40))
    source_mn = fields.String(data_key="sourceMn", validate=validate.Length(min=1, max=64))
    active = fields.Boolean(load_default=True)


class PatrolTargetIn(PatrolTargetItem):
    tenant = fields.String(required=True, validate=TENANT)


class PatrolTargetPatch(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    target_class = fields.String(data_key="targetClass", validate=validate.OneOf(patrol_plans.TARGET_CLASSES))
    lon = fields.Float(validate=validate.Range(min=-180, max=180))
    lat = fields.Float(validate=validate.Range(min=-90, max=90))
    grid_code = fields.String(data_key="grid", validate=validate.Length(min=1, max=40))
    source_mn = fields.String(data_key="sourceMn", allow_none=True, validate=validate.Length(min=1, max=64))
    active = fields.Boolean()


class PatrolImportIn(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    items = fields.List(fields.Nested(PatrolTargetItem), validate=validate.Length(max=5000))
    from_sources = fields.Boolean(data_key="fromSources", load_default=False)
    target_class = fields.String(data_key="targetClass", load_default="key",
                                 validate=validate.OneOf(patrol_plans.TARGET_CLASSES))


class PatrolTargetView(Schema):
    id = fields.Integer()
    tenant = fields.String()
    code = fields.String()
    name = fields.String()
    target_class = fields.String(data_key="targetClass")
    lon = fields.Float()
    lat = fields.Float()
    grid_code = fields.String(data_key="grid")
    source_mn = fields.String(data_key="sourceMn", allow_none=True)
    active = fields.Boolean()


class PatrolTargetArgs(PatrolTenantArgs):
    grid = fields.String(validate=validate.Length(min=1, max=40))
    target_class = fields.String(data_key="targetClass", validate=validate.OneOf(patrol_plans.TARGET_CLASSES))
    active = fields.Boolean()
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=1_000_000))
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=500))


class PatrolPeriodArgs(PatrolTenantArgs):
    period = fields.String(validate=validate.Length(min=4, max=10))
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    grid = fields.String(validate=validate.Length(min=1, max=40))


class PatrolTaskView(Schema):
    id = fields.String()
    tenant = fields.String()
    target_id = fields.Integer(data_key="targetId")
    grid_level = fields.String(data_key="gridLevel")
    grid_code = fields.String(data_key="grid")
    cadence = fields.String()
    night = fields.Boolean()
    slot_start = fields.AwareDateTime(data_key="slotStart")
    slot_end = fields.AwareDateTime(data_key="due")
    close_at = fields.AwareDateTime(data_key="closeAt")
    inspector = fields.String(allow_none=True)
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)
    status = fields.String()
    visited_at = fields.AwareDateTime(data_key="visitedAt", allow_none=True)
    on_time = fields.Boolean(data_key="onTime", allow_none=True)
    finding = fields.String(allow_none=True)


def _tenant_for(tenant: str) -> None:
    if not works_in(current().viewer, tenant):
        raise NotAllowed(f"you do not work in {tenant}", fields=["tenant"])


def _index(tenant: str) -> GridIndex:
    index = current_app.extensions["gridloop.grids"].get(tenant)
    if index.city_code is None:
        raise NotFound(f"tenant {tenant} has no grids", fields=["tenant"])
    return index


def _scope() -> str | None:
    """None for those who see the whole tenant (admins, leaders), else the caller's subtree."""
    p = current()
    if p.viewer.sees_all:
        return None
    if not p.scope:
        raise NotAllowed("you have no grid")
    return p.scope


def _plan_body(tenant: str, plans: list[patrol_plans.Plan], defaults: bool):
    return jsonify({"tenant": tenant, "defaults": defaults, "plans": [p.as_json() for p in plans]})


@bp.get("/plans")
@roles("admin", "leader", "supervisor")
@doc("The tenant's patrol plans (the defaults when it has none of its own: `defaults` true)", query=PatrolTenantArgs)
def get_plans():
    tenant = query_args(PatrolTenantArgs())["tenant"]
    _tenant_for(tenant)
    return _plan_body(tenant, *patrol_plans.read_plans(runtime(), tenant))


@bp.put("/plans")
@roles("admin")
@doc("Replace the tenant's patrol plans (an empty list: back to the defaults); 422 naming the field, e.g. "
     "plans.2.cadence", body=PatrolPlansIn)
def put_plans():
    body = json_body(PatrolPlansIn())
    _tenant_for(body["tenant"])
    loaded = patrol_plans.PlanSetSchema().load({"plans": body["plans"]})
    plans = [patrol_plans.Plan(**p) for p in loaded["plans"]]
    saved = patrol_plans.replace_plans(runtime(), body["tenant"], plans, current().name)
    return _plan_body(body["tenant"], saved, not plans)


@bp.get("/targets")
@roles(*STAFF)
@doc("Patrol targets of the tenant in the caller's area, by code, paged", query=PatrolTargetArgs,
     response=schemas.page_of(PatrolTargetView, "PatrolTargetPage"))
def list_targets():
    args = query_args(PatrolTargetArgs())
    _tenant_for(args["tenant"])
    rows, total = patrol_targets.list_targets(runtime(), args["tenant"], _scope(), grid=args.get("grid"),
                                              target_class=args.get("target_class"), active=args.get("active"),
                                              offset=args["offset"], limit=args["limit"])
    return jsonify({"items": PatrolTargetView(many=True).dump(rows), "total": total})


@bp.get("/targets/<int:target_id>")
@roles(*STAFF)
@doc("One patrol target", response=PatrolTargetView)
def get_target(target_id: int):
    return jsonify(PatrolTargetView().dump(patrol_targets.get_target(runtime(), target_id, _scope())))


def _new(tenant: str, item: dict) -> patrol_targets.NewTarget:
    return patrol_targets.NewTarget(tenant=tenant, code=item["code"], name=item["name"],
                                    target_class=item["target_class"], lon=item["lon"], lat=item["lat"],
                                    grid_code=item.get("grid"), source_mn=item.get("source_mn"),
                                    active=item["active"])


def _in_my_area(tenant: str, target: patrol_targets.NewTarget, index: GridIndex) -> None:
    scope = _scope()
    unit = target.grid_code or index.locate(target.lon, target.lat)
    if scope and unit and not unit.startswith(scope):
        raise NotAllowed(f"the target lies in {unit}, outside your grid {scope}", fields=["lon", "lat"])


@bp.post("/targets")
@roles("admin", "supervisor")
@idempotent
@doc("Add a patrol target (its unit located from lon/lat unless `grid` names one); supervisors in their grid; "
     "a code taken is 409", body=PatrolTargetIn, response=PatrolTargetView, status=201)
def create_target():
    body = json_body(PatrolTargetIn())
    _tenant_for(body["tenant"])
    index = _index(body["tenant"])
    new = _new(body["tenant"], body)
    _in_my_area(body["tenant"], new, index)
    return jsonify(PatrolTargetView().dump(patrol_targets.create_target(runtime(), index, new))), 201


@bp.patch("/targets/<int:target_id>")
@roles("admin", "supervisor")
@doc("Change a patrol target (deactivate with active=false); supervisors in their grid", body=PatrolTargetPatch,
     response=PatrolTargetView)
def patch_target(target_id: int):
    changes = json_body(PatrolTargetPatch())
    rt = runtime()
    row = patrol_targets.get_target(rt, target_id, _scope())
    row = patrol_targets.update_target(rt, _index(row.tenant), target_id, changes, _scope())
    return jsonify(PatrolTargetView().dump(row))


@bp.post("/targets/import")
@roles("admin")
@doc("Import targets, all or nothing (`items`, problems named by index: items.3.lon), or one key target per "
     "active monitoring source with a position (`fromSources`: true)", body=PatrolImportIn, response=PatrolTargetView,
     many=True, status=201)
def import_targets():
    body = json_body(PatrolImportIn())
    _tenant_for(body["tenant"])
    index, rt = _index(body["tenant"]), runtime()
    if body["from_sources"]:
        rows = patrol_targets.targets_from_sources(rt, index, body["tenant"], body["target_class"])
    else:
        if not body.get("items"):
            raise ValidationError({"items": ["give the targets, or fromSources: true"]})
        rows = patrol_targets.import_targets(rt, index, [_new(body["tenant"], i) for i in body["items"]])
    return jsonify(PatrolTargetView(many=True).dump(rows)), 201


class PatrolTaskArgs(PatrolPeriodArgs):
    status = fields.String(validate=validate.OneOf(patrol_rounds.STATUSES))


def _period(args: dict):
    try:
        if "period" in args:
            return period_of(args["period"])
        if "from_" in args and "to" in args:
            return period_between(args["from_"], args["to"])
    except ValueError as exc:
        raise ValidationError({"period" if "period" in args else "to": [str(exc)]}) from None
    raise ValidationError({"period": ["give either period (2026-09, 2026-Q3, 2026), or from and to"]})


def _who_and_where(args: dict) -> tuple[str | None, str | None]:
    """(inspector, grid prefix) the caller may see: inspectors themselves, supervisors their subtree."""
    p = current()
    scope = _scope()
    grid = args.get("grid")
    if grid and scope and not grid.startswith(scope):
        raise NotFound(f"grid {grid} is not in your area", fields=["grid"])
    inspector = p.name if not (p.viewer.sees_all or p.viewer.oversees) else None
    return inspector, grid or scope


@bp.get("/tasks")
@roles(*STAFF)
@doc("Patrol visits due in a period (inspectors: their own; supervisors: their subtree)", query=PatrolTaskArgs,
     response=PatrolTaskView, many=True)
def list_tasks():
    args = query_args(PatrolTaskArgs())
    _tenant_for(args["tenant"])
    period = _period(args)
    inspector, prefix = _who_and_where(args)
    q = select(PatrolTask).where(PatrolTask.tenant == args["tenant"], PatrolTask.slot_end > period.start,
                                 PatrolTask.slot_end <= period.end)
    if prefix:
        q = q.where(PatrolTask.grid_code.startswith(prefix, autoescape=True))
    if inspector:
        q = q.where(PatrolTask.inspector == inspector)
    if "status" in args:
        q = q.where(PatrolTask.status == args["status"])
    with runtime().db.session() as s:
        rows = s.scalars(q.order_by(PatrolTask.slot_end, PatrolTask.id).limit(5000)).all()
    return jsonify(PatrolTaskView(many=True).dump(rows))


@bp.get("/coverage")
@roles(*STAFF)
@doc("Coverage of a period per inspector and grid: visits due, on time, late, missed, open (inspectors: their "
     "own rows; supervisors: their subtree; leaders and admins: the tenant)", query=PatrolPeriodArgs)
def get_coverage():
    args = query_args(PatrolPeriodArgs())
    _tenant_for(args["tenant"])
    period = _period(args)
    inspector, prefix = _who_and_where(args)
    rt = runtime()
    with rt.db.read() as conn:
        rows = patrol_coverage.coverage(conn, args["tenant"], period.start, period.end, rt.clock.now(),
                                        scope=prefix, inspector=inspector)
    return jsonify({"tenant": args["tenant"], "period": period.label, "rows": [r.as_json() for r in rows]})


@bp.get("/misses")
@roles("admin", "leader", "supervisor", "inspector")
@doc("漏报 of a period: each case from another channel at a target on somebody's patrol that they had not "
     "reported, with the inspectors it counts against (inspectors: their own)", query=PatrolPeriodArgs)
def get_misses():
    args = query_args(PatrolPeriodArgs())
    _tenant_for(args["tenant"])
    period = _period(args)
    inspector, _prefix = _who_and_where(args)
    rt = runtime()
    with rt.db.read() as conn:
        found = patrol_coverage.misses(conn, args["tenant"], period.start, min(period.end, rt.clock.now()))
    items = [{"caseId": case_id, "inspectors": who} for case_id, who in sorted(found.items())
             if inspector is None or inspector in who]
    return jsonify({"tenant": args["tenant"], "period": period.label, "radiusM": patrol_coverage.MISS_RADIUS_M,
                    "items": items})


@bp.post("/tasks/<task_id>/findings")
@_report_upload
@roles("inspector")
@idempotent
@doc("File a problem found on a visit (multipart like POST /reports: tenant, category, lon, lat, description, "
     "1-4 'photos'): through the patrol intake, linked to the visit", response=CaseView, status=201)
def post_finding(task_id: str):
    if request.mimetype != "multipart/form-data":
        raise BadRequest("send the finding as multipart/form-data with its photos in 'photos' fields")
    p = current()
    rt = runtime()
    task, _target = patrol_rounds.open_visit_for(rt, task_id)
    if task.inspector != p.name and not (p.scope and task.grid_code.startswith(p.scope)):
        raise NotFound(f"no patrol task {task_id}")
    form = PatrolReportForm().load(request.form.to_dict())
    if form["tenant"] != task.tenant:
        raise NotAllowed(f"the visit is in {task.tenant}", fields=["tenant"])
    settings = current_app.config["GRIDLOOP_SETTINGS"]
    uploads = request.files.getlist("photos")
    if len(uploads) > patrol.MAX_PHOTOS:
        return error_body(422, "validation_failed", f"at most {patrol.MAX_PHOTOS} photos",
                          fields={"photos": [f"at most {patrol.MAX_PHOTOS} photos"]})
    photos = tuple(patrol.Photo(u.read(settings.max_photo_bytes + 1), u.mimetype) for u in uploads)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    report = patrol.PatrolReport(
        tenant=task.tenant, report_id=patrol.report_id(rt.clock.now(), p.name, f"{task_id}:{key}" if key else None,
                                                       secrets.token_hex(5)),
        reporter=p.name, scope=p.scope or task.grid_code, category=form["category"], lon=form["lon"],
        lat=form["lat"], description=form["description"], photos=photos)
    limits = patrol.Limits(storage=Path(settings.storage_dir), max_photo_bytes=settings.max_photo_bytes,
                           tolerance_m=settings.checkin_tolerance_m, duplicates=_duplicate_policy())
    try:
        intake = patrol.file_patrol_report(rt, _index(task.tenant), report, limits)
    except EvidenceError as exc:
        return error_body(exc.status, "evidence_refused", exc.message, fields={exc.field: [exc.message]})
    patrol_rounds.record_finding(rt, task_id, intake.case.id, intake.outcome, p.name, form["lon"], form["lat"])
    body = {**CaseView().dump(intake.case), "outcome": intake.outcome, "patrolTaskId": task_id}
    return jsonify(body), 201 if intake.outcome == "filed" else 200
