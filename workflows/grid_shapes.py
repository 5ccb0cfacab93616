"""Grid borders for the map (网格一张图): the current grids of a tenant overlapping a bounding box, each
border simplified for the zoom it is drawn at.

A border drawn at zoom z needs no detail finer than a screen pixel, so it is simplified with a
tolerance of one pixel in degrees (shapely's Douglas-Peucker with preserve_topology, so a ring never
collapses or crosses itself) and its coordinates rounded to what that zoom can show. Simplified
borders are kept per grid row and zoom: a row is one version of a grid (an import that changes a
border writes a new row), so an entry never goes stale; the cache is bounded and drops the oldest."""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import select

from engine.db import Database
from engine.visibility import Viewer, grid_filter

from .grids import Grid

MIN_ZOOM, MAX_ZOOM = 0, 22
MAX_GRIDS = 5_000  # one answer; the console asks per view and level, far below this


@dataclass(frozen=True)
class BBox:
    """West, south, east and north in WGS84 degrees (west <= east: a box across 180° is two boxes)."""

    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def zoom_tolerance(zoom: int) -> float:
    """Degrees of one screen pixel at a Web Mercator zoom (256-pixel tiles, at the equator: nearer the
    poles a pixel covers fewer degrees of latitude, so this errs toward keeping detail)."""
    return 360.0 / (256 * 2**zoom)


def _decimals(zoom: int | None) -> int:
    """Decimals that still resolve a tenth of a pixel at `zoom` (7 ≈ 1 cm when drawn unsimplified)."""
    if zoom is None:
        return 7
    return max(1, min(7, math.ceil(-math.log10(zoom_tolerance(zoom) / 10))))


def _rounded(coords: Any, decimals: int) -> Any:
    if isinstance(coords[0], (int, float)):
        return [round(c, decimals) for c in coords]
    return [_rounded(c, decimals) for c in coords]


def simplified(geometry: str, zoom: int | None) -> dict[str, Any]:
    """A stored GeoJSON border as drawn at `zoom` (None: as stored, coordinates rounded to 1e-7°)."""
    shape = shapely.from_geojson(geometry)
    if zoom is not None:
        shape = shapely.simplify(shape, zoom_tolerance(zoom), preserve_topology=True)
    out = json.loads(shapely.to_geojson(shape))
    out["coordinates"] = _rounded(out["coordinates"], _decimals(zoom))
    return out


class GridShapes:
    """Simplified borders by (grid row, zoom), at most `max_entries`, shared by the web threads."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[tuple[int, int | None], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def cached(self, row_id: int, zoom: int | None) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get((row_id, zoom))
            if found is not None:
                self._entries.move_to_end((row_id, zoom))
                self.hits += 1
            else:
                self.misses += 1
            return found

    def keep(self, row_id: int, zoom: int | None, geometry: dict[str, Any]) -> None:
        with self._lock:
            self._entries[(row_id, zoom)] = geometry
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class GridFeatures:
    features: list[dict[str, Any]]
    truncated: bool  # more grids overlapped the box than one answer carries


def grid_features(db: Database, shapes: GridShapes, viewer: Viewer, tenant: str, *, level: str | None,
                  bbox: BBox | None, zoom: int | None) -> GridFeatures:
    """The tenant's current grids the viewer may see whose bounding box overlaps `bbox`, as GeoJSON
    features (id = grid code) with borders simplified for `zoom`. Borders are read from the database
    only for rows not cached at this zoom."""
    query = select(Grid.id, Grid.code, Grid.name, Grid.level, Grid.parent_code).where(
        Grid.tenant == tenant, Grid.valid_to.is_(None), grid_filter(viewer, Grid.code))
    if level is not None:
        query = query.where(Grid.level == level)
    if bbox is not None:
        query = query.where(Grid.max_lon >= bbox.min_lon, Grid.min_lon <= bbox.max_lon,
                            Grid.max_lat >= bbox.min_lat, Grid.min_lat <= bbox.max_lat)
    with db.session() as s:
        rows = s.execute(query.order_by(Grid.code).limit(MAX_GRIDS + 1)).all()
        rows, truncated = rows[:MAX_GRIDS], len(rows) > MAX_GRIDS
        borders = {r.id: shapes.cached(r.id, zoom) for r in rows}
        missing = [row_id for row_id, b in borders.items() if b is None]
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            for row_id, geometry in s.execute(select(Grid.id, Grid.geometry).where(Grid.id.in_(chunk))):
                border = simplified(geometry, zoom)
                borders[row_id] = border
                shapes.keep(row_id, zoom, border)
    features = [{"type": "Feature", "id": r.code, "geometry": borders[r.id],
                 "properties": {"code": r.code, "name": r.name, "level": r.level, "parent": r.parent_code}}
                for r in rows]
    return GridFeatures(features, truncated)
