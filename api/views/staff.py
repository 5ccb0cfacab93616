"""staff: the staff register (人员名册) — who works where, on which post, reached on which channels
(workflows/staff.py has the rules). Admins keep it everywhere, supervisors for the inspectors and
supervisors of their area; leaders read theirs. Contact details are shown to those who keep or read
the register, never to inspectors. This module parses, calls one use case and serializes."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from workflows import staff
from workflows.people import POSTS
from workflows.staff import NewPerson, StaffQuery

from .. import schemas
from ..auth import current, roles
from ..http import doc, json_body, json_items, query_args, runtime
from ..idempotency import idempotent
from ..schemas import Strict
from .grids import GRID

bp = Blueprint("staff", __name__, url_prefix="/api/v1/staff")
READERS = ("admin", "supervisor", "leader")
WRITERS = ("admin", "supervisor")
PERSON_ID = "<int(max=2147483647):person_id>"  # an INTEGER column: 2^31-1
TENANT = validate.Regexp(r"^[0-9]{6}\Z", error="a city's 6-digit code")
NAME = validate.And(validate.Length(min=1, max=100), validate.Regexp(r"\s*\S", error="must not be blank"))
USERNAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,99}\Z",
                           error="2 to 100 letters, digits, _ . @ -, beginning with a letter or digit")
DEPARTMENT = validate.Length(min=1, max=50)
PHONE = validate.Length(min=5, max=30)  # the number itself is checked by workflows.staff.normal_phone
WECOM_ID = validate.Regexp(r"^[A-Za-z0-9_@.-]{1,64}\Z", error="a WeChat Work userid: letters, digits, _ @ . -")
CHANNELS = validate.Length(max=len(staff.CHANNELS))
MAX_IMPORT = 2000  # a city's roster in one request (the demo city has 431 people)


def _channel_list(**kw) -> fields.List:
    return fields.List(fields.String(validate=validate.OneOf(staff.CHANNELS)), validate=CHANNELS,
                       metadata={"description": "notice channels by preference; empty: WeChat Work, then SMS"}, **kw)


class PersonIn(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    name = fields.String(required=True, validate=NAME)
    post = fields.String(required=True, validate=validate.OneOf(POSTS))
    grid = fields.String(required=True, validate=GRID)
    username = fields.String(load_default=None, allow_none=True, validate=USERNAME,
                             metadata={"description": "the name tasks, shifts and a login know them by"})
    department = fields.String(load_default=None, allow_none=True, validate=DEPARTMENT)
    phone = fields.String(load_default=None, allow_none=True, validate=PHONE,
                          metadata={"description": "E.164 (+86…) or an 11-digit mainland mobile number"})
    wecom_id = fields.String(data_key="wecomId", load_default=None, allow_none=True, validate=WECOM_ID)
    channels = _channel_list(load_default=None, allow_none=True)
    active = fields.Boolean(load_default=True)

    @post_load
    def _new(self, data, **_kw) -> NewPerson:
        return NewPerson(**data)


class PersonPatch(Strict):
    name = fields.String(validate=NAME)
    post = fields.String(validate=validate.OneOf(POSTS))
    grid = fields.String(validate=GRID)
    username = fields.String(validate=USERNAME, metadata={"description": "given once, while they have none"})
    department = fields.String(allow_none=True, validate=DEPARTMENT)
    phone = fields.String(allow_none=True, validate=PHONE)
    wecom_id = fields.String(data_key="wecomId", allow_none=True, validate=WECOM_ID)
    channels = _channel_list(allow_none=True)
    active = fields.Boolean()

    @validates_schema
    def _something(self, data, **_kw) -> None:
        if not data:
            raise ValidationError("give at least one of name, post, grid, username, department, phone, wecomId, "
                                  "channels, active")


class StaffArgs(schemas.PageArgs):
    tenant = fields.String(required=True, validate=TENANT)
    grid = fields.String(validate=GRID, metadata={"description": "this grid and those under it"})
    post = fields.String(validate=validate.OneOf(POSTS))
    active = fields.Boolean()
    q = fields.String(validate=validate.Length(min=1, max=100), metadata={"description": "part of name or username"})
    unreachable = fields.Boolean(load_default=False,
                                 metadata={"description": "only those with no phone and no WeChat Work id"})


class PersonView(Schema):
    id = fields.Integer()
    tenant = fields.String()
    name = fields.String()
    post = fields.String()
    grid = fields.String(attribute="grid_code")
    username = fields.String(allow_none=True)
    department = fields.String(attribute="department_code", allow_none=True)
    phone = fields.String(allow_none=True)
    wecom_id = fields.String(data_key="wecomId", allow_none=True)
    channels = fields.Function(lambda p: p.channels.split(",") if p.channels else [])
    active = fields.Boolean()


@bp.get("")
@roles(*READERS)
@doc("The staff of a tenant in your area, by grid and name; filter by grid (and below), post, active, q, and "
     "`unreachable` (no phone and no WeChat Work id: no notice reaches them)",
     query=StaffArgs, response=schemas.page_of(PersonView, "StaffPage"))
def list_staff():
    args = query_args(StaffArgs())
    offset, limit = args.pop("offset"), args.pop("limit")
    people, total = staff.list_staff(runtime(), current().viewer, StaffQuery(**args), offset, limit)
    return jsonify({"items": PersonView(many=True).dump(people), "total": total, "offset": offset, "limit": limit})


@bp.get(f"/{PERSON_ID}")
@roles(*READERS)
@doc("One member of staff in your area", response=PersonView)
def get_person(person_id: int):
    return jsonify(PersonView().dump(staff.person_of(runtime(), current().viewer, person_id)))


@bp.post("")
@roles(*WRITERS)
@idempotent
@doc("Register a member of staff: a current grid of the tenant in your area, a department of the tenant, a "
     "username nobody has (409), each chosen channel with its address. Supervisors register inspectors and "
     "supervisors", body=PersonIn, response=PersonView, status=201)
def add_person():
    new = json_body(PersonIn())
    return jsonify(PersonView().dump(staff.add_person(runtime(), current().viewer, new))), 201


class StaffImportedView(Schema):
    imported = fields.Integer()
    ids = fields.List(fields.Integer())


@bp.post("/import")
@roles(*WRITERS)
@idempotent
@doc(f"Register up to {MAX_IMPORT} people at once (a JSON array of what POST /staff takes): all or nothing; a "
     "refusal names every item's problems by index — 403 when any is outside your area, 409 when each is a "
     "username taken or repeated", body={"type": "array", "items": PersonIn, "maxItems": MAX_IMPORT},
     response=StaffImportedView, status=201)
def import_staff():
    people = staff.import_staff(runtime(), current().viewer, json_items(MAX_IMPORT, PersonIn()))
    return jsonify(StaffImportedView().dump({"imported": len(people), "ids": [p.id for p in people]})), 201


@bp.patch(f"/{PERSON_ID}")
@roles(*WRITERS)
@doc("Change a member of staff (null clears department, phone, wecomId, channels); `active: false` when they "
     "leave — routing and notices pass them by. A username is given once and not changed (409)",
     body=PersonPatch, response=PersonView)
def patch_person(person_id: int):
    changes = json_body(PersonPatch())
    return jsonify(PersonView().dump(staff.change_person(runtime(), current().viewer, person_id, changes)))
