"""Import a tenant's grids from a GeoJSON FeatureCollection: validate all, then write all.

Every feature carries properties `code, name, level, parent` (other properties are kept) and a
Polygon or MultiPolygon in WGS84 lon/lat. Nothing is written unless the whole collection is valid;
every problem found is reported at once, naming the feature's code and index.

How an import relates to existing rows: the collection is the tenant's COMPLETE grid set from
`now` on. In one transaction, a current row whose code is absent from the collection is retired
(`valid_to = now`); a row whose name, level, parent, geometry or other properties changed is
closed (`valid_to = now`) and a new version inserted (`valid_from = now`); an identical row is
left untouched (it keeps its `valid_from`); new codes are inserted. Nothing is ever deleted, so
`GridIndex.load(db, tenant, at=...)` can still answer for any past moment.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from shapely.errors import GEOSException
from shapely.geometry import shape as to_shape
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from engine.db import Database

from .grids import LEVELS, Grid

OVERLAP_TOLERANCE = 1e-9  # deg² (about 10 m² here): siblings may touch, not overlap
CONTAINMENT_TOLERANCE = 1e-7  # deg (about 1 cm): how far a child may stick out of its parent
CORE_PROPERTIES = ("code", "name", "level", "parent")
_EXPECTED_LENGTHS = {"city": {6}, "district": {6}, "town": {9}, "unit": {12, 15}}
_NO_SPACE = re.compile(r"^\S+$")

Problem = dict[str, Any]  # {"code": str | None, "index": int | None, "problem": str}


class GridImportError(Exception):
    """The collection was refused; `problems` lists every problem found, nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0] if problems else {}
        super().__init__(f"grid import refused: {len(problems)} problem(s), first: "
                         f"feature {first.get('index')} ({first.get('code')}): {first.get('problem')}")


@dataclass(frozen=True)
class ImportReport:
    tenant: str
    valid_from: datetime
    counts: dict[str, int]  # features per level
    added: list[str]  # codes new to the tenant
    changed: list[str]  # codes closed and re-inserted with new content
    retired: list[str]  # codes closed, absent from the collection
    unchanged: int
    warnings: list[Problem] = field(default_factory=list)  # unusual codes; not a reason to refuse


@dataclass
class ParsedGrid:
    """One feature after validation; `shape` is None when its geometry was refused."""

    index: int
    code: str
    name: str
    level: str | None
    parent: str | None
    geometry: dict[str, Any] | None  # 2D GeoJSON as stored
    shape: BaseGeometry | None
    properties: dict[str, Any]


def validate_feature_collection(tenant: str, collection: Any, *,
                                overlap_tolerance: float = OVERLAP_TOLERANCE,
                                containment_tolerance: float = CONTAINMENT_TOLERANCE,
                                ) -> tuple[list[ParsedGrid], list[Problem]]:
    """Check everything that needs no database; return (grids, warnings) or raise GridImportError.

    Public so that an API can offer a dry run."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise GridImportError([_problem(None, None, "not a GeoJSON FeatureCollection")])
    features = collection.get("features")
    if not isinstance(features, list):
        raise GridImportError([_problem(None, None, "FeatureCollection has no 'features' list")])
    problems: list[Problem] = []
    parsed = [g for i, f in enumerate(features) if (g := _parse_feature(i, f, problems)) is not None]
    grids = _unique(parsed, problems)
    by_code = {g.code: g for g in grids}
    _check_city(tenant, grids, problems)
    _check_parents(grids, by_code, problems)
    _check_containment(grids, by_code, containment_tolerance, problems)
    _check_overlaps(grids, overlap_tolerance, problems)
    if problems:
        raise GridImportError(sorted(problems, key=_problem_order))
    return grids, _code_warnings(grids, by_code)


def import_grids(db: Database, now: datetime, tenant: str, feature_collection: dict, *,
                 overlap_tolerance: float = OVERLAP_TOLERANCE,
                 containment_tolerance: float = CONTAINMENT_TOLERANCE) -> ImportReport:
    """Validate, then replace the tenant's current grids in ONE transaction (see module doc)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    grids, warnings = validate_feature_collection(tenant, feature_collection, overlap_tolerance=overlap_tolerance,
                                                  containment_tolerance=containment_tolerance)
    new_rows = {g.code: _row(tenant, now, g) for g in grids}
    with db.transaction() as session:
        db.advisory_xact_lock(session, zlib.crc32(f"grid-import:{tenant}".encode()))
        current = {r.code: r for r in session.execute(
            select(Grid.id, Grid.code, Grid.name, Grid.level, Grid.parent_code, Grid.geometry,
                   Grid.properties, Grid.valid_from).where(Grid.tenant == tenant, Grid.valid_to.is_(None)))}
        _check_database(session, tenant, now, grids, current, new_rows)
        changed = sorted(c for c, r in current.items() if c in new_rows and _differs(r, new_rows[c]))
        retired = sorted(c for c in current if c not in new_rows)
        added = sorted(c for c in new_rows if c not in current)
        closing = [current[c].id for c in changed + retired]
        for chunk in _chunks(closing):
            session.execute(update(Grid).where(Grid.id.in_(chunk)).values(valid_to=now),
                            execution_options={"synchronize_session": False})
        inserts = [new_rows[c] for c in added + changed]
        if inserts:
            session.execute(insert(Grid), inserts)
    counts = {level: sum(1 for g in grids if g.level == level) for level in LEVELS}
    return ImportReport(tenant=tenant, valid_from=now, counts=counts, added=added, changed=changed,
                        retired=retired, unchanged=len(current) - len(changed) - len(retired),
                        warnings=warnings)


# --- one feature -------------------------------------------------------------------------------

def _problem(code: str | None, index: int | None, text: str) -> Problem:
    return {"code": code, "index": index, "problem": text}


def _problem_order(p: Problem) -> tuple[int, str]:
    return (-1 if p["index"] is None else p["index"], p["problem"])


def _parse_feature(index: int, feature: Any, problems: list[Problem]) -> ParsedGrid | None:
    """Check one feature on its own; None when it has no usable code (it cannot be referred to)."""
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        problems.append(_problem(None, index, "not a GeoJSON Feature"))
        return None
    props = feature.get("properties")
    if not isinstance(props, dict):
        problems.append(_problem(None, index, "feature has no 'properties' object"))
        return None
    code = props.get("code")
    if not isinstance(code, str) or not code.strip():
        problems.append(_problem(None, index, "missing code (a non-empty string)"))
        return None
    found: list[str] = []
    if not _NO_SPACE.match(code) or len(code) > 40:
        found.append("code must be at most 40 characters without spaces")
    name = props.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        found.append("missing name (a non-empty string of at most 200 characters)")
    level = props.get("level")
    if level not in LEVELS:
        found.append(f"level {level!r} is not one of {', '.join(LEVELS)}")
        level = None
    parent = props.get("parent")
    if level == "city" and parent is not None:
        found.append("the city must have no parent")
    elif level not in (None, "city") and (not isinstance(parent, str) or not parent):
        found.append(f"a {level} needs a parent code")
    if parent is not None and not isinstance(parent, str):
        parent = None
    geometry, geo_problems = _parse_geometry(feature.get("geometry"))
    found += geo_problems
    shape = None
    if geometry is not None:
        shape, shape_problem = _build_shape(geometry)
        if shape_problem:
            found.append(shape_problem)
            geometry = None
    problems.extend(_problem(code, index, text) for text in found)
    extra = {k: v for k, v in props.items() if k not in CORE_PROPERTIES}
    return ParsedGrid(index, code, name if isinstance(name, str) else "", level, parent, geometry, shape, extra)


def _parse_geometry(geometry: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """Structural checks GeoJSON needs and shapely does not make (it closes open rings silently)."""
    if not isinstance(geometry, dict):
        return None, ["geometry missing"]
    gtype, coords = geometry.get("type"), geometry.get("coordinates")
    if gtype not in ("Polygon", "MultiPolygon"):
        return None, [f"geometry type {gtype!r} is not Polygon or MultiPolygon"]
    polygons = [coords] if gtype == "Polygon" else coords
    if not isinstance(polygons, list) or not polygons:
        return None, ["geometry has no coordinates"]
    problems: list[str] = []
    clean: list[list[list[list[float]]]] = []
    for p, rings in enumerate(polygons):
        where = f"polygon {p} " if gtype == "MultiPolygon" else ""
        if not isinstance(rings, list) or not rings:
            problems.append(f"{where}has no rings")
            continue
        clean_rings = []
        for r, ring in enumerate(rings):
            ring_clean, ring_problem = _parse_ring(ring)
            if ring_problem:
                problems.append(f"{where}ring {r} {ring_problem}")
            clean_rings.append(ring_clean)
        clean.append(clean_rings)
    if problems:
        return None, problems
    return {"type": gtype, "coordinates": clean[0] if gtype == "Polygon" else clean}, []


def _parse_ring(ring: Any) -> tuple[list[list[float]], str | None]:
    if not isinstance(ring, list) or len(ring) < 4:
        return [], "needs at least 4 positions (a closed ring)"
    clean = []
    for k, pos in enumerate(ring):
        if (not isinstance(pos, list | tuple) or not 2 <= len(pos) <= 3
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
                or not all(math.isfinite(v) for v in pos)):
            return [], f"position {k} is not [lon, lat]"
        lon, lat = float(pos[0]), float(pos[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            return [], f"position {k} [{lon}, {lat}] is out of lon/lat range"
        clean.append([lon, lat])
    if clean[0] != clean[-1]:
        return [], "is not closed (its first and last positions differ)"
    return clean, None


def _build_shape(geometry: dict[str, Any]) -> tuple[BaseGeometry | None, str | None]:
    try:
        shape = to_shape(geometry)
    except (ValueError, GEOSException) as exc:
        return None, f"invalid geometry: {exc}"
    if not shape.is_valid:
        return None, f"invalid geometry: {explain_validity(shape)}"
    if shape.is_empty or shape.area <= 0:
        return None, "invalid geometry: no area"
    return shape, None


# --- the collection ---------------------------------------------------------------------------

def _unique(parsed: list[ParsedGrid], problems: list[Problem]) -> list[ParsedGrid]:
    first: dict[str, int] = {}
    kept = []
    for g in parsed:
        if g.code in first:
            problems.append(_problem(g.code, g.index, f"duplicate code (first at index {first[g.code]})"))
        else:
            first[g.code] = g.index
            kept.append(g)
    return kept


def _check_city(tenant: str, grids: list[ParsedGrid], problems: list[Problem]) -> None:
    cities = [g for g in grids if g.level == "city"]
    if not cities:
        problems.append(_problem(None, None, f"no city feature (level 'city', code {tenant!r})"))
    for extra in cities[1:]:
        problems.append(_problem(extra.code, extra.index, f"a second city (the first is {cities[0].code})"))
    if cities and cities[0].code != tenant:
        problems.append(_problem(cities[0].code, cities[0].index, f"city code differs from the tenant {tenant!r}"))


def _check_parents(grids: list[ParsedGrid], by_code: dict[str, ParsedGrid], problems: list[Problem]) -> None:
    for g in grids:
        if g.level in (None, "city") or not g.parent:
            continue
        parent = by_code.get(g.parent)
        if parent is None:
            problems.append(_problem(g.code, g.index, f"unknown parent {g.parent!r}"))
            continue
        expected = LEVELS[LEVELS.index(g.level) - 1]
        if parent.level is not None and parent.level != expected:
            text = f"a {g.level}'s parent must be a {expected}, but {parent.code} is a {parent.level}"
            problems.append(_problem(g.code, g.index, text))


def _valid_parent(g: ParsedGrid, by_code: dict[str, ParsedGrid]) -> ParsedGrid | None:
    parent = by_code.get(g.parent) if g.parent else None
    if parent is None or g.level in (None, "city") or parent.shape is None or g.shape is None:
        return None
    return parent if parent.level == LEVELS[LEVELS.index(g.level) - 1] else None


def _check_containment(grids: list[ParsedGrid], by_code: dict[str, ParsedGrid], tolerance: float,
                       problems: list[Problem]) -> None:
    """Each child inside its parent grown by `tolerance` (buffers computed once per parent)."""
    grown: dict[str, BaseGeometry] = {}
    for g in grids:
        parent = _valid_parent(g, by_code)
        if parent is None:
            continue
        assert parent.shape is not None and g.shape is not None  # _valid_parent returns None otherwise
        if parent.code not in grown:
            grown[parent.code] = parent.shape.buffer(tolerance)
            shapely.prepare(grown[parent.code])
        if not grown[parent.code].covers(g.shape):
            outside = g.shape.difference(parent.shape).area
            problems.append(_problem(g.code, g.index, f"not inside its parent {parent.code} "
                                                      f"({outside:.3g} deg² outside)"))


def _check_overlaps(grids: list[ParsedGrid], tolerance: float, problems: list[Problem]) -> None:
    """Siblings (same parent) may share borders but not overlap: STRtree pairs per level."""
    for level in LEVELS[1:]:
        group = [g for g in grids if g.level == level and g.shape is not None]
        if len(group) < 2:
            continue
        geoms = np.array([g.shape for g in group], dtype=object)
        left, right = shapely.STRtree(geoms).query(geoms, predicate="intersects")
        keep = left < right
        left, right = left[keep], right[keep]
        same_parent = np.array([group[a].parent == group[b].parent for a, b in zip(left, right, strict=True)],
                               dtype=bool)
        left, right = left[same_parent], right[same_parent]
        if len(left) == 0:
            continue
        areas = shapely.area(shapely.intersection(geoms[left], geoms[right]))
        for a, b, area in zip(left, right, areas, strict=True):
            if area > tolerance:
                first, second = sorted((group[a], group[b]), key=lambda g: g.index)
                problems.append(_problem(second.code, second.index, f"overlaps its sibling {first.code} "
                                                                    f"(index {first.index}) by {area:.3g} deg²"))


def _code_warnings(grids: list[ParsedGrid], by_code: dict[str, ParsedGrid]) -> list[Problem]:
    """Codes that do not look like GB/T 2260-based codes: worth a look, not a refusal."""
    warnings = []
    for g in grids:
        if not g.code.isdigit() or len(g.code) not in _EXPECTED_LENGTHS.get(g.level or "", {len(g.code)}):
            warnings.append(_problem(g.code, g.index, f"unusual code for a {g.level}"))
        elif g.level in ("town", "unit") and g.parent in by_code and not g.code.startswith(g.parent):
            warnings.append(_problem(g.code, g.index, f"code does not extend its parent's code {g.parent}"))
    return warnings


# --- the database -----------------------------------------------------------------------------

def _row(tenant: str, now: datetime, g: ParsedGrid) -> dict[str, Any]:
    assert g.shape is not None and g.geometry is not None and g.level is not None
    min_lon, min_lat, max_lon, max_lat = g.shape.bounds
    return {"tenant": tenant, "code": g.code, "name": g.name, "level": g.level, "parent_code": g.parent,
            "valid_from": now, "valid_to": None, "geometry": json.dumps(g.geometry, separators=(",", ":")),
            "min_lon": min_lon, "min_lat": min_lat, "max_lon": max_lon, "max_lat": max_lat,
            "properties": g.properties or None}


def _differs(current: Any, new: dict[str, Any]) -> bool:
    return (current.name, current.level, current.parent_code, current.geometry, current.properties or None) != (
        new["name"], new["level"], new["parent_code"], new["geometry"], new["properties"])


def _check_database(session: Session, tenant: str, now: datetime, grids: list[ParsedGrid],
                    current: dict[str, Any], new_rows: dict[str, dict[str, Any]]) -> None:
    """What only the database knows: codes held by another tenant, and time running backwards."""
    problems: list[Problem] = []
    index = {g.code: g.index for g in grids}
    for chunk in _chunks(list(new_rows)):
        for code, other in session.execute(select(Grid.code, Grid.tenant).where(
                Grid.code.in_(chunk), Grid.tenant != tenant, Grid.valid_to.is_(None))):
            problems.append(_problem(code, index[code], f"code is a current grid of tenant {other!r}"))
    latest = max((r.valid_from for r in current.values()), default=None)
    if latest is not None and latest > now:
        problems.append(_problem(None, None, f"import time {now.isoformat()} is before the current grids' "
                                             f"valid_from {latest.isoformat()}"))
    if problems:
        raise GridImportError(sorted(problems, key=_problem_order))


def _chunks(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
