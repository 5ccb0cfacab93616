"""A case's photos in one place: those it was reported with (a patrol or citizen report) and those
taken on site for its tasks — what the reviewing and verifying supervisor looks at."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import fields
from sqlalchemy import select

from engine.errors import NotFound
from engine.models import HumanTask
from workflows.cases import Case
from workflows.evidence import Evidence, case_photos

from ..auth import current, roles
from ..http import doc, runtime
from .cases import READERS, _scope_filter
from .evidence import EvidenceView
from .photo_files import send_photo

bp = Blueprint("case_photos", __name__, url_prefix="/api/v1/cases")


class CasePhotoView(EvidenceView):
    task_id = fields.String(data_key="taskId", metadata={"description": "the task it was taken for, or the "
                                                                        "report's id"})
    task = fields.String(allow_none=True, metadata={"description": "that task's element (handle...); null: "
                                                                   "sent with the report that filed the case"})
    task_name = fields.String(data_key="taskName", allow_none=True)


def _visible_case(case_id: str) -> Case:
    with runtime().db.session() as s:
        case = s.scalar(_scope_filter(current(), select(Case).where(Case.id == case_id)))
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    return case


@bp.get("/<case_id>/photos")
@roles(*READERS)
@doc("Every photo of a case, oldest first: those it was reported with (task null) and its tasks' on-site photos",
     response=CasePhotoView, many=True)
def list_case_photos(case_id: str):
    case = _visible_case(case_id)
    rows = case_photos(runtime().db, case.instance_id) if case.instance_id else []
    with runtime().db.session() as s:
        tasks = {t.id: t for t in s.scalars(select(HumanTask).where(
            HumanTask.id.in_({r.task_id for r in rows})))} if rows else {}
    out = []
    for r in rows:
        t = tasks.get(r.task_id)
        out.append({**CasePhotoView().dump(r), "taskId": r.task_id, "task": t.element_id if t else None,
                    "taskName": t.name if t else None})
    return jsonify(out)


@bp.get("/<case_id>/photos/<int:evidence_id>/file")
@roles(*READERS)
@doc("One photo of a case as it was uploaded (image/jpeg or image/png)", content_type="image/*")
def case_photo_file(case_id: str, evidence_id: int):
    case = _visible_case(case_id)
    with runtime().db.session() as s:
        row = s.scalar(select(Evidence).where(Evidence.id == evidence_id, Evidence.kind == "photo",
                                              Evidence.instance_id == case.instance_id)) if case.instance_id else None
    return send_photo(row, evidence_id, f"case {case_id} has no photo {evidence_id}")
