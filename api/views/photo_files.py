"""The bytes of an on-site photo, for whoever may see its task (the console shows them full size).
Sent with the bearer token like every other call, so it is read with fetch(), not an <img src>."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, send_file
from sqlalchemy import select

from engine.errors import NotFound
from workflows.evidence import Evidence

from ..auth import roles
from ..http import doc, runtime
from .tasks import WORKERS, _visible_task

bp = Blueprint("photo_files", __name__, url_prefix="/api/v1/task")


@bp.get("/<task_id>/evidence/<int:evidence_id>/file")
@roles(*WORKERS, "leader")
@doc("One photo of a task as it was uploaded (image/jpeg or image/png)", content_type="image/*")
def photo_file(task_id: str, evidence_id: int):
    _visible_task(task_id)
    with runtime().db.session() as s:
        row = s.scalar(select(Evidence).where(Evidence.id == evidence_id, Evidence.task_id == task_id,
                                              Evidence.kind == "photo"))
    return send_photo(row, evidence_id, f"task {task_id} has no photo {evidence_id}")


def send_photo(row: Evidence | None, evidence_id: int, missing: str) -> Response:
    """The photo's stored bytes (404 `missing` without a row), cached by the browser for a day."""
    if row is None or not row.path:
        raise NotFound(missing)
    path = (Path(current_app.config["GRIDLOOP_SETTINGS"].storage_dir) / row.path).resolve()
    if not path.is_file():
        raise NotFound(f"photo {evidence_id} is no longer kept")
    response = send_file(path, mimetype=row.content_type, max_age=0, etag=row.sha256 or False, conditional=True)
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"  # content-addressed: never changes
    return response
