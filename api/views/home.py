"""The supervisor's home page (DOMAIN.md §1): what needs them now, as lists with counts — reported
problems and alarms waiting for review (甄别), awaiting dispatch (待派遣), dispatched but not signed for
(下派未签收), awaiting verification (待核查), overdue work (超期未处理, review and dispatch included: they
have deadlines too), and cases on hold (缓办) — all within the caller's grid. The console's live
stream (home_stream.py) sends the same lists."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from marshmallow import fields, validate
from sqlalchemy import func, select

from engine.models import HumanTask
from engine.runtime import Runtime
from engine.visibility import Viewer, task_filter
from workflows.cases import Case

from ..auth import current, roles
from ..http import doc, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

REPORTED = ("citizen", "petition", "patrol")
ALARMS = ("monitoring", "device")


class HomeArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


bp = Blueprint("home", __name__, url_prefix="/api/v1")


@bp.get("/home")
@roles("supervisor", "admin", "leader")
@doc("The lists a supervisor works from, with counts", query=HomeArgs)
def home():
    args = query_args(HomeArgs())
    return jsonify(home_lists(runtime(), current().viewer, args["tenant"], args["limit"]))


def home_lists(rt: Runtime, viewer: Viewer, tenant: str, limit: int) -> dict[str, Any]:
    """Each list of the home page: its count and its first `limit` items, soonest due first."""
    base = (select(HumanTask, Case).join(Case, Case.instance_id == HumanTask.instance_id)
            .where(HumanTask.status == "open", Case.tenant == tenant, task_filter(viewer)))
    lists = {
        "reported": base.where(HumanTask.element_id == "review", Case.source.in_(REPORTED)),
        "alarms": base.where(HumanTask.element_id == "review", Case.source.in_(ALARMS)),
        "awaitingDispatch": base.where(HumanTask.element_id == "dispatch"),
        "dispatchedNotSigned": base.where(HumanTask.element_id == "sign_for"),
        "awaitingVerification": base.where(HumanTask.element_id == "verify"),
        "overdue": base.where(HumanTask.due_at < rt.clock.now()),
        "deferred": base.where(HumanTask.element_id == "deferred"),  # the clock stands still until the date
    }
    out = {}
    with rt.db.session() as s:
        for name, stmt in lists.items():
            total = s.scalar(select(func.count()).select_from(stmt.subquery()))
            rows = s.execute(stmt.order_by(HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.created_at)
                             .limit(limit)).all()
            out[name] = {"count": total or 0, "items": [_item(ht, case) for ht, case in rows]}
    return out


def _item(ht: HumanTask, case: Case) -> dict:
    return {"taskId": ht.id, "task": ht.element_id, "assignee": ht.assignee,
            "due": ht.due_at.isoformat() if ht.due_at else None, "caseId": case.id, "category": case.category,
            "grid": case.grid_code, "source": case.source, "urgent": case.urgent, "occurrences": case.occurrences,
            "deferredUntil": case.deferred_until.isoformat() if case.deferred_until else None}
