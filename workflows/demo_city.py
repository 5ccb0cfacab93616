"""A demo city's grids: real city and district codes and names, SYNTHETIC rectangles for shapes.

demo-city.json gives no coordinates, so the districts are laid out as a 3 x 2 block of rectangles
around the real city's approximate location, towns tile their district and units tile their town
(rows north → south, cells west → east, as GB/T 30428 numbers grids). Fully deterministic, and
every cell of the city belongs to exactly one unit (borders shared), so routing has no blind spot.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

DEMO_CITY_JSON = Path(__file__).parent / "data" / "demo-city.json"  # copied from shared/data/demo-city.json

CENTER = (119.2, 34.6)  # Lianyungang, roughly
DISTRICT_SIZE = 0.4  # degrees per side of one synthetic district
DISTRICT_COLUMNS = 3
DIGITS = 6  # coordinates rounded once, so shared borders are bit-identical
NOTE = ("Synthetic demo grids: the city and district codes and names are real (GB/T 2260); towns, "
        "units and every shape are generated rectangles and do not follow any real border.")
KINDS = {"street": (1, "示例街道"), "town": (100, "示例镇"), "township": (200, "示例乡")}  # GB/T 10114 ranges

Rect = tuple[float, float, float, float]  # min_lon, min_lat, max_lon, max_lat


def demo_feature_collection(data: dict[str, Any]) -> dict[str, Any]:
    """Turn demo-city.json into a FeatureCollection that `import_grids` accepts."""
    city, districts = data["city"], data["districts"]
    facts, of = data["grid_facts"], data["grid_facts"]["of_which"]
    town_kinds = ["street"] * of["streets"] + ["town"] * of["towns"] + ["township"] * of["townships"]
    if len(town_kinds) != facts["towns_and_streets"]:
        raise ValueError("streets + towns + townships do not add up to towns_and_streets")
    n_units = facts["basic_units"]
    if n_units < len(town_kinds):
        raise ValueError("fewer basic units than towns")

    rows = math.ceil(len(districts) / DISTRICT_COLUMNS)
    width, height = DISTRICT_SIZE * min(len(districts), DISTRICT_COLUMNS), DISTRICT_SIZE * rows
    city_rect = _round((CENTER[0] - width / 2, CENTER[1] - height / 2, CENTER[0] + width / 2, CENTER[1] + height / 2))
    features = [_feature(city["code"], city["name"], "city", None, city_rect)]
    district_rects = _tile(city_rect, len(districts), rows)
    # Town i goes to district i mod n: the 3 streets land in the first (urban) districts.
    towns_of: list[list[str]] = [[] for _ in districts]
    for i, kind in enumerate(town_kinds):
        towns_of[i % len(districts)].append(kind)
    units_per_town = [n_units // len(town_kinds) + (1 if i < n_units % len(town_kinds) else 0)
                      for i in range(len(town_kinds))]
    town_number = 0
    town_features, unit_features = [], []
    for district, d_rect, d_kinds in zip(districts, district_rects, towns_of, strict=True):
        features.append(_feature(district["code"], district["name"], "district", city["code"], d_rect))
        t_rects = _tile(d_rect, len(d_kinds))
        sequence = dict.fromkeys(KINDS, 0)
        for kind, t_rect in zip(d_kinds, t_rects, strict=True):
            start, label = KINDS[kind]
            sequence[kind] += 1
            code = f"{district['code']}{start + sequence[kind] - 1:03d}"
            name = f"{district['name']}{label}{sequence[kind]:02d}"
            town_features.append(_feature(code, name, "town", district["code"], t_rect, kind=kind))
            count = units_per_town[town_number]
            town_number += 1
            for seq, u_rect in enumerate(_tile(t_rect, count), start=1):
                unit_features.append(_feature(f"{code}000{seq:03d}", f"{name}网格{seq:03d}", "unit", code, u_rect))
    return {"type": "FeatureCollection", "note": NOTE, "features": features + town_features + unit_features}


def _tile(rect: Rect, n: int, rows: int | None = None) -> list[Rect]:
    """Split `rect` into n cells with no gap: `rows` bands (about sqrt(n)) north → south, each
    split west → east; the first n % rows bands get one cell more."""
    rows = rows or max(1, round(math.sqrt(n)))
    base, extra = divmod(n, rows)
    min_lon, min_lat, max_lon, max_lat = rect
    lat_edges = _edges(max_lat, min_lat, rows)  # north first
    cells = []
    for r in range(rows):
        columns = base + (1 if r < extra else 0)
        lon_edges = _edges(min_lon, max_lon, columns)
        for c in range(columns):
            cells.append((lon_edges[c], lat_edges[r + 1], lon_edges[c + 1], lat_edges[r]))
    return cells


def _edges(start: float, end: float, parts: int) -> list[float]:
    """parts + 1 edges; the outer two are exactly the parent's, so children sit exactly inside."""
    inner = [round(start + (end - start) * i / parts, DIGITS) for i in range(1, parts)]
    return [start, *inner, end]


def _round(rect: Rect) -> Rect:
    return (round(rect[0], DIGITS), round(rect[1], DIGITS), round(rect[2], DIGITS), round(rect[3], DIGITS))


def _feature(code: str, name: str, level: str, parent: str | None, rect: Rect, **extra: Any) -> dict[str, Any]:
    min_lon, min_lat, max_lon, max_lat = rect
    ring = [[min_lon, min_lat], [max_lon, min_lat], [max_lon, max_lat], [min_lon, max_lat], [min_lon, min_lat]]
    return {"type": "Feature",
            "properties": {"code": code, "name": name, "level": level, "parent": parent, "synthetic": True, **extra},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}
