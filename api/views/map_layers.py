"""The map (网格一张图) as GeoJSON FeatureCollections (application/geo+json): the grids' borders,
simplified for the zoom they are drawn at, and the points drawn over them — open cases, monitoring
sources, inspectors' latest check-ins. Each takes the tenant and an optional `bbox`
(minLon,minLat,maxLon,maxLat) and answers only what lies in the caller's grids; a tenant the caller
does not work in is 403, one without grids 404, both naming `tenant`."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate

from engine.errors import NotAllowed, NotFound
from workflows import map_layers
from workflows.grid_shapes import MAX_ZOOM, MIN_ZOOM, BBox, GridShapes, grid_features
from workflows.grids import LEVELS
from workflows.tenants import works_in

from ..auth import current, roles
from ..http import doc, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

GEOJSON = "application/geo+json"
DESK = ("supervisor", "leader", "admin")
SHAPES = "gridloop.grid_shapes"


class BBoxField(fields.Field):
    """`minLon,minLat,maxLon,maxLat` in WGS84 degrees, west before east and south before north."""

    default_error_messages = {
        "format": "four numbers: minLon,minLat,maxLon,maxLat",
        "range": "longitudes within -180..180 and latitudes within -90..90",
        "order": "minLon must not exceed maxLon, nor minLat maxLat",
    }

    def _deserialize(self, value: Any, attr, data, **kwargs) -> BBox:
        parts = str(value).split(",")
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise self.make_error("format") from None
        if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
            raise self.make_error("format")
        west, south, east, north = numbers
        if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
            raise self.make_error("range")
        if west > east or south > north:
            raise self.make_error("order")
        return BBox(west, south, east, north)


class LayerArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    bbox = BBoxField(metadata={"description": "minLon,minLat,maxLon,maxLat (WGS84); absent: the whole tenant"})


class GridShapeArgs(LayerArgs):
    level = fields.String(validate=validate.OneOf(LEVELS))
    zoom = fields.Integer(validate=validate.Range(min=MIN_ZOOM, max=MAX_ZOOM), metadata={
        "description": "the map's zoom: borders are simplified to one pixel there; absent: as stored"})


class SourceArgs(LayerArgs):
    state = fields.String(validate=validate.OneOf(map_layers.SOURCE_STATES))


class CheckinArgs(LayerArgs):
    days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=90),
                          metadata={"description": "check-ins of the last this many days"})


class FeatureCollection(Schema):
    type = fields.Constant("FeatureCollection")
    features = fields.List(fields.Dict(), metadata={"description": "GeoJSON features; id = code, case, MN"})
    truncated = fields.Boolean(metadata={"description": "more lay in the box than one answer carries"})


bp = Blueprint("map", __name__, url_prefix="/api/v1")


@bp.record_once
def _shape_cache(setup) -> None:
    setup.app.extensions.setdefault(SHAPES, GridShapes())


def _tenant(tenant: str) -> str:
    if not works_in(current().viewer, tenant):
        raise NotAllowed(f"you do not work in tenant {tenant}", fields=["tenant"])
    if current_app.extensions["gridloop.grids"].get(tenant).city_code is None:
        raise NotFound(f"tenant {tenant} has no grids", fields=["tenant"])
    return tenant


def _collection(features: list[dict[str, Any]], **members: Any):
    response = jsonify({"type": "FeatureCollection", "features": features, **members})
    response.mimetype = GEOJSON
    return response


@bp.get("/grids/geojson")
@roles("admin", "supervisor", "leader", "inspector")
@doc("The current grids in the caller's scope overlapping bbox, as GeoJSON polygons simplified for zoom",
     query=GridShapeArgs, response=FeatureCollection)
def grid_shapes():
    args = query_args(GridShapeArgs())
    found = grid_features(runtime().db, current_app.extensions[SHAPES], current().viewer, _tenant(args["tenant"]),
                          level=args.get("level"), bbox=args.get("bbox"), zoom=args.get("zoom"))
    return _collection(found.features, truncated=found.truncated)


@bp.get("/map/cases")
@roles(*DESK)
@doc("Open cases in the caller's grids as GeoJSON points: stage (the first open task, or 'waiting'), "
     "overdue, earliest due; `unplaced` counts those without a location", query=LayerArgs,
     response=FeatureCollection)
def case_points():
    args = query_args(LayerArgs())
    rt = runtime()
    found = map_layers.open_cases(rt.db, current().viewer, _tenant(args["tenant"]), args.get("bbox"), rt.clock.now())
    return _collection(found.features, truncated=found.truncated, unplaced=found.unplaced)


@bp.get("/map/sources")
@roles(*DESK)
@doc("Active monitoring sources in the caller's grids as GeoJSON points, each online, offline or exceeding",
     query=SourceArgs, response=FeatureCollection)
def source_points():
    args = query_args(SourceArgs())
    rt = runtime()
    found = map_layers.monitoring_sources(rt.db, current().viewer, _tenant(args["tenant"]), args.get("bbox"),
                                          rt.clock.now(), args.get("state"))
    return _collection(found.features, truncated=found.truncated)


@bp.get("/map/checkins")
@roles(*DESK)
@doc("Each inspector's latest check-in on a case in the caller's grids (last `days` days) as GeoJSON points",
     query=CheckinArgs, response=FeatureCollection)
def checkin_points():
    args = query_args(CheckinArgs())
    rt = runtime()
    since = rt.clock.now() - timedelta(days=args["days"])
    found = map_layers.latest_checkins(rt.db, current().viewer, _tenant(args["tenant"]), args.get("bbox"), since)
    return _collection(found.features, truncated=found.truncated)
