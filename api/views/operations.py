"""incident (list, retry) and audit (verify the chain): operators' endpoints."""

from flask import Blueprint

from engine import audit, incidents

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, page, query_args, runtime

bp = Blueprint("operations", __name__, url_prefix="/api/v1")


@bp.get("/incident")
@roles("admin")
@doc("List incidents", query=schemas.IncidentListArgs,
     response=schemas.page_of(schemas.IncidentSchema, "IncidentPage"))
def list_incidents():
    args = query_args(schemas.IncidentListArgs())
    rows, total = incidents.query(runtime(), status=args["status"], instance_id=args.get("instance_id"),
                                  offset=args["offset"], limit=args["limit"])
    return page(schemas.IncidentSchema(), rows, total, args["offset"], args["limit"])


@bp.post("/incident/<int:incident_id>/retry")
@roles("admin")
@doc("Resolve the incident and run the failed operation again", response=schemas.IncidentSchema)
def retry_incident(incident_id: int):
    return answer(schemas.IncidentSchema(), incidents.retry(runtime(), incident_id, current().name))


@bp.get("/audit/verify")
@roles("admin", "leader")
@doc("Verify the audit hash chain; reports the first broken link", response=schemas.ChainReportSchema)
def verify_audit():
    return answer(schemas.ChainReportSchema(), audit.verify_snapshot(runtime().db))
