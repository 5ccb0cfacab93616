"""incident (list, retry) and audit (verify the trail, sign a checkpoint): operators' endpoints."""

from flask import Blueprint
from marshmallow import Schema, fields

from engine import audit, incidents

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, page, query_args, runtime

bp = Blueprint("operations", __name__, url_prefix="/api/v1")


class AuditFindingSchema(Schema):
    kind = fields.String(metadata={"description": "edited, link_broken, tail_cut, truncated_after_checkpoint, "
                                                  "instance_deleted, not_anchored, unknown_key, unkeyed_after_seal, "
                                                  "legacy_unsealed, checkpoint_forged or checkpoint_removed"})
    detail = fields.String()
    chain = fields.String(allow_none=True)
    event_id = fields.Integer(data_key="eventId", allow_none=True)


class CheckpointRefSchema(Schema):
    seq = fields.Integer()
    at = fields.AwareDateTime()
    max_event_id = fields.Integer(data_key="maxEventId")


class ChainReportSchema(Schema):
    ok = fields.Boolean()
    checked = fields.Integer()
    first_broken_id = fields.Integer(data_key="firstBrokenId", allow_none=True)
    reason = fields.String(allow_none=True)
    findings = fields.List(fields.Nested(AuditFindingSchema))
    events = fields.Integer()
    legacy_events = fields.Integer(data_key="legacyEvents")
    checkpoints = fields.Integer()
    last_checkpoint = fields.Nested(CheckpointRefSchema, data_key="lastCheckpoint", allow_none=True)
    key_ids = fields.List(fields.String(), data_key="keyIds")


class AuditCheckpointSchema(Schema):
    seq = fields.Integer()
    at = fields.AwareDateTime()
    taken_by = fields.String(data_key="takenBy")
    max_event_id = fields.Integer(data_key="maxEventId")
    chains = fields.Integer(metadata={"description": "how many chain heads it signed"})
    key_id = fields.String(data_key="keyId")
    signature = fields.String()
    created = fields.Boolean()


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
@doc("Verify the audit trail: every chain's links and keyed hashes, the recorded heads, the anchor of the "
     "instances and the signed checkpoints; `reason` names the first problem, `findings` every one by kind",
     response=ChainReportSchema)
def verify_audit():
    rt = runtime()
    return answer(ChainReportSchema(), audit.verify_snapshot(rt.db, rt.audit_keys))


@bp.post("/audit/checkpoint")
@roles("admin")
@doc("Sign a checkpoint of the chain heads now (201; the scheduler takes one periodically); `created` is false "
     "(200) when no event was appended since the last one, which is answered",
     response=AuditCheckpointSchema, status=201, also={200: "nothing was appended since the last one"})
def audit_checkpoint():
    rt = runtime()
    taken = audit.take_checkpoint(rt.db, rt.audit_keys, current().name, rt.clock.now())
    c = taken or audit.last_checkpoint(rt.db)
    assert c is not None  # nothing was taken only because the last checkpoint covers every event
    view = {"seq": c.seq, "at": c.at, "taken_by": c.taken_by, "max_event_id": c.max_event_id, "chains": len(c.heads),
            "key_id": c.key_id, "signature": c.signature, "created": taken is not None}
    return answer(AuditCheckpointSchema(), view, 201 if taken is not None else 200)
