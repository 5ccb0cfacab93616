"""sources: the register of monitoring sources (an enterprise's outlet, a monitoring station; each a
data logger known by its MN) and their pollutant limits, which the threshold rules read.

Admins register, change and bulk-import sources and replace a source's limits; admins, leaders and
supervisors (within their grid) read them, with each source's current rule states (offline,
exceeding, device fault). The logger's password is write-only: no answer ever carries it.

The writes are use cases in workflows/source_register.py (one unit of work each, with its audit
event); this module parses, checks the role, calls one of them and serializes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import current_app, jsonify
from flask.blueprints import Blueprint
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import select

from engine.db import given, page
from engine.errors import NotFound
from engine.visibility import grid_filter
from workflows import source_register as register
from workflows.grids import GridIndexCache
from workflows.monitoring_rules import DEVICE, EXCEEDANCE, OFFLINE
from workflows.source_register import NewSource, SourceDetail, decimal_text
from workflows.sources import DATA_KINDS, KINDS, MonitoringSource

from .. import schemas
from ..auth import Principal, current, roles
from ..http import doc, json_body, json_items, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

bp = Blueprint("sources", __name__, url_prefix="/api/v1/sources")
READERS = ("admin", "supervisor", "leader")
MAX_IMPORT = 5_000
MAX_LIMITS = 200  # per source
MN = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}\Z", error="1 to 64 letters, digits, _ or -")
# HJ 212 carries the password as `PW=…;` in the header: no separators, no spaces, printable ASCII
PASSWORD = validate.Regexp(r"^(?:(?![;,=&])[!-~]){1,64}\Z",
                           error="1 to 64 printable ASCII characters, without spaces or ; , = &")
POLLUTANT = validate.Regexp(r"^[A-Za-z0-9_.]{1,20}\Z", error="an HJ 212 code such as a21026 or w01018 (max 20)")
GRID = validate.Length(min=1, max=40)
LIMIT_MAX = Decimal(10) ** 10  # the column is NUMERIC(14, 4)


def _limit_value(value: Decimal) -> None:
    if not value.is_finite() or value <= 0 or value >= LIMIT_MAX or value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValidationError("a number above 0 and below 10^10, with at most 4 decimals")


class LimitIn(Strict):
    pollutant = fields.String(required=True, validate=POLLUTANT)
    data_kind = fields.String(data_key="dataKind", required=True, validate=validate.OneOf(list(DATA_KINDS)))
    limit_value = fields.Decimal(data_key="limitValue", required=True, allow_nan=False, validate=_limit_value)
    unit = fields.String(required=True, validate=validate.Length(min=1, max=20))
    basis = fields.String(load_default="permit", validate=validate.OneOf(["permit", "standard"]))
    use_converted = fields.Boolean(data_key="useConverted", load_default=False)
    hysteresis = fields.Float(load_default=0.1, validate=validate.Range(min=0, max=1, max_inclusive=False))


def _both_or_neither(data: dict) -> None:
    if ("lon" in data) != ("lat" in data) or (data.get("lon") is None) != (data.get("lat") is None):
        raise ValidationError("give both lon and lat, or neither", "lon" if "lon" not in data or
                              data.get("lon") is None else "lat")


class SourceIn(Strict):
    mn = fields.String(required=True, validate=MN)
    tenant = fields.String(required=True, validate=TENANT)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    enterprise = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    lon = fields.Float(validate=validate.Range(min=-180, max=180))
    lat = fields.Float(validate=validate.Range(min=-90, max=90))
    grid = fields.String(validate=GRID)
    offline_after_s = fields.Integer(data_key="offlineAfterS", load_default=3600,
                                     validate=validate.Range(min=60, max=30 * 86400))
    active = fields.Boolean(load_default=True)

    @validates_schema
    def _location(self, data, **_kw) -> None:
        _both_or_neither(data)

    @post_load
    def _new(self, data, **_kw) -> NewSource:
        return NewSource(**data)


class SourcePatch(Strict):
    name = fields.String(validate=validate.Length(min=1, max=200))
    enterprise = fields.String(allow_none=True, validate=validate.Length(min=1, max=200))
    password = fields.String(load_only=True, validate=PASSWORD)
    active = fields.Boolean()
    offline_after_s = fields.Integer(data_key="offlineAfterS", validate=validate.Range(min=60, max=30 * 86400))
    lon = fields.Float(allow_none=True, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(allow_none=True, validate=validate.Range(min=-90, max=90))
    grid = fields.String(allow_none=True, validate=GRID)

    @validates_schema
    def _location(self, data, **_kw) -> None:
        if not data:
            raise ValidationError("give at least one field to change")
        if "lon" in data or "lat" in data:
            _both_or_neither(data)


class SourceListArgs(schemas.PageArgs):
    tenant = fields.String(required=True, validate=TENANT)
    grid = fields.String(validate=GRID)
    kind = fields.String(validate=validate.OneOf(KINDS))
    active = fields.Boolean()


class LimitView(Schema):
    pollutant = fields.String()
    data_kind = fields.String(data_key="dataKind")
    limit_value = fields.Function(lambda lim: decimal_text(lim.limit_value), data_key="limitValue")
    unit = fields.String()
    basis = fields.String()
    use_converted = fields.Boolean(data_key="useConverted")
    hysteresis = fields.Float()


class SourceView(Schema):  # no password: it is write-only
    mn = fields.String()
    tenant = fields.String()
    kind = fields.String()
    name = fields.String()
    enterprise = fields.String(allow_none=True)
    lon = fields.Float(allow_none=True)
    lat = fields.Float(allow_none=True)
    grid_code = fields.String(data_key="grid", allow_none=True)
    offline_after_s = fields.Integer(data_key="offlineAfterS")
    active = fields.Boolean()
    last_seen_at = fields.AwareDateTime(data_key="lastSeenAt", allow_none=True)
    created_at = fields.AwareDateTime(data_key="createdAt")


class RuleStateView(Schema):
    pollutant = fields.String()
    rule = fields.String()
    since = fields.AwareDateTime(allow_none=True)
    last_at = fields.AwareDateTime(data_key="lastAt", allow_none=True)
    peak = fields.Function(lambda st: None if st.peak is None else decimal_text(st.peak), allow_none=True)
    count = fields.Integer()


class SourceDetailView(SourceView):
    limits = fields.List(fields.Nested(LimitView))
    offline = fields.Boolean()
    exceeding = fields.Boolean()
    device_fault = fields.Boolean(data_key="deviceFault")
    active_rules = fields.List(fields.Nested(RuleStateView), data_key="activeRules")


class ImportedView(Schema):
    imported = fields.Integer()
    mns = fields.List(fields.String())


LIMITS_BODY = {"type": "array", "items": LimitIn, "maxItems": MAX_LIMITS}
IMPORT_BODY = {"type": "array", "items": SourceIn, "maxItems": MAX_IMPORT}


# -- helpers ---------------------------------------------------------------------------------------

def _scope_filter(p: Principal, stmt):
    return stmt.where(grid_filter(p.viewer, MonitoringSource.grid_code))


def _grids() -> GridIndexCache:
    return current_app.extensions["gridloop.grids"]


def _detail(d: SourceDetail) -> dict[str, Any]:
    rules = {st.rule for st in d.active_rules}
    return SourceDetailView().dump({**{c: getattr(d.source, c) for c in SourceView().fields}, "limits": d.limits,
                                    "offline": OFFLINE in rules, "exceeding": EXCEEDANCE in rules,
                                    "device_fault": DEVICE in rules, "active_rules": d.active_rules})


# -- routes ----------------------------------------------------------------------------------------

@bp.get("")
@roles(*READERS)
@doc("The tenant's monitoring sources (supervisors: those in their grid), by MN", query=SourceListArgs,
     response=schemas.page_of(SourceView, "SourcePage"))
def list_sources():
    args = query_args(SourceListArgs())
    stmt = _scope_filter(current(), select(MonitoringSource).where(MonitoringSource.tenant == args["tenant"], *given(
        MonitoringSource.grid_code.startswith(args["grid"], autoescape=True) if "grid" in args else None,
        MonitoringSource.kind == args["kind"] if "kind" in args else None,
        MonitoringSource.active.is_(args["active"]) if "active" in args else None)))
    rows, total = page(runtime().db, stmt, [MonitoringSource.mn], args["offset"], args["limit"])
    return jsonify({"items": SourceView(many=True).dump(rows), "total": total, "offset": args["offset"],
                    "limit": args["limit"]})


@bp.get("/<mn>")
@roles(*READERS)
@doc("One source with its limits, when it was last heard from, and its active rules (offline, exceeding, "
     "device fault)", response=SourceDetailView)
def get_source(mn: str):
    with runtime().db.session() as s:
        source = s.scalar(_scope_filter(current(), select(MonitoringSource).where(MonitoringSource.mn == mn)))
        if source is None:
            raise NotFound(f"source {mn} does not exist")
        return jsonify(_detail(register.detail(s, source)))


@bp.post("")
@roles("admin")
@doc("Register a source; its grid is given or located from lon/lat; a registered MN is 409",
     body=SourceIn, response=SourceDetailView, status=201)
def create_source():
    new = json_body(SourceIn())
    return jsonify(_detail(register.register(runtime(), current().name, new, _grids()))), 201


@bp.patch("/<mn>")
@roles("admin")
@doc("Change a source: name, enterprise, password, active, offlineAfterS, lon/lat (null both to clear) "
     "and grid (a new location without `grid` is located again; `grid: null` locates from the location)",
     body=SourcePatch, response=SourceDetailView)
def patch_source(mn: str):
    changes = json_body(SourcePatch())
    return jsonify(_detail(register.change(runtime(), current().name, mn, changes, _grids())))


@bp.put("/<mn>/limits")
@roles("admin")
@doc("Replace the source's limits with this list (one per pollutant and dataKind), all at once",
     body=LIMITS_BODY, response=LimitView, many=True)
def put_limits(mn: str):
    limits = json_items(MAX_LIMITS, LimitIn())
    return jsonify(LimitView(many=True).dump(register.replace_limits(runtime(), current().name, mn, limits)))


@bp.post("/import")
@roles("admin")
@doc(f"Register up to {MAX_IMPORT} sources at once (a JSON array of sources): all or nothing; a refusal "
     "lists every problem by the item's index (409 if every problem is an MN already registered or repeated)",
     body=IMPORT_BODY, response=ImportedView, status=201)
def import_sources():
    sources = json_items(MAX_IMPORT, SourceIn())
    mns = register.import_sources(runtime(), current().name, sources, _grids())
    return jsonify(ImportedView().dump({"imported": len(mns), "mns": mns})), 201
