"""Patrol targets (巡查对象): the places the inspectors visit — key enterprises and outlets, places
complained about, others — each with a class, a point and the basic grid unit it lies in.

A target's unit is located from its point (the tenant's grid index) unless one is given, and must
be a current unit of the tenant. The source register's outlets make natural key targets:
`targets_from_sources` adds one per active source with a position (its MN as the target's code)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base, UTCDateTime
from engine.errors import Conflict, InvalidInput, NotFound
from engine.runtime import Runtime

from .grids import Grid, GridIndex
from .sources import MonitoringSource


class PatrolTarget(Base):
    __tablename__ = "patrol_target"
    __table_args__ = (UniqueConstraint("tenant", "code", name="uq_patrol_target_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    code: Mapped[str] = mapped_column(String(64))  # the tenant's own id (an enterprise's credit code, an MN...)
    name: Mapped[str] = mapped_column(String(200))
    target_class: Mapped[str] = mapped_column(String(20))  # patrol_plans.TARGET_CLASSES
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(40), index=True)  # the basic unit it lies in
    source_mn: Mapped[str | None] = mapped_column(String(64))  # its monitoring source, if any
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class NewTarget:
    tenant: str
    code: str
    name: str
    target_class: str
    lon: float
    lat: float
    grid_code: str | None = None
    source_mn: str | None = None
    active: bool = True


def _unit(s: Session, index: GridIndex, t: NewTarget, field: str = "grid") -> str:
    """The basic unit of the target: the one given (a current unit of the tenant) or the one its point is in."""
    if t.grid_code:
        level = s.scalar(select(Grid.level).where(Grid.code == t.grid_code, Grid.tenant == t.tenant,
                                                   Grid.valid_to.is_(None)))
        if level != "unit":
            raise InvalidInput(f"{t.grid_code!r} is not a current grid unit of {t.tenant}", fields=[field])
        return t.grid_code
    unit = index.locate(t.lon, t.lat)
    if unit is None:
        raise InvalidInput(f"({t.lon:.5f}, {t.lat:.5f}) lies in no grid unit of {t.tenant}", fields=["lon", "lat"])
    return unit


def create_target(rt: Runtime, index: GridIndex, t: NewTarget) -> PatrolTarget:
    now = rt.clock.now()
    try:
        with rt.db.transaction() as s:
            row = PatrolTarget(tenant=t.tenant, code=t.code, name=t.name, target_class=t.target_class, lon=t.lon,
                               lat=t.lat, grid_code=_unit(s, index, t), source_mn=t.source_mn, active=t.active,
                               created_at=now, updated_at=now)
            s.add(row)
            s.flush()
            s.expunge(row)
    except IntegrityError:
        raise Conflict(f"target {t.code!r} exists in {t.tenant}", fields=["code"]) from None
    return row


def update_target(rt: Runtime, index: GridIndex, target_id: int, changes: dict[str, Any],
                  scope: str | None) -> PatrolTarget:
    """Change some of a target's fields (a moved point is located again unless a grid is given)."""
    with rt.db.transaction() as s:
        row = s.get(PatrolTarget, target_id, with_for_update=True)
        if row is None or not visible(row, scope):
            raise NotFound(f"no patrol target {target_id}")
        for name in ("name", "target_class", "active", "source_mn"):
            if name in changes:
                setattr(row, name, changes[name])
        if {"lon", "lat", "grid_code"} & changes.keys():
            row.lon, row.lat = changes.get("lon", row.lon), changes.get("lat", row.lat)
            row.grid_code = _unit(s, index, NewTarget(row.tenant, row.code, row.name, row.target_class, row.lon,
                                                      row.lat, changes.get("grid_code")))
        row.updated_at = rt.clock.now()
        s.flush()
        s.expunge(row)
    return row


def visible(row: PatrolTarget, scope: str | None) -> bool:
    """Admins and leaders pass scope None; others see the targets in their subtree."""
    return scope is None or row.grid_code.startswith(scope)


def list_targets(rt: Runtime, tenant: str, scope: str | None, *, grid: str | None = None,
                 target_class: str | None = None, active: bool | None = None, offset: int = 0,
                 limit: int = 100) -> tuple[list[PatrolTarget], int]:
    from sqlalchemy import func

    q = select(PatrolTarget).where(PatrolTarget.tenant == tenant)
    for prefix in (scope, grid):
        if prefix:
            q = q.where(PatrolTarget.grid_code.startswith(prefix, autoescape=True))
    if target_class:
        q = q.where(PatrolTarget.target_class == target_class)
    if active is not None:
        q = q.where(PatrolTarget.active.is_(active))
    with rt.db.session() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        rows = list(s.scalars(q.order_by(PatrolTarget.code).offset(offset).limit(limit)))
    return rows, total


def get_target(rt: Runtime, target_id: int, scope: str | None) -> PatrolTarget:
    with rt.db.session() as s:
        row = s.get(PatrolTarget, target_id)
    if row is None or not visible(row, scope):
        raise NotFound(f"no patrol target {target_id}")
    return row


def import_targets(rt: Runtime, index: GridIndex, targets: list[NewTarget]) -> list[PatrolTarget]:
    """Many targets, all or nothing; every problem named by its item (`items.3.lon`)."""
    problems: dict[str, list[str]] = {}
    now = rt.clock.now()
    with rt.db.transaction() as s:
        taken = set(s.scalars(select(PatrolTarget.code).where(
            PatrolTarget.tenant.in_({t.tenant for t in targets}), PatrolTarget.code.in_([t.code for t in targets]))))
        rows, seen = [], set()
        for i, t in enumerate(targets):
            if t.code in taken or (t.tenant, t.code) in seen:
                problems.setdefault(f"items.{i}.code", []).append(f"target {t.code!r} exists in {t.tenant}")
                continue
            seen.add((t.tenant, t.code))
            try:
                unit = _unit(s, index, t)
            except InvalidInput as exc:
                for f in exc.fields or ["grid"]:
                    problems.setdefault(f"items.{i}.{f}", []).append(str(exc))
                continue
            rows.append(PatrolTarget(tenant=t.tenant, code=t.code, name=t.name, target_class=t.target_class,
                                     lon=t.lon, lat=t.lat, grid_code=unit, source_mn=t.source_mn, active=t.active,
                                     created_at=now, updated_at=now))
        if problems:
            raise InvalidInput(f"{len(problems)} problem(s); nothing imported", fields=problems)
        s.add_all(rows)
        s.flush()
        for r in rows:
            s.expunge(r)
    return rows


def targets_from_sources(rt: Runtime, index: GridIndex, tenant: str, target_class: str = "key") -> list[PatrolTarget]:
    """A target for each active monitoring source of the tenant with a position and no target yet."""
    with rt.db.session() as s:
        have = set(s.scalars(select(PatrolTarget.source_mn).where(PatrolTarget.tenant == tenant,
                                                                  PatrolTarget.source_mn.is_not(None))))
        sources = s.scalars(select(MonitoringSource).where(
            MonitoringSource.tenant == tenant, MonitoringSource.active.is_(True), MonitoringSource.lon.is_not(None),
            MonitoringSource.lat.is_not(None)).order_by(MonitoringSource.mn)).all()
        new = [NewTarget(tenant, src.mn, src.enterprise or src.name, target_class, src.lon, src.lat,
                         grid_code=None, source_mn=src.mn)
               for src in sources  # lon and lat are never None here (the query): the test narrows their types
               if src.lon is not None and src.lat is not None and src.mn not in have
               and index.locate(src.lon, src.lat) is not None]
    return import_targets(rt, index, new) if new else []
