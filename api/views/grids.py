"""grids: import the grid hierarchy from GeoJSON (with a dry run), list grids, locate a point."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request
from marshmallow import Schema, fields, validate
from sqlalchemy import select
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from workflows.geojson_import import GridImportError, import_grids, validate_feature_collection
from workflows.grids import LEVELS, Grid

from ..auth import current, roles
from ..errors import error_body
from ..http import doc, query_args, runtime
from ..schemas import Strict

TENANT = validate.Regexp(r"^[0-9]{6}\Z", error="a 6-digit administrative code (GB/T 2260)")
GRID = validate.Regexp(r"^[0-9]{6,40}\Z", error="a grid code (digits)")


class ImportArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    dry_run = fields.Boolean(data_key="dryRun", load_default=False)


class ListArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    level = fields.String(validate=validate.OneOf(LEVELS))
    parent = fields.String(validate=validate.Length(max=40))


class LocateArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    lon = fields.Float(required=True, validate=validate.Range(min=-180, max=180))
    lat = fields.Float(required=True, validate=validate.Range(min=-90, max=90))


class GridView(Schema):
    code = fields.String()
    name = fields.String()
    level = fields.String()
    parent_code = fields.String(data_key="parent", allow_none=True)
    valid_from = fields.AwareDateTime(data_key="validFrom")


bp = Blueprint("grids", __name__, url_prefix="/api/v1/grids")
MAX_GEOJSON_BYTES = 32 * 1024 * 1024


@bp.post("/import")
@roles("admin")
@doc("Import (replace) a tenant's grids from a GeoJSON FeatureCollection; dryRun=true only validates",
     query=ImportArgs)
def import_collection():
    args = query_args(ImportArgs())
    if request.mimetype not in ("application/json", "application/geo+json"):
        raise UnsupportedMediaType("send the FeatureCollection as application/geo+json or application/json")
    if (request.content_length or 0) > MAX_GEOJSON_BYTES:
        raise BadRequest(f"the collection is larger than {MAX_GEOJSON_BYTES} bytes")
    try:
        collection = json.loads(request.get_data())
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    rt = runtime()
    try:
        if args["dry_run"]:
            grids, warnings = validate_feature_collection(args["tenant"], collection)
            return jsonify({"dryRun": True, "valid": True, "features": len(grids), "warnings": warnings})
        report = import_grids(rt.db, rt.clock.now(), args["tenant"], collection)
    except GridImportError as exc:
        return error_body(422, "invalid_geojson", "the grid collection was refused; nothing was imported",
                          details={"problems": exc.problems})
    current_app.extensions["gridloop.grids"].invalidate(args["tenant"])
    return jsonify({"dryRun": False, "tenant": report.tenant, "validFrom": report.valid_from.isoformat(),
                    "counts": report.counts, "added": len(report.added), "changed": len(report.changed),
                    "retired": len(report.retired), "unchanged": report.unchanged, "warnings": report.warnings,
                    "importedBy": current().name})


@bp.get("")
@roles("admin", "supervisor", "leader", "inspector")
@doc("The tenant's current grids (without geometry)", query=ListArgs, response=GridView, many=True)
def list_grids():
    args = query_args(ListArgs())
    q = select(Grid).where(Grid.tenant == args["tenant"], Grid.valid_to.is_(None)).order_by(Grid.code)
    if "level" in args:
        q = q.where(Grid.level == args["level"])
    if "parent" in args:
        q = q.where(Grid.parent_code == args["parent"])
    with runtime().db.session() as s:
        rows = s.scalars(q.limit(5000)).all()
    return jsonify(GridView(many=True).dump(rows))


@bp.get("/locate")
@roles("admin", "supervisor", "leader", "inspector", "system")
@doc("The basic grid unit containing a point, and its chain up to the city", query=LocateArgs)
def locate():
    args = query_args(LocateArgs())
    index = current_app.extensions["gridloop.grids"].get(args["tenant"])
    unit = index.locate(args["lon"], args["lat"])
    if unit is None:
        return jsonify({"unit": None, "chain": [], "reason": "the point is outside every grid"})
    return jsonify({"unit": unit, "chain": [{"code": c, "name": index.grids[c].name, "level": index.grids[c].level}
                                            for c in index.ancestors(unit)]})
