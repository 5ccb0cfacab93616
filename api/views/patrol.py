"""Problems inspectors find on patrol (网格巡查): POST /reports files one as a case, with its photos,
through the same intake as alarms and citizens' reports (workflows/patrol.py)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import wraps
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from marshmallow import fields, validate
from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from engine.errors import NotAllowed, NotFound
from workflows import patrol
from workflows.evidence import Evidence, EvidenceError
from workflows.reports import DuplicatePolicy
from workflows.tenants import works_in

from ..auth import current, roles
from ..errors import error_body
from ..http import FORM_OVERHEAD, doc, runtime
from ..idempotency import HEADER as IDEMPOTENCY_HEADER
from ..idempotency import idempotent
from ..schemas import Strict
from .cases import CaseView
from .evidence import EvidenceView
from .grids import TENANT

bp = Blueprint("patrol", __name__, url_prefix="/api/v1")
REPORTERS = ("inspector",)  # patrol is the inspector's post; supervisors review what they report


class PatrolReportForm(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    category = fields.String(required=True, validate=validate.Length(min=1, max=50))
    lon = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))


def _report_upload(view):
    """The body may hold MAX_PHOTOS photos, each up to GRIDLOOP_MAX_PHOTO_BYTES, and the form around them."""

    @wraps(view)
    def limited(*args: Any, **kwargs: Any) -> Any:
        settings = current_app.config["GRIDLOOP_SETTINGS"]
        request.max_content_length = max(current_app.config.get("MAX_CONTENT_LENGTH") or 0,
                                         patrol.MAX_PHOTOS * settings.max_photo_bytes + FORM_OVERHEAD)
        return view(*args, **kwargs)

    return limited


@bp.post("/reports")
@_report_upload
@roles(*REPORTERS)
@idempotent
@doc("Report a problem found on patrol (multipart/form-data: tenant, category, lon, lat, description and 1 to "
     f"{patrol.MAX_PHOTOS} 'photos' files, each a complete JPEG or PNG of at most GRIDLOOP_MAX_PHOTO_BYTES). "
     "The position must lie in the inspector's grid (within GRIDLOOP_CHECKIN_TOLERANCE_M). A new case of source "
     "'patrol' for review (201); an occurrence of the open case of its category nearby, or the same report again "
     "(200). Retry with the same Idempotency-Key: one case", response=CaseView, status=201,
     also={200: "joined the open case of its category nearby, or the same report again"})
def post_report():
    if request.mimetype != "multipart/form-data":
        raise BadRequest("send the report as multipart/form-data with its photos in 'photos' fields")
    p = current()
    if not p.scope:
        raise NotAllowed("an inspector without a grid cannot report from patrol")
    form = PatrolReportForm().load(request.form.to_dict())
    if not works_in(p.viewer, form["tenant"]):
        raise NotAllowed(f"you do not work in {form['tenant']}", fields=["tenant"])
    index = current_app.extensions["gridloop.grids"].get(form["tenant"])
    if index.city_code is None:
        raise NotFound(f"tenant {form['tenant']} has no grids", fields=["tenant"])
    settings, rt = current_app.config["GRIDLOOP_SETTINGS"], runtime()
    uploads = request.files.getlist("photos")
    if len(uploads) > patrol.MAX_PHOTOS:  # before reading them
        return error_body(422, "validation_failed", f"at most {patrol.MAX_PHOTOS} photos",
                          fields={"photos": [f"at most {patrol.MAX_PHOTOS} photos"]})
    photos = tuple(patrol.Photo(u.read(settings.max_photo_bytes + 1), u.mimetype) for u in uploads)
    now = rt.clock.now()
    report = patrol.PatrolReport(
        tenant=form["tenant"], report_id=patrol.report_id(now, p.name, request.headers.get(IDEMPOTENCY_HEADER),
                                                          secrets.token_hex(5)),
        reporter=p.name, scope=p.scope, category=form["category"], lon=form["lon"], lat=form["lat"],
        description=form["description"], photos=photos)
    limits = patrol.Limits(storage=Path(settings.storage_dir), max_photo_bytes=settings.max_photo_bytes,
                           tolerance_m=settings.checkin_tolerance_m,
                           duplicates=_duplicate_policy())
    try:
        intake = patrol.file_patrol_report(rt, index, report, limits)
    except EvidenceError as exc:
        return error_body(exc.status, "evidence_refused", exc.message, fields={exc.field: [exc.message]})
    with rt.db.session() as s:
        rows = s.scalars(select(Evidence).where(Evidence.task_id == report.report_id).order_by(Evidence.id)).all()
    body = {**CaseView().dump(intake.case), "outcome": intake.outcome, "reportId": report.report_id,
            "photos": EvidenceView(many=True).dump(rows)}
    return jsonify(body), 201 if intake.outcome == "filed" else 200



def _duplicate_policy() -> DuplicatePolicy:
    """The citizens' reports' radius and window (GRIDLOOP_REPORT_DUPLICATE_*): one rule for the same problem."""
    settings = current_app.config["GRIDLOOP_SETTINGS"]
    return DuplicatePolicy(radius_m=settings.report_duplicate_radius_m,
                           window=timedelta(hours=settings.report_duplicate_window_h))
