"""Petitions (信访) from the petition system: each a case with its 15/60(+30)-day limits
(workflows/reports.py), its state against them, and the one extension a supervisor may approve."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate, validates_schema
from marshmallow.exceptions import ValidationError

from engine.errors import Conflict, InvalidInput, NotFound
from engine.visibility import grid_visible
from workflows import reports
from workflows.cases import Case, UnknownCategory

from ..auth import Principal, current, roles
from ..fields import EventTime
from ..http import doc, json_body, runtime
from ..idempotency import idempotent
from ..schemas import Strict
from .grids import TENANT

bp = Blueprint("petitions", __name__, url_prefix="/api/v1/petitions")
READERS = ("system", "admin", "supervisor", "leader")


class PetitionerSchema(Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    phone = fields.String(validate=validate.Regexp(r"^\+?[0-9][0-9 ()-]{4,28}\Z", error="a telephone number"))
    openid = fields.String(validate=validate.Length(min=1, max=64))  # WeChat Official Account, if they came by it


class PetitionSchema(Strict):
    petition_id = fields.String(data_key="petitionId", required=True,
                                validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}\Z",
                                                         error="letters, digits, _ . : - (max 100)"))
    tenant = fields.String(required=True, validate=TENANT)
    category = fields.String(load_default="petition", validate=validate.Length(min=1, max=50))
    petitioner = fields.Nested(PetitionerSchema, required=True)
    lon = fields.Float(validate=validate.Range(min=-180, max=180))
    lat = fields.Float(validate=validate.Range(min=-90, max=90))
    address = fields.String(validate=validate.Length(min=1, max=300))
    content = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    received_at = EventTime(data_key="receivedAt", required=True)

    @validates_schema
    def _location(self, data, **_):
        if ("lon" in data) != ("lat" in data):
            raise ValidationError("give both lon and lat, or neither", "lon")


class ExtensionSchema(Strict):
    days = fields.Integer(required=True, validate=validate.Range(min=1, max=reports.MAX_EXTENSION_DAYS))
    reason = fields.String(required=True, validate=validate.Length(min=1, max=500))


class LimitView(Schema):
    due = fields.Date()
    done_at = fields.AwareDateTime(data_key="doneAt", allow_none=True)
    state = fields.String()
    days_left = fields.Integer(data_key="daysLeft", allow_none=True)


class PetitionView(Schema):
    external_id = fields.String(data_key="petitionId")
    id = fields.String(data_key="caseId")
    tenant = fields.String()
    category = fields.String()
    grid_code = fields.String(data_key="grid")
    status = fields.String()
    outcome = fields.String(allow_none=True)
    first_seen = fields.AwareDateTime(data_key="receivedAt")
    instance_id = fields.String(data_key="processInstanceId", allow_none=True)


def _body(case: Case) -> dict:
    petition = case.details["petition"]
    status = reports.petition_status(runtime().db, case, runtime().clock.now())
    extension = petition.get("extension")
    return {**PetitionView().dump(case), "countedIn": petition["counted_in"],
            "limits": {name: LimitView().dump(limit) for name, limit in status.items()},
            "extension": {"days": extension["days"], "reason": extension["reason"], "by": extension["by"],
                          "at": extension["at"], "previousDue": extension["previous_due"]} if extension else None}


def _visible(p: Principal, petition_id: str) -> Case:
    """The petition's case, if the caller may see it (supervisors: inside their grid)."""
    case = reports.find_petition(runtime().db, petition_id)
    if case is None or "petition" not in case.details or not grid_visible(p.viewer, case.grid_code):
        raise NotFound(f"petition {petition_id} does not exist")
    return case


@bp.post("")
@roles("system", "admin")
@idempotent
@doc("Register a petition: a case with acceptance due 15 days and completion due 60 days after receipt "
     "(natural days); 201 new, 200 the same petitionId again", body=PetitionSchema, status=201,
     also={200: "the same petitionId again: its case"})
def post_petition():
    a = json_body(PetitionSchema())
    index = current_app.extensions["gridloop.grids"].get(a["tenant"])
    if index.city_code is None:
        raise NotFound(f"tenant {a['tenant']} has no grids")
    petition = reports.Petition(tenant=a["tenant"], petition_id=a["petition_id"], category=a["category"],
                                received_at=a["received_at"], content=a["content"], petitioner=a["petitioner"],
                                lon=a.get("lon"), lat=a.get("lat"), address=a.get("address"))
    try:
        intake = reports.file_petition(runtime(), index, petition, current().name)
    except UnknownCategory:
        raise InvalidInput(f"unknown category {a['category']!r}", fields=["category"]) from None
    if "petition" not in intake.case.details:  # filed before as a plain alarm (POST /alarms), without limits
        raise Conflict(f"{a['petition_id']} was filed as an alarm, not registered as a petition")
    return jsonify({**_body(intake.case), "intake": intake.outcome}), 201 if intake.outcome == "filed" else 200


@bp.get("/<petition_id>")
@roles(*READERS)
@doc("A petition's case and its limits: each due (last day, China time), doneAt, and state pending | met | "
     "late | overdue")
def get_petition(petition_id: str):
    return jsonify(_body(_visible(current(), petition_id)))


@bp.post("/<petition_id>/extend")
@roles("supervisor", "admin")
@idempotent
@doc("延期: extend the completion limit once, by 1 to 30 days, before it has passed", body=ExtensionSchema)
def extend(petition_id: str):
    a = json_body(ExtensionSchema())
    _visible(current(), petition_id)
    case = reports.extend_petition(runtime(), petition_id, a["days"], a["reason"], current().name)
    return jsonify(_body(case))
