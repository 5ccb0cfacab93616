"""A few demo cases, one in each stage of the loop, so that a newcomer's home page and case list
are not empty: awaiting review (an alarm and a citizen report), dispatched but not signed for, on
site, awaiting verification, closed, and closed as invalid. They are driven through the real
process, with real (synthetic) evidence, exactly as users would. Idempotent: a tenant that has
cases is left alone."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from engine import definitions, instances, tasks
from engine.errors import NotFound
from engine.runtime import Runtime

from .cases import CASE_PROCESS, Alarm, Case, file_alarm
from .evidence import Place, check_in, store_photo
from .grids import GridIndex, point_inside

Step = tuple[str, dict[str, Any]]
VALID: list[Step] = [("review", {"review_result": "valid"}), ("dispatch", {})]
ON_SITE: list[Step] = [*VALID, ("sign_for", {})]
HANDLED: list[Step] = [*ON_SITE, ("handle", {"handle_result": "done", "finding_kind": "rectified",
                                             "findings": "现场已整改 Rectified on site"})]
# external id, source, category, description, the steps it has been through
DEMO_CASES: list[tuple[str, str, str, str, list[Step]]] = [
    ("DEMO-1", "monitoring", "air.exceedance", "颗粒物小时均值超标 PM hourly average over the limit", []),
    ("DEMO-2", "citizen", "citizen.report", "夜间施工噪声 Construction noise at night", []),
    ("DEMO-3", "patrol", "noise", "工地噪声 Building-site noise", VALID),
    ("DEMO-4", "monitoring", "water.exceedance", "COD 超标 COD over the limit", ON_SITE),
    ("DEMO-5", "patrol", "solid_waste", "河道旁固废倾倒 Waste dumped by the river", HANDLED),
    ("DEMO-6", "citizen", "solid_waste", "建筑垃圾堆放 Construction waste", [*HANDLED, ("verify", {"verified": True})]),
    ("DEMO-7", "device", "device.fault", "数采仪离线 Data logger offline",
     [("review", {"review_result": "invalid", "invalid_reason": "网络中断已恢复 Network restored"})]),
]


def seed_demo_cases(rt: Runtime, tenant: str, storage: Path) -> int:
    """File the demo cases; 0 when the tenant already has cases or env_case is not deployed."""
    with rt.db.session() as s:
        if s.scalar(select(func.count()).select_from(Case).where(Case.tenant == tenant)):
            return 0
    try:
        definitions.latest(rt, CASE_PROCESS)
    except NotFound:
        return 0
    index = GridIndex.load(rt.db, tenant)
    units = sorted(code for code, g in index.grids.items() if g.level == "unit")
    for n, (external_id, source, category, description, steps) in enumerate(DEMO_CASES):
        unit = units[(n * 37) % len(units)]
        lon, lat = point_inside(rt.db, unit)
        case = file_alarm(rt, index, Alarm(tenant=tenant, source=source, external_id=external_id,
                                           category=category, occurred_at=rt.clock.now(), lon=lon, lat=lat,
                                           description=description, details={"demo": True}), "system:demo").case
        for element, variables in steps:
            _act(rt, case, element, variables, (lon, lat), storage)
    return len(DEMO_CASES)


def _act(rt: Runtime, case: Case, element: str, variables: dict[str, Any], point: tuple[float, float],
         storage: Path) -> None:
    assert case.instance_id is not None  # file_alarm starts the process of every case it files
    (task,) = [t for t in instances.open_tasks(rt, case.instance_id) if t.element_id == element]
    actor = task.assignee or f"sup-{case.grid_code}"
    if element == "handle":
        place = Place(task.id, case.instance_id, case.grid_code)
        check_in(rt.db, rt.clock.now(), place, actor, *point, tolerance_m=0)
        store_photo(rt.db, rt.clock.now(), place, actor, demo_photo(), "image/png", storage, max_bytes=1 << 16)
    tasks.complete(rt, task.id, actor, variables)


def demo_photo() -> bytes:
    """A real 8×8 green PNG (the demo's stand-in for a site photo)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x2e\x8b\x57" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
