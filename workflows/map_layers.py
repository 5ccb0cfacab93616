"""What the map (网格一张图) draws over the grids, as GeoJSON point features: open cases at their stage
(overdue when any open task is past due), monitoring sources in their state (online, offline,
exceeding) and each inspector's latest check-in. Each is limited to the tenant, the viewer's grids
and a bounding box; none holds a rule of its own (stage and overdue come from the open tasks, a
source's state from its rule states and when it was last heard from)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select

from engine.db import Database
from engine.models import HumanTask
from engine.visibility import Viewer, grid_filter

from .cases import Case
from .evidence import Evidence
from .grid_shapes import BBox
from .monitoring_rules import DEVICE, EXCEEDANCE, OFFLINE, RuleState
from .sources import MonitoringSource

MAX_POINTS = 5_000
# env_case's user tasks in the order a case meets them: a case with several open (handling and its
# overdue 督办) is drawn at the first. A case with none open waits on something else (enforcement).
STAGE_ORDER = ("review", "dispatch", "sign_for", "escalate_sign", "handle", "escalate_handle", "approve_extension",
               "approve_return", "approve_deferral", "deferred", "verify")
WAITING = "waiting"
SOURCE_STATES = ("online", "offline", "exceeding")


@dataclass(frozen=True)
class Points:
    features: list[dict[str, Any]]
    truncated: bool  # more points lay in the box than one answer carries
    unplaced: int = 0  # open cases of the viewer without a location (not drawn)


def _point(lon: float, lat: float, fid: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": properties}


def _in_box(lon_col: Any, lat_col: Any, bbox: BBox | None) -> list[Any]:
    if bbox is None:
        return [lon_col.is_not(None), lat_col.is_not(None)]
    return [lon_col.between(bbox.min_lon, bbox.max_lon), lat_col.between(bbox.min_lat, bbox.max_lat)]


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def stage_of(elements: list[str]) -> str:
    """A case's stage: the first of its open tasks in the loop's order (WAITING when none is open)."""
    if not elements:
        return WAITING
    return min(elements, key=lambda e: (STAGE_ORDER.index(e) if e in STAGE_ORDER else len(STAGE_ORDER), e))


def open_cases(db: Database, viewer: Viewer, tenant: str, bbox: BBox | None, now: datetime) -> Points:
    """The viewer's open cases with a location in the box: stage, overdue, earliest due date."""
    mine = (Case.tenant == tenant, Case.status == "open", grid_filter(viewer, Case.grid_code))
    with db.session() as s:
        cases = s.execute(select(Case.id, Case.category, Case.source, Case.urgent, Case.grid_code, Case.lon,
                                 Case.lat, Case.instance_id, Case.deferred_until)
                          .where(*mine, *_in_box(Case.lon, Case.lat, bbox))
                          .order_by(Case.created_at.desc(), Case.id).limit(MAX_POINTS + 1)).all()
        truncated, cases = len(cases) > MAX_POINTS, cases[:MAX_POINTS]
        unplaced = s.scalar(select(func.count()).select_from(Case).where(*mine, Case.lon.is_(None))) or 0
        tasks: dict[str, list[tuple[str, datetime | None]]] = {}
        instance_ids = [c.instance_id for c in cases if c.instance_id]
        for start in range(0, len(instance_ids), 500):
            chunk = instance_ids[start:start + 500]
            for t in s.execute(select(HumanTask.instance_id, HumanTask.element_id, HumanTask.due_at)
                               .where(HumanTask.instance_id.in_(chunk), HumanTask.status == "open")):
                tasks.setdefault(t.instance_id, []).append((t.element_id, t.due_at))
    features = []
    for c in cases:
        open_tasks = tasks.get(c.instance_id or "", [])
        dues = [due for _, due in open_tasks if due is not None]
        features.append(_point(c.lon, c.lat, c.id, {
            "kind": "case", "caseId": c.id, "category": c.category, "source": c.source, "urgent": c.urgent,
            "grid": c.grid_code, "stage": stage_of([e for e, _ in open_tasks]),
            "tasks": sorted(e for e, _ in open_tasks), "overdue": any(due < now for due in dues),
            "due": _iso(min(dues, default=None)), "deferredUntil": _iso(c.deferred_until)}))
    return Points(features, truncated, unplaced)


def source_state(rules: set[str], last_seen_at: datetime | None, offline_after_s: int, now: datetime) -> str:
    """Offline (silent past its limit, never heard from, or an open offline episode) before exceeding:
    a silent source's last exceedance says nothing about now; otherwise exceeding, else online."""
    silent = last_seen_at is None or last_seen_at + timedelta(seconds=offline_after_s) <= now
    if OFFLINE in rules or silent:
        return "offline"
    return "exceeding" if EXCEEDANCE in rules else "online"


def monitoring_sources(db: Database, viewer: Viewer, tenant: str, bbox: BBox | None, now: datetime,
                       state: str | None = None) -> Points:
    """The viewer's active sources with a location in the box, each in its state (or only `state`)."""
    with db.session() as s:
        rows = s.execute(select(MonitoringSource.mn, MonitoringSource.name, MonitoringSource.kind,
                                MonitoringSource.enterprise, MonitoringSource.grid_code, MonitoringSource.lon,
                                MonitoringSource.lat, MonitoringSource.last_seen_at,
                                MonitoringSource.offline_after_s)
                         .where(MonitoringSource.tenant == tenant, MonitoringSource.active.is_(True),
                                grid_filter(viewer, MonitoringSource.grid_code),
                                *_in_box(MonitoringSource.lon, MonitoringSource.lat, bbox))
                         .order_by(MonitoringSource.mn)).all()
        rules: dict[str, set[str]] = {}
        mns = [r.mn for r in rows]
        for start in range(0, len(mns), 500):
            for mn, rule in s.execute(select(RuleState.mn, RuleState.rule).where(
                    RuleState.mn.in_(mns[start:start + 500]), RuleState.active.is_(True))):
                rules.setdefault(mn, set()).add(rule)
    features = []
    for r in rows:
        active = rules.get(r.mn, set())
        current = source_state(active, r.last_seen_at, r.offline_after_s, now)
        if state is not None and current != state:
            continue
        features.append(_point(r.lon, r.lat, r.mn, {
            "kind": "source", "mn": r.mn, "name": r.name, "sourceKind": r.kind, "enterprise": r.enterprise,
            "grid": r.grid_code, "state": current, "exceeding": EXCEEDANCE in active,
            "deviceFault": DEVICE in active, "lastSeenAt": _iso(r.last_seen_at)}))
    truncated = len(features) > MAX_POINTS
    return Points(features[:MAX_POINTS], truncated)


def latest_checkins(db: Database, viewer: Viewer, tenant: str, bbox: BBox | None, since: datetime) -> Points:
    """Each inspector's latest check-in since `since` on a case the viewer may see, if it lies in the box."""
    on_case = and_(Case.instance_id == Evidence.instance_id, Case.tenant == tenant,
                   grid_filter(viewer, Case.grid_code))
    latest = (select(func.max(Evidence.id).label("id")).join(Case, on_case)
              .where(Evidence.kind == "checkin", Evidence.created_at >= since)
              .group_by(Evidence.created_by).subquery())
    with db.session() as s:
        rows = s.execute(select(Evidence.id, Evidence.created_by, Evidence.created_at, Evidence.lon, Evidence.lat,
                                Evidence.task_id, Evidence.distance_m, Case.id.label("case_id"), Case.grid_code)
                         .join(latest, latest.c.id == Evidence.id).join(Case, on_case)
                         .where(*_in_box(Evidence.lon, Evidence.lat, bbox))
                         .order_by(Evidence.created_at.desc()).limit(MAX_POINTS + 1)).all()
    features = [_point(r.lon, r.lat, f"checkin-{r.id}", {
        "kind": "checkin", "inspector": r.created_by, "at": r.created_at.isoformat(), "caseId": r.case_id,
        "taskId": r.task_id, "grid": r.grid_code, "outsideM": r.distance_m}) for r in rows[:MAX_POINTS]]
    return Points(features, len(rows) > MAX_POINTS)
