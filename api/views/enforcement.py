"""The enforcement system's callback: its handling result becomes the `enforcement_feedback`
message of the case. Authenticated by signature, not by key: HMAC-SHA256 over
"<callback id>.<timestamp>.<body>" with the shared secret, within five minutes; a replayed
callback id is answered as before and changes nothing."""

from __future__ import annotations

import hmac
import json
import time

from flask import Blueprint, current_app, jsonify, request
from marshmallow import fields, validate
from werkzeug.exceptions import BadRequest

from engine import messages

from ..auth import AuthError, public
from ..fields import UtcTime
from ..http import check_json, doc, runtime
from ..schemas import Strict

WINDOW_S = 300
MAX_BODY = 256 * 1024


class CallbackSchema(Strict):
    case_id = fields.String(data_key="caseId", required=True, validate=validate.Length(min=1, max=40))
    result = fields.String(required=True, validate=validate.OneOf(["penalized", "rectified", "no_violation",
                                                                  "transferred"]))
    ticket = fields.String(validate=validate.Length(max=100))
    decision = fields.String(validate=validate.Length(max=2000))
    amount = fields.Float(validate=validate.Range(min=0))
    decided_at = UtcTime(data_key="decidedAt")  # storable; not bounded by our clock: their feedback must not be lost


def callback_signature(secret: str, callback_id: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{callback_id}.{timestamp}.".encode() + body, "sha256").hexdigest()


bp = Blueprint("enforcement", __name__, url_prefix="/api/v1/enforcement")


@bp.post("/callback")
@public  # the signature is the credential
@doc("Signed callback of the enforcement system (X-Callback-Id, X-Timestamp, X-Signature)",
     body=CallbackSchema, also={202: "taken, and buffered until the case waits for its feedback"})
def callback():
    secret = current_app.config["GRIDLOOP_SETTINGS"].enforcement_secret
    if not secret:
        raise AuthError(401, "not_configured", "no enforcement secret is configured")
    request.max_content_length = MAX_BODY  # a larger body is a 413 that says the limit
    body = request.get_data(cache=True)
    callback_id, ts = request.headers.get("X-Callback-Id", ""), request.headers.get("X-Timestamp", "")
    expected = callback_signature(secret, callback_id, ts, body)
    if not callback_id or not hmac.compare_digest(expected, request.headers.get("X-Signature", "")):
        raise AuthError(401, "bad_signature", "the callback signature does not verify")
    if not ts.isdigit() or abs(time.time() - int(ts)) > WINDOW_S:
        raise AuthError(401, "stale", f"the callback timestamp is not within {WINDOW_S} seconds")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    check_json(data)
    args = CallbackSchema().load(data)
    result = messages.correlate(runtime(), name="enforcement_feedback", message_id=f"enforcement:{callback_id}",
                                actor="system:enforcement", correlation_value=args["case_id"], payload=data)
    return jsonify({"callbackId": callback_id, "status": result.status, "duplicate": result.duplicate}), (
        200 if result.status == "delivered" else 202)
