"""users: the people who log in — list, create, change roles, scope and linked person, disable and
enable, reset a password. Admins only; every change is audited (api/user_admin.py holds the use
cases). A password is write-only: it is answered once, when GridLoop generated it."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .. import schemas
from ..accounts import PASSWORD_MAX, PERSON_ROLES
from ..auth import current, roles
from ..http import doc, json_body, optional_json_body, query_args, runtime
from ..schemas import Strict
from ..user_admin import (
    NewUser,
    UserQuery,
    UserRow,
    change_user,
    create_user,
    get_user,
    list_users,
    reset_password,
    set_active,
)

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")
USERNAME = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,99}\Z",
                           error="2 to 100 letters, digits, _ . @ -, beginning with a letter or digit")
SCOPE = validate.Length(min=1, max=40)
NAME = validate.Length(min=1, max=200)
PASSWORD = validate.Length(min=1, max=PASSWORD_MAX)  # the policy itself is api.accounts.password_problem


class UserIn(Strict):
    username = fields.String(required=True, validate=USERNAME)
    display_name = fields.String(data_key="displayName", load_default=None, allow_none=True, validate=NAME)
    roles = fields.List(fields.String(validate=validate.OneOf(PERSON_ROLES)), required=True,
                        validate=validate.Length(min=1, max=4))
    scope = fields.String(load_default=None, allow_none=True, validate=SCOPE,
                          metadata={"description": "the code of the grid the user works in; empty: everywhere"})
    person_id = fields.Integer(data_key="personId", load_default=None, allow_none=True, strict=True,
                               validate=validate.Range(min=1))
    password = fields.String(load_default=None, load_only=True, validate=PASSWORD,
                             metadata={"description": "empty: a one-time password is generated and answered once"})

    @post_load
    def _new(self, data, **_kw) -> NewUser:
        return NewUser(**data)


class UserPatch(Strict):
    display_name = fields.String(data_key="displayName", allow_none=True, validate=NAME)
    roles = fields.List(fields.String(validate=validate.OneOf(PERSON_ROLES)), validate=validate.Length(min=1, max=4))
    scope = fields.String(allow_none=True, validate=SCOPE)
    person_id = fields.Integer(data_key="personId", allow_none=True, strict=True, validate=validate.Range(min=1))

    @validates_schema
    def _something(self, data, **_kw) -> None:
        if not data:
            raise ValidationError("give at least one of displayName, roles, scope, personId")


class PasswordIn(Strict):
    password = fields.String(load_default=None, load_only=True, validate=PASSWORD,
                             metadata={"description": "empty: a one-time password is generated and answered once"})


class UserListArgs(schemas.PageArgs):
    role = fields.String(validate=validate.OneOf(PERSON_ROLES))
    active = fields.Boolean()
    q = fields.String(validate=validate.Length(min=1, max=100))


class PersonRef(Schema):
    id = fields.Integer()
    name = fields.String()
    post = fields.String()
    grid = fields.String(attribute="grid_code")
    tenant = fields.String()


class UserView(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String(data_key="displayName", allow_none=True)
    roles = fields.Function(lambda u: sorted(u["role_set"]))
    scope = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = fields.AwareDateTime(data_key="createdAt")
    person = fields.Nested(PersonRef, allow_none=True)


class UserWithPassword(UserView):
    password = fields.String(allow_none=True, metadata={
        "description": "the generated one-time password, shown this once (null when the caller gave one)"})


def _view(row: UserRow, schema: Schema | None = None, **extra: object) -> dict:
    u = row.user
    return (schema or UserView()).dump({"id": u.id, "username": u.username, "display_name": u.display_name,
                                        "role_set": u.role_set, "scope": u.scope, "active": u.active,
                                        "created_at": u.created_at, "person": row.person, **extra})


@bp.get("")
@roles("admin")
@doc("Users by username; filter by role, active, and q (part of the username or display name)",
     query=UserListArgs, response=schemas.page_of(UserView, "UserPage"))
def list_all():
    args = query_args(UserListArgs())
    rows, total = list_users(runtime(), UserQuery(args.get("role"), args.get("active"), args.get("q")),
                             args["offset"], args["limit"])
    return jsonify({"items": [_view(r) for r in rows], "total": total, "offset": args["offset"],
                    "limit": args["limit"]})


@bp.get("/<int:user_id>")
@roles("admin")
@doc("One user with their linked person", response=UserView)
def get_one(user_id: int):
    return jsonify(_view(get_user(runtime(), user_id)))


@bp.post("")
@roles("admin")
@doc("Create a user: roles, grid scope (a current grid), linked person (an existing one), and a password "
     "or none (one is generated and answered once); a username taken is 409", body=UserIn,
     response=UserWithPassword, status=201)
def create():
    new = json_body(UserIn())
    row, generated = create_user(runtime(), current().name, new)
    return jsonify(_view(row, UserWithPassword(), password=generated)), 201


@bp.patch("/<int:user_id>")
@roles("admin")
@doc("Change a user's roles, scope, display name or linked person (personId null unlinks); the last active "
     "admin keeps the role", body=UserPatch, response=UserView)
def patch(user_id: int):
    changes = json_body(UserPatch())
    return jsonify(_view(change_user(runtime(), current().name, user_id, changes)))


@bp.post("/<int:user_id>/disable")
@roles("admin")
@doc("Disable a user: they cannot log in, and their tokens stop working at once (not yourself, not the "
     "last active admin)", response=UserView)
def disable(user_id: int):
    return jsonify(_view(set_active(runtime(), current().name, user_id, False)))


@bp.post("/<int:user_id>/enable")
@roles("admin")
@doc("Enable a disabled user again", response=UserView)
def enable(user_id: int):
    return jsonify(_view(set_active(runtime(), current().name, user_id, True)))


@bp.post("/<int:user_id>/reset-password")
@roles("admin")
@doc("Set a user's password (given, or generated and answered once); their sessions end",
     body=PasswordIn, response=UserWithPassword)
def reset(user_id: int):
    args = optional_json_body(PasswordIn())
    row, generated = reset_password(runtime(), current().name, user_id, args["password"])
    return jsonify(_view(row, UserWithPassword(), password=generated))
