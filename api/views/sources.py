"""sources: the register of monitoring sources (an enterprise's outlet, a monitoring station; each a
data logger known by its MN) and their pollutant limits, which the threshold rules read.

Admins register, change and bulk-import sources and replace a source's limits; admins, leaders and
supervisors (within their grid) read them, with each source's current rule states (offline,
exceeding, device fault). The logger's password is write-only: no answer ever carries it.

A source's grid is a current grid of its tenant, given, or located from its lon/lat. Every change
goes to the audit trail (system chain) in the transaction that makes it; a refused request changes
nothing."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any

from flask import current_app, jsonify
from flask.blueprints import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import delete, select

from engine import audit
from engine.db import given, page
from engine.errors import Conflict, NotFound
from engine.visibility import grid_filter
from workflows.grids import Grid
from workflows.monitoring_rules import DEVICE, EXCEEDANCE, OFFLINE, RuleState
from workflows.sources import DATA_KINDS, KINDS, MonitoringSource, PollutantLimit

from .. import schemas
from ..auth import Principal, current, roles
from ..errors import error_body
from ..http import doc, json_body, json_list, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

bp = Blueprint("sources", __name__, url_prefix="/api/v1/sources")
READERS = ("admin", "supervisor", "leader")
MAX_IMPORT = 5_000
MAX_LIMITS = 200  # per source
MN = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="1 to 64 letters, digits, _ or -")
# HJ 212 carries the password as `PW=…;` in the header: no separators, no spaces, printable ASCII
PASSWORD = validate.Regexp(r"^(?:(?![;,=&])[!-~]){1,64}$",
                           error="1 to 64 printable ASCII characters, without spaces or ; , = &")
POLLUTANT = validate.Regexp(r"^[A-Za-z0-9_.]{1,20}$", error="an HJ 212 code such as a21026 or w01018 (max 20)")
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


def _decimal_text(value: Decimal) -> str:
    """The same text on every database ("100", "0.5"): SQLite keeps no trailing zeros, PostgreSQL does."""
    return format(Decimal(value).normalize(), "f")


class LimitView(Schema):
    pollutant = fields.String()
    data_kind = fields.String(data_key="dataKind")
    limit_value = fields.Function(lambda lim: _decimal_text(lim.limit_value), data_key="limitValue")
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
    peak = fields.Function(lambda st: None if st.peak is None else _decimal_text(st.peak), allow_none=True)
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

def _refused(problems: dict[int, dict[str, Any]], what: str, *, conflicts: AbstractSet[int] = frozenset()):
    """422 with the field errors of every refused item by index; 409 when every problem is a conflict."""
    status, code = (409, "conflict") if set(problems) <= conflicts else (422, "validation_failed")
    return error_body(status, code, f"{what}; nothing was changed",
                      fields={str(i): problems[i] for i in sorted(problems)})


def _scope_filter(p: Principal, stmt):
    return stmt.where(grid_filter(p.viewer, MonitoringSource.grid_code))


def _current_grids(s, tenant: str) -> set[str]:
    return set(s.scalars(select(Grid.code).where(Grid.tenant == tenant, Grid.valid_to.is_(None))))


def _place(a: dict[str, Any], grids: set[str]) -> tuple[str | None, dict[str, list[str]]]:
    """The grid of a source to be (given, or located from lon/lat), or the field errors why not."""
    tenant = a["tenant"]
    if not grids:
        return None, {"tenant": [f"tenant {tenant} has no grids: import them first"]}
    if a.get("grid") is not None:
        if a["grid"] not in grids:
            return None, {"grid": [f"not a current grid of tenant {tenant}"]}
        return a["grid"], {}
    if a.get("lon") is None:
        return None, {}
    unit = current_app.extensions["gridloop.grids"].get(tenant).locate(a["lon"], a["lat"])
    if unit is None:
        return None, {"lon": [f"the point is outside every grid of tenant {tenant}: give `grid`"]}
    return unit, {}


def _existing(s, mns: Iterable[str]) -> set[str]:
    wanted, found = sorted(set(mns)), set()
    for i in range(0, len(wanted), 500):
        found.update(s.scalars(select(MonitoringSource.mn).where(MonitoringSource.mn.in_(wanted[i:i + 500]))))
    return found


def _new_source(a: dict[str, Any], grid: str | None, now) -> MonitoringSource:
    return MonitoringSource(mn=a["mn"], tenant=a["tenant"], kind=a["kind"], name=a["name"],
                            enterprise=a.get("enterprise"), lon=a.get("lon"), lat=a.get("lat"), grid_code=grid,
                            password=a["password"], offline_after_s=a["offline_after_s"], active=a["active"],
                            created_at=now)


def _audit(s, action: str, **details: Any) -> None:
    rt = runtime()
    audit.append_system(rt.db, s, [audit.AuditDraft(action=action, actor=current().name, at=rt.clock.now(),
                                                     details=details)])


def _detail(s, source: MonitoringSource) -> dict[str, Any]:
    limits = s.scalars(select(PollutantLimit).where(PollutantLimit.mn == source.mn)
                       .order_by(PollutantLimit.pollutant, PollutantLimit.data_kind)).all()
    states = s.scalars(select(RuleState).where(RuleState.mn == source.mn, RuleState.active.is_(True))
                       .order_by(RuleState.rule, RuleState.pollutant)).all()
    rules = {st.rule for st in states}
    return SourceDetailView().dump({**{c: getattr(source, c) for c in SourceView().fields},
                                    "limits": limits, "offline": OFFLINE in rules, "exceeding": EXCEEDANCE in rules,
                                    "device_fault": DEVICE in rules, "active_rules": states})


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
        return jsonify(_detail(s, source))


@bp.post("")
@roles("admin")
@doc("Register a source; its grid is given or located from lon/lat; a registered MN is 409",
     body=SourceIn, response=SourceDetailView, status=201)
def create_source():
    a = json_body(SourceIn())
    rt = runtime()
    with rt.db.transaction() as s:
        grid, errors = _place(a, _current_grids(s, a["tenant"]))
        if errors:
            raise ValidationError(errors)
        if s.get(MonitoringSource, a["mn"]) is not None:
            raise Conflict(f"source {a['mn']} is already registered")
        source = _new_source(a, grid, rt.clock.now())
        s.add(source)
        s.flush()
        _audit(s, "source.registered", mn=source.mn, tenant=source.tenant, kind=source.kind, grid=grid)
        body = _detail(s, source)
    return jsonify(body), 201


@bp.patch("/<mn>")
@roles("admin")
@doc("Change a source: name, enterprise, password, active, offlineAfterS, lon/lat (null both to clear) "
     "and grid (a new location without `grid` is located again; `grid: null` locates from the location)",
     body=SourcePatch, response=SourceDetailView)
def patch_source(mn: str):
    a = json_body(SourcePatch())
    with runtime().db.transaction() as s:
        source = s.get(MonitoringSource, mn, with_for_update=True)
        if source is None:
            raise NotFound(f"source {mn} does not exist")
        changed = [k for k in ("name", "enterprise", "password", "active", "offline_after_s") if k in a]
        for key in changed:
            setattr(source, key, a[key])
        if "lon" in a:
            source.lon, source.lat = a["lon"], a["lat"]
            changed += ["lon", "lat"]
        if "grid" in a or ("lon" in a and a["lon"] is not None):
            grid, errors = _place({"tenant": source.tenant, "grid": a.get("grid"), "lon": source.lon,
                                   "lat": source.lat}, _current_grids(s, source.tenant))
            if errors:
                raise ValidationError(errors)
            if grid is not None or "grid" in a:
                source.grid_code = grid
                changed.append("grid")
        _audit(s, "source.changed", mn=mn, fields=sorted(set(changed)), grid=source.grid_code)
        return jsonify(_detail(s, source))


@bp.put("/<mn>/limits")
@roles("admin")
@doc("Replace the source's limits with this list (one per pollutant and dataKind), all at once",
     body=LIMITS_BODY, response=LimitView, many=True)
def put_limits(mn: str):
    data = json_list(MAX_LIMITS)
    problems: dict[int, dict[str, Any]] = {}
    loaded: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(data):
        try:
            loaded.append((i, LimitIn().load(item)))
        except ValidationError as exc:
            problems[i] = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    first: dict[tuple[str, str], int] = {}
    for i, lim in loaded:
        key = (lim["pollutant"], lim["data_kind"])
        if key in first:
            problems[i] = {"pollutant": [f"{key[0]} ({key[1]}) is already limited by item {first[key]}"]}
        first.setdefault(key, i)
    with runtime().db.transaction() as s:
        source = s.get(MonitoringSource, mn, with_for_update=True)
        if source is None:
            raise NotFound(f"source {mn} does not exist")
        if problems:
            return _refused(problems, "the limits were refused")
        old = s.scalars(select(PollutantLimit).where(PollutantLimit.mn == mn)).all()
        before = LimitView(many=True).dump(old)
        s.execute(delete(PollutantLimit).where(PollutantLimit.mn == mn))
        new = [PollutantLimit(mn=mn, **lim) for _, lim in loaded]
        s.add_all(new)
        s.flush()
        after = LimitView(many=True).dump(new)
        _audit(s, "source.limits_replaced", mn=mn, before=before, after=after)
    return jsonify(after)


@bp.post("/import")
@roles("admin")
@doc(f"Register up to {MAX_IMPORT} sources at once (a JSON array of sources): all or nothing; a refusal "
     "lists every problem by the item's index (409 if every problem is an MN already registered or repeated)",
     body=IMPORT_BODY, response=ImportedView, status=201)
def import_sources():
    data = json_list(MAX_IMPORT)
    if not data:
        raise ValidationError({"_schema": ["give at least one source"]})
    problems: dict[int, dict[str, Any]] = {}
    loaded: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(data):
        try:
            loaded.append((i, SourceIn().load(item)))
        except ValidationError as exc:
            problems[i] = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    rt = runtime()
    with rt.db.transaction() as s:
        grids = {t: _current_grids(s, t) for t in sorted({a["tenant"] for _, a in loaded})}
        existing = _existing(s, (a["mn"] for _, a in loaded))
        placed: list[tuple[dict[str, Any], str | None]] = []
        conflicts: set[int] = set()
        first: dict[str, int] = {}
        for i, a in loaded:
            grid, errors = _place(a, grids[a["tenant"]])
            if a["mn"] in existing:
                errors = {**errors, "mn": [f"source {a['mn']} is already registered"]}
                conflicts.add(i)
            elif a["mn"] in first:
                errors = {**errors, "mn": [f"the MN of item {first[a['mn']]} again"]}
                conflicts.add(i)
            first.setdefault(a["mn"], i)
            if errors:
                if set(errors) != {"mn"}:
                    conflicts.discard(i)
                problems[i] = errors
            else:
                placed.append((a, grid))
        if problems:
            return _refused(problems, f"the import was refused ({len(problems)} of {len(data)} items)",
                            conflicts=conflicts)
        now = rt.clock.now()
        s.add_all(_new_source(a, grid, now) for a, grid in placed)
        s.flush()
        mns = [a["mn"] for a, _ in placed]
        _audit(s, "source.imported", count=len(mns), mns=mns)
    return jsonify(ImportedView().dump({"imported": len(mns), "mns": mns})), 201
