"""Patrol coverage and 漏报 (missed reports).

Coverage of a period [from, to) counts the visits due in it (their slot ends in it) per inspector
and grid: visited on time (checked in before the slot's end), late (after it, before the visit
closed), missed (closed unvisited) and still open (not visited yet; `overdue` when past due).

漏报 — a problem on an inspector's patrol that somebody else reported. A case counts as 漏报 of
inspector X when all of these hold:
- it came from another channel (any source but `patrol`: monitoring, citizens, petitions...);
- X had a visit of a target whose slot contains the moment the case was filed;
- the case is at that target: from the target's own monitoring source (its MN), or filed within
  MISS_RADIUS_M of the target's point;
- X did not report it first: no patrol case reported by X within MISS_RADIUS_M of the target, filed
  from the start of that slot up to the other case.
A case can be 漏报 of several inspectors (the unit's, the town's and the district's, each whose
round had the target); each counts it once. 漏报率 = 漏报数 / (漏报数 + 有效上报数): of the problems
at their targets that became cases, the share they did not report themselves."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from .cases import Case
from .patrol_rounds import NEAR_M, PatrolTask, distance_m
from .patrol_targets import PatrolTarget

MISS_RADIUS_M = NEAR_M
PATROL = "patrol"


@dataclass
class Coverage:
    inspector: str | None
    grid_code: str
    due: int = 0
    on_time: int = 0
    late: int = 0
    missed: int = 0
    open: int = 0
    overdue: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"inspector": self.inspector, "grid": self.grid_code, "due": self.due, "onTime": self.on_time,
                "late": self.late, "missed": self.missed, "open": self.open, "overdue": self.overdue,
                "coverageRate": round(100 * self.on_time / self.due, 2) if self.due else None}


def coverage(conn: Any, tenant: str, start: datetime, end: datetime, now: datetime, *, scope: str | None = None,
             inspector: str | None = None) -> list[Coverage]:
    """Per (inspector, grid): the visits due in [start, end) and what became of them as of `now`."""
    t = PatrolTask.__table__
    q = select(t.c.inspector, t.c.grid_code, t.c.status, t.c.on_time, t.c.slot_end).where(
        t.c.tenant == tenant, t.c.slot_end > start, t.c.slot_end <= end, t.c.status != "cancelled")
    if scope:
        q = q.where(t.c.grid_code.startswith(scope, autoescape=True))
    if inspector is not None:
        q = q.where(t.c.inspector == inspector)
    groups: dict[tuple[str | None, str], Coverage] = {}
    for r in conn.execute(q):
        c = groups.setdefault((r.inspector, r.grid_code), Coverage(r.inspector, r.grid_code))
        c.due += 1
        if r.status == "visited":
            c.on_time += int(bool(r.on_time))
            c.late += int(not r.on_time)
        elif r.status == "missed":
            c.missed += 1
        else:
            c.open += 1
            c.overdue += int(r.slot_end <= now)
    return sorted(groups.values(), key=lambda c: (c.inspector or "", c.grid_code))


def misses(conn: Any, tenant: str, start: datetime, end: datetime) -> dict[str, list[str]]:
    """The cases filed in [start, end) that are 漏报, each with the inspectors it counts against."""
    t, g = PatrolTask.__table__, PatrolTarget.__table__
    visits = conn.execute(select(t.c.inspector, t.c.slot_start, t.c.slot_end, g.c.lon, g.c.lat, g.c.source_mn)
                          .join(g, g.c.id == t.c.target_id)
                          .where(t.c.tenant == tenant, t.c.slot_start < end, t.c.slot_end > start,
                                 t.c.inspector.is_not(None), t.c.status != "cancelled")).all()
    if not visits:  # a city without patrol reads no cases
        return {}
    by_cell: dict[tuple[int, int], list[Any]] = defaultdict(list)
    by_source: dict[str, list[Any]] = defaultdict(list)
    for v in visits:
        by_cell[_cell(v.lon, v.lat)].append(v)
        if v.source_mn:
            by_source[v.source_mn].append(v)
    earliest = min(v.slot_start for v in visits)
    reports: dict[str, list[Any]] = defaultdict(list)
    for r in conn.execute(select(Case.details, Case.lon, Case.lat, Case.created_at).where(
            Case.tenant == tenant, Case.source == PATROL, Case.created_at >= earliest, Case.created_at < end)):
        reporter = (r.details or {}).get("reporter")
        if reporter and r.lon is not None:
            reports[str(reporter)].append(r)
    out: dict[str, list[str]] = {}
    for case in conn.execute(select(Case.id, Case.source_ref, Case.lon, Case.lat, Case.created_at).where(
            Case.tenant == tenant, Case.source != PATROL, Case.created_at >= start, Case.created_at < end)):
        near = by_source.get(case.source_ref or "", []) + ([] if case.lon is None else [
            v for cell in _around(case.lon, case.lat) for v in by_cell.get(cell, ())
            if distance_m(case.lon, case.lat, v.lon, v.lat) <= MISS_RADIUS_M])
        against: list[str] = []
        for v in near:
            if v.inspector in against or not (v.slot_start <= case.created_at < v.slot_end):
                continue
            if not _reported_first(reports.get(v.inspector, ()), v, case.created_at):
                against.append(v.inspector)
        if against:
            out[case.id] = sorted(against)
    return out


CELL_DEG = 0.01  # ≥ 300 m in both directions up to 70° latitude, so a radius spans at most the 3×3 cells around


def _cell(lon: float, lat: float) -> tuple[int, int]:
    return int(lon // CELL_DEG), int(lat // CELL_DEG)


def _around(lon: float, lat: float) -> list[tuple[int, int]]:
    x, y = _cell(lon, lat)
    return [(x + dx, y + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]


def _reported_first(reports: Any, visit: Any, before: datetime) -> bool:
    return any(visit.slot_start <= r.created_at <= before
               and distance_m(r.lon, r.lat, visit.lon, visit.lat) <= MISS_RADIUS_M for r in reports)
