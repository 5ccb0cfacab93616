"""On-site evidence for a task: check-in (inside the grid's geofence) and photos."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select
from werkzeug.exceptions import BadRequest

from engine import instances
from engine.errors import NotAllowed
from workflows import patrol_rounds
from workflows.evidence import Evidence, EvidenceError, Place, check_in, store_photo

from ..auth import current, roles
from ..errors import error_body
from ..http import doc, json_body, photo_upload, runtime
from ..idempotency import idempotent
from ..schemas import Strict
from .tasks import WORKERS, _visible_task, can_work_on


class CheckinSchema(Strict):
    lon = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90))
    accuracy_m = fields.Float(data_key="accuracyM", validate=validate.Range(min=0, max=10_000))


class EvidenceView(Schema):
    id = fields.Integer()
    kind = fields.String()
    lon = fields.Float(allow_none=True)
    lat = fields.Float(allow_none=True)
    distance_m = fields.Float(data_key="outsideM", allow_none=True)
    sha256 = fields.String(allow_none=True)
    content_type = fields.String(data_key="contentType", allow_none=True)
    size = fields.Integer(allow_none=True)
    created_by = fields.String(data_key="createdBy")
    created_at = fields.AwareDateTime(data_key="created")


bp = Blueprint("evidence", __name__, url_prefix="/api/v1/task")


def _place(task_id: str) -> Place:
    ht = _visible_task(task_id)
    if not can_work_on(current(), ht):
        raise NotAllowed("only whoever works on the task may add evidence to it")
    scope = instances.get(runtime(), ht.instance_id).scope
    if ht.status != "open" or not scope:
        raise ValidationError({"task": ["evidence needs an open task of an instance with a grid"]})
    return Place(task_id=ht.id, instance_id=ht.instance_id, grid_code=scope)


def _refused(exc: EvidenceError):
    return error_body(exc.status, "evidence_refused", exc.message, fields={exc.field: [exc.message]})


@bp.post("/<task_id>/checkin")
@roles(*WORKERS)
@idempotent
@doc("Check in on site: the position must be inside the task's grid (within the tolerance); for a patrol visit, "
     "within the tolerance of the target's point (a night check between 18:00 and 06:00)",
     body=CheckinSchema, response=EvidenceView, status=201)
def checkin(task_id: str):
    args = json_body(CheckinSchema())
    settings, rt = current_app.config["GRIDLOOP_SETTINGS"], runtime()
    place = _place(task_id)
    try:
        if patrol_rounds.visit_of(rt, place.instance_id) is not None:  # a patrol visit: at the target's point
            row = patrol_rounds.check_in_at_target(rt, place.task_id, place.instance_id, current().name,
                                                   args["lon"], args["lat"], settings.checkin_tolerance_m)
        else:
            row = check_in(rt.db, rt.clock.now(), place, current().name, args["lon"], args["lat"],
                           settings.checkin_tolerance_m)
    except EvidenceError as exc:
        return _refused(exc)
    return jsonify(EvidenceView().dump(row)), 201


@bp.post("/<task_id>/photos")
@photo_upload
@roles(*WORKERS)
@idempotent
@doc("Upload a photo (multipart field 'file'; a complete JPEG or PNG, at most GRIDLOOP_MAX_PHOTO_BYTES)",
     response=EvidenceView, status=201)
def upload_photo(task_id: str):
    upload = request.files.get("file")
    if request.mimetype != "multipart/form-data" or upload is None:
        raise BadRequest("send the photo as multipart/form-data with a 'file' field")
    settings, rt = current_app.config["GRIDLOOP_SETTINGS"], runtime()
    data = upload.read(settings.max_photo_bytes + 1)
    try:
        row = store_photo(rt.db, rt.clock.now(), _place(task_id), current().name, data, upload.mimetype,
                          Path(settings.storage_dir), settings.max_photo_bytes)
    except EvidenceError as exc:
        return _refused(exc)
    return jsonify(EvidenceView().dump(row)), 201


@bp.get("/<task_id>/evidence")
@roles(*WORKERS, "leader")
@doc("Check-ins and photos of a task", response=EvidenceView, many=True)
def list_evidence(task_id: str):
    _visible_task(task_id)
    with runtime().db.session() as s:
        rows = s.scalars(select(Evidence).where(Evidence.task_id == task_id).order_by(Evidence.id)).all()
    return jsonify(EvidenceView(many=True).dump(rows))
