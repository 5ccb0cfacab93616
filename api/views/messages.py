"""message: correlate a message to the instance waiting for it (or buffer it until one does)."""

from datetime import timedelta

from flask import Blueprint

from engine import messages

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, json_body, runtime

bp = Blueprint("message", __name__, url_prefix="/api/v1/message")


@bp.post("")
@roles("system", "admin")
@doc("Correlate a message by name and correlation value (or instance id); a repeated messageId is a no-op",
     body=schemas.CorrelateSchema, response=schemas.CorrelatedSchema)
def correlate():
    args = json_body(schemas.CorrelateSchema())
    ttl = timedelta(seconds=args["ttl_seconds"]) if "ttl_seconds" in args else None
    result = messages.correlate(runtime(), name=args["message_name"], message_id=args["message_id"],
                                actor=current().name, correlation_value=args.get("correlation_value"),
                                instance_id=args.get("instance_id"), payload=args["payload"], ttl=ttl)
    status = 200 if result.status == "delivered" else 202
    return answer(schemas.CorrelatedSchema(), result, status)
