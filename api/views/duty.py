"""duty-shifts: the duty roster (值班) of each grid — day shifts, night duty and holiday duty — which
routing and notices read at the moment they act (workflows/duty.py has the rules).

Admins roster anywhere, supervisors within their scope; inspectors and leaders read (an inspector the
shifts in their grid and their own). This module parses, calls one use case and serializes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from workflows import duty
from workflows.duty import MAX_REPEAT, NewShift, RosterQuery, ShiftRow
from workflows.people import SHIFT_KINDS

from .. import schemas
from ..auth import current, roles
from ..fields import UtcTime
from ..http import doc, json_body, json_list, optional_json_body, query_args, runtime
from ..schemas import Strict
from .grids import GRID

bp = Blueprint("duty", __name__, url_prefix="/api/v1/duty-shifts")
READERS = ("admin", "supervisor", "leader", "inspector")
WRITERS = ("admin", "supervisor")
MAX_BATCH = 500
SHIFT_ID = "<int(max=2147483647):shift_id>"  # an INTEGER column: 2^31-1
CATEGORY = validate.Length(min=1, max=50)


class ShiftIn(Strict):
    person_id = fields.Integer(data_key="personId", required=True, strict=True,
                               validate=validate.Range(min=1, max=2**31 - 1))
    grid = fields.String(required=True, validate=GRID)
    starts_at = UtcTime(data_key="startsAt", required=True)
    ends_at = UtcTime(data_key="endsAt", required=True)
    kind = fields.String(load_default="day", validate=validate.OneOf(SHIFT_KINDS))
    category = fields.String(load_default=None, allow_none=True, validate=CATEGORY)

    @validates_schema
    def _order(self, data, **_kw) -> None:
        if "starts_at" in data and "ends_at" in data and data["ends_at"] <= data["starts_at"]:
            raise ValidationError("must be after startsAt", "endsAt")

    @post_load
    def _new(self, data, **_kw) -> NewShift:
        return NewShift(**data)


class RepeatedShiftIn(ShiftIn):
    repeat_days = fields.Integer(data_key="repeatDays", load_default=1, strict=True,
                                 validate=validate.Range(min=1, max=MAX_REPEAT))

    @post_load
    def _new(self, data, **_kw):
        days = data.pop("repeat_days")
        return duty.repeated(NewShift(**data), days)


class RosterArgs(schemas.PageArgs):
    grid = fields.String(required=True, validate=GRID)
    starts = UtcTime(data_key="from")
    ends = UtcTime(data_key="to")
    kind = fields.String(validate=validate.OneOf(SHIFT_KINDS))
    person_id = fields.Integer(data_key="personId", validate=validate.Range(min=1, max=2**31 - 1))
    subgrids = fields.Boolean(load_default=False)

    @validates_schema
    def _period(self, data, **_kw) -> None:
        if data.get("starts") and data.get("ends") and data["ends"] < data["starts"]:
            raise ValidationError("must not be before `from`", "to")


class EndIn(Strict):
    at = UtcTime(load_default=None, allow_none=True)


class ShiftView(Schema):
    id = fields.Integer(attribute="shift.id")
    person_id = fields.Integer(attribute="shift.person_id", data_key="personId")
    username = fields.String(attribute="person.username", allow_none=True)
    name = fields.String(attribute="person.name")
    post = fields.String(attribute="person.post")
    grid = fields.String(attribute="shift.grid_code")
    kind = fields.String(attribute="shift.kind")
    category = fields.String(attribute="shift.category", allow_none=True)
    starts_at = fields.AwareDateTime(attribute="shift.starts_at", data_key="startsAt")
    ends_at = fields.AwareDateTime(attribute="shift.ends_at", data_key="endsAt")


BATCH_BODY = {"type": "array", "items": ShiftIn, "maxItems": MAX_BATCH}


def _loaded(data: list) -> list[NewShift]:
    """Each item through ShiftIn; every bad item's fields by index, in one 422."""
    refused, loaded = {}, []
    for i, item in enumerate(data):
        try:
            loaded.append(ShiftIn().load(item))
        except ValidationError as exc:
            refused[str(i)] = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    if refused:
        raise ValidationError(refused)
    if not loaded:
        raise ValidationError({"_schema": ["give at least one shift"]})
    return loaded


def _answer(rows: list[ShiftRow]):
    return jsonify(ShiftView(many=True).dump(rows)), 201


@bp.get("")
@roles(*READERS)
@doc("A grid's duty shifts over a period (`from`/`to`: those that overlap it; the same time: on duty then), by "
     "start; `subgrids`: the "
     "grids under it too. You see the shifts in your scope and your own",
     query=RosterArgs, response=schemas.page_of(ShiftView, "ShiftPage"))
def list_shifts():
    args = query_args(RosterArgs())
    offset, limit = args.pop("offset"), args.pop("limit")
    rows, total = duty.roster(runtime(), current().viewer, RosterQuery(**args), offset, limit)
    return jsonify({"items": ShiftView(many=True).dump(rows), "total": total, "offset": offset, "limit": limit})


@bp.get(f"/{SHIFT_ID}")
@roles(*READERS)
@doc("One duty shift", response=ShiftView)
def get_shift(shift_id: int):
    return jsonify(ShiftView().dump(duty.shift_of(runtime(), current().viewer, shift_id)))


@bp.post("")
@roles(*WRITERS)
@doc(f"Add a duty shift (`repeatDays` ≤ {MAX_REPEAT}: the same shift on that many consecutive days, e.g. a "
     "week of night duty); at most 72 hours each; the person active, of the grid's tenant, belonging to the "
     "grid or a grid under it; an overlap with their shifts in that grid is 409. All or nothing",
     body=RepeatedShiftIn, response=ShiftView, many=True, status=201)
def add_shift():
    shifts = json_body(RepeatedShiftIn())
    return _answer(duty.add_shifts(runtime(), current().viewer, shifts))


@bp.post("/batch")
@roles(*WRITERS)
@doc(f"Add up to {MAX_BATCH} duty shifts at once (a JSON array), all or nothing; problems by item index",
     body=BATCH_BODY, response=ShiftView, many=True, status=201)
def add_batch():
    shifts = _loaded(json_list(MAX_BATCH))
    return _answer(duty.add_shifts(runtime(), current().viewer, shifts, batch=True))


@bp.post(f"/{SHIFT_ID}/end")
@roles(*WRITERS)
@doc("End a shift early: at `at` (default now), not in the past", body=EndIn, response=ShiftView)
def end_shift(shift_id: int):
    args = optional_json_body(EndIn())
    return jsonify(ShiftView().dump(duty.end_shift(runtime(), current().viewer, shift_id, args["at"])))


@bp.delete(f"/{SHIFT_ID}")
@roles(*WRITERS)
@doc("Delete a shift that has not begun (one that has is ended instead: it is on the record)", status=204)
def delete_shift(shift_id: int):
    duty.delete_shift(runtime(), current().viewer, shift_id)
    return "", 204
