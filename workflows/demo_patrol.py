"""Demo patrol targets, so that the demo city's inspectors get visits from the first round: in
each town, a key enterprise in its first unit and a place complained about in its second. They are
**synthetic** (the plan gives only counts of the city's monitored enterprises: 331 online, no names
or places), placed at a point inside their unit and named as such. Idempotent: a tenant that has
targets is left alone."""

from __future__ import annotations

import shapely
from sqlalchemy import func, select

from engine.runtime import Runtime

from .grids import Grid
from .patrol_targets import PatrolTarget

KINDS = (("key", "重点排污单位（合成）"), ("complained", "信访投诉点（合成）"))


def seed_demo_targets(rt: Runtime, tenant: str) -> int:
    """The targets added (0 when the tenant has some already, or no units)."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        if s.scalar(select(func.count()).select_from(PatrolTarget).where(PatrolTarget.tenant == tenant)):
            return 0
        units = s.execute(select(Grid.code, Grid.parent_code, Grid.geometry).where(
            Grid.tenant == tenant, Grid.level == "unit", Grid.valid_to.is_(None)).order_by(Grid.code)).all()
        by_town: dict[str, list] = {}
        for u in units:
            by_town.setdefault(u.parent_code or "", []).append(u)
        rows = []
        for town_units in by_town.values():
            for (target_class, label), unit in zip(KINDS, town_units, strict=False):
                point = shapely.from_geojson(unit.geometry).representative_point()
                rows.append(PatrolTarget(tenant=tenant, code=f"DEMO-{unit.code}", name=f"{label} {unit.code[-6:]}",
                                         target_class=target_class, lon=round(point.x, 6), lat=round(point.y, 6),
                                         grid_code=unit.code, source_mn=None, active=True, created_at=now,
                                         updated_at=now))
        s.add_all(rows)
    return len(rows)
