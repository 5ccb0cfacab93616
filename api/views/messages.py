"""message: correlate a message to the instance waiting for it (or buffer it until one does)."""

from dataclasses import replace
from datetime import timedelta

from flask import Blueprint

from engine import messages

from .. import schemas
from ..auth import current, roles
from ..http import answer, doc, json_body, runtime

bp = Blueprint("message", __name__, url_prefix="/api/v1/message")


@bp.post("")
@roles("system", "admin")
@doc("Correlate a message by name and correlation value (or instance id), or start the process whose message "
     "start event waits for it; a repeated messageId from the same sender is a no-op (ids are the sender's own: "
     "two systems may use the same id)",
     body=schemas.CorrelateSchema, response=schemas.CorrelatedSchema,
     also={202: "accepted and buffered: no instance waits for the message yet (status: buffered)"})
def correlate():
    args = json_body(schemas.CorrelateSchema())
    ttl = timedelta(seconds=args["ttl_seconds"]) if "ttl_seconds" in args else None
    sender = current().name
    result = messages.correlate(runtime(), name=args["message_name"], message_id=f"{sender}:{args['message_id']}",
                                actor=sender, correlation_value=args.get("correlation_value"),
                                instance_id=args.get("instance_id"), payload=args["payload"], ttl=ttl)
    status = 200 if result.status == "delivered" else 202
    return answer(schemas.CorrelatedSchema(), replace(result, message_id=args["message_id"]), status)
