"""The grid hierarchy (city → district → town/street → basic unit) and the point-to-unit index.

Rows are versioned: codes and borders change over time, and old cases and assessments must still
name the grid they were routed to, so a re-import closes a row's validity (`valid_to`) instead of
deleting it. A row is current while `valid_to` is NULL; at most one current row per code.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import shapely
from sqlalchemy import JSON, Float, Index, String, Text, or_, select, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, Database, UTCDateTime
from engine.models import BigId

LEVELS: tuple[str, ...] = ("city", "district", "town", "unit")
"""Grid levels from the top; a grid's parent is always exactly one level up."""


class Grid(Base):
    """One version of one grid cell of a tenant (a city), with its GeoJSON border and bbox."""

    __tablename__ = "grid"
    __table_args__ = (
        Index("uq_grid_current_code", "code", unique=True,
              postgresql_where=text("valid_to IS NULL"), sqlite_where=text("valid_to IS NULL")),
        Index("ix_grid_tenant_code", "tenant", "code"),
        Index("ix_grid_tenant_parent", "tenant", "parent_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(40))  # the city's GB/T 2260 code, e.g. "320700"
    code: Mapped[str] = mapped_column(String(40))  # 6 city/district, 9 town, 12 village, 15 unit
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(10))  # city | district | town | unit
    parent_code: Mapped[str | None] = mapped_column(String(40))  # NULL for the city
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)  # NULL = current
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON Polygon/MultiPolygon, WGS84 lon/lat
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # other feature properties


@dataclass(frozen=True)
class GridInfo:
    code: str
    name: str
    level: str
    parent_code: str | None


class GridIndex:
    """In-memory routing index of one tenant at one moment: an STRtree over the basic units.

    Load it once and keep it (it is immutable); reload after an import. A point on a border
    shared by several units goes to the smallest code, so routing is deterministic.
    """

    def __init__(self, tenant: str, grids: dict[str, GridInfo], unit_codes: list[str],
                 unit_geometries: np.ndarray) -> None:
        self.tenant = tenant
        self.grids = grids
        self.city_code: str | None = next((g.code for g in grids.values() if g.level == "city"), None)
        self._codes = unit_codes
        self._geoms = unit_geometries
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)

    @classmethod
    def load(cls, db: Database, tenant: str, at: datetime | None = None) -> GridIndex:
        """The tenant's grids valid at `at` (default: the current rows)."""
        query = select(Grid.code, Grid.name, Grid.level, Grid.parent_code, Grid.geometry).where(
            Grid.tenant == tenant)
        if at is None:
            query = query.where(Grid.valid_to.is_(None))
        else:
            query = query.where(Grid.valid_from <= at, or_(Grid.valid_to.is_(None), Grid.valid_to > at))
        with db.session() as session:
            rows = session.execute(query.order_by(Grid.code)).all()
        grids = {r.code: GridInfo(r.code, r.name, r.level, r.parent_code) for r in rows}
        units = [r for r in rows if r.level == "unit"]
        geoms = shapely.from_geojson([r.geometry for r in units]) if units else np.array([], dtype=object)
        return cls(tenant, grids, [r.code for r in units], geoms)

    def locate(self, lon: float, lat: float) -> str | None:
        """The code of the basic unit containing (lon, lat), borders included; None outside all."""
        if not (math.isfinite(lon) and math.isfinite(lat)) or not self._codes:
            return None
        point = shapely.Point(lon, lat)
        candidates = self._tree.query(point)  # bbox hits only
        if len(candidates) == 0:
            return None
        hits = candidates[shapely.covers(self._geoms[candidates], point)]
        return min((self._codes[i] for i in hits), default=None)

    def ancestors(self, code: str) -> list[str]:
        """The chain from `code` itself up to the city, e.g. [unit, town, district, city]: the
        order in which routing falls back when nobody is on duty. KeyError for an unknown code."""
        chain: list[str] = []
        current: str | None = code
        while current is not None:
            chain.append(current)
            current = self.grids[current].parent_code
            if len(chain) > len(LEVELS):  # defensive: import forbids cycles, but never loop forever
                raise ValueError(f"grid hierarchy of {code} is cyclic")
        return chain


def point_inside(db: Database, code: str) -> tuple[float, float]:
    """(lon, lat) of a point surely inside the grid's current polygon (for demos and tests)."""
    with db.session() as s:
        geometry = s.scalar(select(Grid.geometry).where(Grid.code == code, Grid.valid_to.is_(None)))
    if geometry is None:
        raise KeyError(code)
    p = shapely.from_geojson(geometry).representative_point()
    return p.x, p.y


class GridIndexCache:
    """One current index per tenant for this process; an import through this process replaces it
    at once, one through another process is picked up within `max_age` seconds."""

    def __init__(self, db: Database, max_age: float = 300.0) -> None:
        self._db = db
        self._max_age = max_age
        self._indexes: dict[str, tuple[float, GridIndex]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> GridIndex:
        with self._lock:
            cached = self._indexes.get(tenant)
            if cached is not None and time.monotonic() - cached[0] <= self._max_age:
                return cached[1]
        index = GridIndex.load(self._db, tenant)
        with self._lock:
            self._indexes[tenant] = (time.monotonic(), index)
        return index

    def invalidate(self, tenant: str) -> None:
        with self._lock:
            self._indexes.pop(tenant, None)
