"""Patrol rounds: the engine generates the visits, the inspector checks in at the target and records
what they found.

The bundled `patrol_round` process starts every day at 00:00 China time (a timer start event on a
cycle: once per period however many schedulers run). Its one service task, `patrol.open_round`,
opens — in the round's own transaction — a `patrol_task` row and a `patrol_visit` instance for every
active target and every plan of its class whose current slot has no visit yet (the unique key
(target, level, night, slot start) makes a second opening of a slot impossible, not just unlikely).
The visit goes to the inspector responsible for the target's grid at the plan's level: the one on
duty there now (the roster, as routing does), else the grid's own inspector; with nobody, it is
offered to the grid's inspectors. It is due at the slot's end; a visit recorded later is late, and
at `close_at` (one more slot, at most 7 days) the visit's timer closes it as missed.

Visiting is `patrol_visit`'s user task `visit`: a check-in at the target (`check_in_at_target`: GPS
within the tolerance of the target's point, at night for a night check) and then completing the
task with `finding` (none / problem / target_closed). A problem is filed as a case through the
patrol intake (workflows/patrol.py) with `file_finding`, which links the case to the visit."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Boolean, Float, Index, String, Table, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.change import new_instance
from engine.db import Base, UTCDateTime
from engine.errors import InvalidInput, NotFound
from engine.models import ProcessDefinition
from engine.operations import OperationContext
from engine.runtime import Runtime

from .cases import Case
from .evidence import Evidence, EvidenceError
from .grids import Grid
from .patrol_plans import Plan, at_night, plans_of, slot
from .patrol_targets import PatrolTarget
from .people import Person
from .routing import on_duty

ROUND, VISIT = "patrol_round", "patrol_visit"
VISIT_TASK = "visit"
FINDINGS = ("none", "problem", "target_closed")
STATUSES = ("open", "visited", "missed", "cancelled")
MAX_GRACE = timedelta(days=7)
NEAR_M = 300.0  # a case this close to a target is at the target (a finding of the visit; 漏报 in patrol_coverage)
METERS_PER_DEGREE = 111_320.0
PD = ProcessDefinition.__table__


class PatrolTask(Base):
    """One visit a plan wants: a target, by the inspector of one grid level, in one slot."""

    __tablename__ = "patrol_task"
    __table_args__ = (
        UniqueConstraint("target_id", "grid_level", "night", "slot_start", name="uq_patrol_task_slot"),
        Index("ix_patrol_task_due", "tenant", "slot_end"),
        Index("ix_patrol_task_instance", "instance_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12))
    target_id: Mapped[int] = mapped_column()
    grid_level: Mapped[str] = mapped_column(String(10))
    grid_code: Mapped[str] = mapped_column(String(40))  # the grid at the plan's level the target lies in
    cadence: Mapped[str] = mapped_column(String(20))
    night: Mapped[bool] = mapped_column(Boolean, default=False)
    slot_start: Mapped[datetime] = mapped_column(UTCDateTime)
    slot_end: Mapped[datetime] = mapped_column(UTCDateTime)  # due
    close_at: Mapped[datetime] = mapped_column(UTCDateTime)  # missed when not visited by then
    inspector: Mapped[str | None] = mapped_column(String(200))  # routed to; whoever visits replaces it
    instance_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(12))  # STATUSES
    visited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the check-in that counted
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    finding: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


PATROL_TASKS = cast(Table, PatrolTask.__table__)


class PatrolFinding(Base):
    """A case filed from a visit (the patrol intake's case or the open case it joined)."""

    __tablename__ = "patrol_finding"
    __table_args__ = (UniqueConstraint("patrol_task_id", "case_id", name="uq_patrol_finding"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    patrol_task_id: Mapped[str] = mapped_column(String(32), index=True)
    case_id: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(20))  # the intake's: filed | occurrence | repeat
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)


# -- opening a round (the service task of patrol_round) --------------------------------------------------

@dataclass(frozen=True)
class _Definition:
    id: int
    key: str


def register(rt: Runtime) -> None:
    rt.registry.register("patrol.open_round", lambda params, ctx: open_round(rt, ctx))
    rt.registry.register("patrol.visited", visited)
    rt.registry.register("patrol.missed", missed)


def open_round(rt: Runtime, ctx: OperationContext) -> dict[str, Any]:
    """`patrol.open_round`: every slot current now that has no visit yet gets one (all tenants)."""
    conn, now = ctx.conn, ctx.now
    if conn is None or now is None:
        raise RuntimeError("patrol.open_round runs inside the change (a synchronous operation)")
    definition = conn.execute(select(PD.c.id, PD.c.key, PD.c.version, PD.c.suspended)
                              .where(PD.c.key == VISIT, PD.c.is_latest)).first()
    if definition is None:
        raise ValueError(f"{VISIT} is not deployed: the round cannot open visits")
    if definition.suspended:
        raise ValueError(f"version {definition.version} of {VISIT} is suspended: the round opens no visits")
    opened = 0
    tenants = conn.execute(select(PatrolTarget.tenant).where(PatrolTarget.active.is_(True)).distinct()).scalars()
    for tenant in sorted(tenants):
        opened += _open_tenant(rt, conn, tenant, now, definition)
    return {"opened": opened}


def _open_tenant(rt: Runtime, conn: Any, tenant: str, now: datetime, definition: Any) -> int:
    plans, _defaults = plans_of(conn, tenant)
    grids = {r.code: (r.level, r.parent_code) for r in conn.execute(
        select(Grid.code, Grid.level, Grid.parent_code).where(Grid.tenant == tenant, Grid.valid_to.is_(None)))}
    targets = _targets(conn, tenant)
    have = {(r.target_id, r.grid_level, r.night, r.slot_start) for r in conn.execute(
        select(PatrolTask.target_id, PatrolTask.grid_level, PatrolTask.night, PatrolTask.slot_start)
        .where(PatrolTask.tenant == tenant, PatrolTask.slot_end > now))}
    opened = 0
    session = Session(bind=conn)
    for plan in plans:
        start, end = slot(plan, now)
        for t in (t for t in targets if t.target_class == plan.target_class):
            grid = _ancestor(grids, t.grid_code, plan.grid_level)
            if grid is None or (t.id, plan.grid_level, plan.night, start) in have:
                continue
            inspector = _responsible(session, grid, now)
            _open_visit(rt, conn, definition, tenant, t, plan, grid, inspector, start, end, now)
            opened += 1
    return opened


def _targets(conn: Any, tenant: str) -> list[Any]:
    t = PatrolTarget.__table__
    return list(conn.execute(select(t.c.id, t.c.code, t.c.name, t.c.target_class, t.c.grid_code, t.c.lon, t.c.lat)
                             .where(t.c.tenant == tenant, t.c.active.is_(True)).order_by(t.c.id)))


def _ancestor(grids: Mapping[str, tuple[str, str | None]], unit: str, level: str) -> str | None:
    code: str | None = unit
    for _ in range(8):
        if code is None or code not in grids:
            return None
        if grids[code][0] == level:
            return code
        code = grids[code][1]
    return None


def _responsible(s: Session, grid: str, at: datetime) -> str | None:
    """The inspector on duty for the grid now (the roster), else the grid's own inspector, else nobody."""
    people = on_duty(s, grid_code=grid, category="patrol", at=at, post="inspector")
    if people:
        return people[0]
    return s.scalar(select(Person.username).where(Person.grid_code == grid, Person.post == "inspector",
                                                  Person.active.is_(True), Person.username.is_not(None))
                    .order_by(Person.username).limit(1))


def _open_visit(rt: Runtime, conn: Any, definition: Any, tenant: str, t: Any, plan: Plan, grid: str,
                inspector: str | None, start: datetime, end: datetime, now: datetime) -> None:
    task_id = uuid.uuid4().hex
    close_at = end + min(end - start, MAX_GRACE)
    variables = {"patrol_task_id": task_id, "target_id": t.id, "target_code": t.code, "target_name": t.name,
                 "target_class": t.target_class, "lon": t.lon, "lat": t.lat, "grid": grid,
                 "grid_level": plan.grid_level, "inspector": inspector or "", "night": plan.night,
                 "due": end.isoformat(), "close_at": close_at.isoformat()}
    conn.execute(PATROL_TASKS.insert().values(
        id=task_id, tenant=tenant, target_id=t.id, grid_level=plan.grid_level,
        grid_code=grid, cadence=plan.cadence, night=plan.night, slot_start=start, slot_end=end, close_at=close_at,
        inspector=inspector, status="open", created_at=now))
    with new_instance(rt, _Definition(definition.id, definition.key), conn, "scheduler", f"patrol:{task_id}",
                      variables, scope=grid) as ch:
        ch.record("instance.started", definition_id=definition.id, version=definition.version,
                  business_key=f"patrol:{task_id}", variables=variables)
    conn.execute(update(PatrolTask).where(PatrolTask.id == task_id).values(instance_id=ch.instance.id))


# -- the visit's end (service tasks of patrol_visit) ---------------------------------------------------

def visited(params: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    """`patrol.visited`: the visit is recorded from its first check-in at the target (on time when
    before the slot's end)."""
    conn = ctx.conn
    if conn is None:
        raise RuntimeError("patrol.visited runs inside the change")
    task = _task_of(conn, ctx.instance_id)
    checkin = _first_checkin(conn, ctx.instance_id, task.night)
    if checkin is None:
        raise ValueError("the visit has no check-in at the target")
    on_time = checkin.created_at < task.slot_end
    conn.execute(update(PatrolTask).where(PatrolTask.id == task.id).values(
        status="visited", visited_at=checkin.created_at, on_time=on_time, inspector=checkin.created_by,
        finding=str(params.get("finding") or "none"), note=(params.get("note") or None), ended_at=ctx.now))
    return {"on_time": on_time}


def missed(_params: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    """`patrol.missed`: the visit's last chance passed without a visit."""
    if ctx.conn is None:
        raise RuntimeError("patrol.missed runs inside the change")
    ctx.conn.execute(update(PatrolTask).where(PatrolTask.instance_id == ctx.instance_id,
                                              PatrolTask.status == "open")
                     .values(status="missed", ended_at=ctx.now))
    return {"missed": True}


def _task_of(conn: Any, instance_id: str) -> Any:
    t = PatrolTask.__table__
    row = conn.execute(select(*t.c).where(t.c.instance_id == instance_id)).first()
    if row is None:
        raise ValueError(f"instance {instance_id} is no patrol visit")
    return row


def _first_checkin(conn: Any, instance_id: str, night: bool) -> Any:
    e = Evidence.__table__
    for row in conn.execute(select(e.c.created_at, e.c.created_by).where(
            e.c.instance_id == instance_id, e.c.kind == "checkin").order_by(e.c.id)):
        if not night or at_night(row.created_at):
            return row
    return None


# -- on site (called by the task endpoints) -------------------------------------------------------------

def visit_of(rt: Runtime, instance_id: str) -> tuple[Any, Any] | None:
    """The patrol task and its target behind a visit instance (None: the instance is no visit)."""
    with rt.db.session() as s:
        task = s.scalar(select(PatrolTask).where(PatrolTask.instance_id == instance_id))
        if task is None:
            return None
        return task, s.get(PatrolTarget, task.target_id)


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(min(1.0, a)))


def check_in_at_target(rt: Runtime, human_task_id: str, instance_id: str, actor: str, lon: float, lat: float,
                       tolerance_m: float) -> Evidence:
    """A check-in for a visit: within `tolerance_m` of the target's point (a night check at night)."""
    found = visit_of(rt, instance_id)
    if found is None:
        raise NotFound(f"instance {instance_id} is no patrol visit")
    task, target = found
    now = rt.clock.now()
    away = distance_m(lon, lat, target.lon, target.lat)
    if away > tolerance_m:
        raise EvidenceError("lon", f"the check-in is {away:.0f} m from {target.name} (tolerance {tolerance_m:.0f} m)")
    if task.night and not at_night(now):
        raise EvidenceError("task", "a night check is checked in between 18:00 and 06:00")
    row = Evidence(task_id=human_task_id, instance_id=instance_id, kind="checkin", lon=lon, lat=lat,
                   distance_m=round(away, 1), created_by=actor, created_at=now)
    with rt.db.transaction() as s:
        s.add(row)
    return row


def missing_for_visit(rt: Runtime, instance_id: str, variables: Mapping[str, Any]) -> list[str]:
    """What completing the visit still lacks: a check-in at the target; a filed case when it says
    it found a problem."""
    found = visit_of(rt, instance_id)
    if found is None:
        return []
    task, _target = found
    with rt.db.read() as conn:
        lacking = [] if _first_checkin(conn, instance_id, task.night) else [
            "a check-in at the target" + (" at night" if task.night else "")]
        if variables.get("finding") == "problem" and not _reported(conn, task, _target):
            lacking.append("a problem filed from the visit (POST /patrol/tasks/{id}/findings, or POST /reports at "
                           "the target)")
    return lacking


def _reported(conn: Any, task: Any, target: Any) -> bool:
    """A case filed from the visit, or a patrol report of its inspector at the target since the slot began
    (the phone's 上报问题 page files through POST /reports)."""
    if conn.execute(select(PatrolFinding.id).where(PatrolFinding.patrol_task_id == task.id).limit(1)).first():
        return True
    rows = conn.execute(select(Case.lon, Case.lat, Case.details).where(
        Case.tenant == task.tenant, Case.source == "patrol", Case.created_at >= task.slot_start,
        Case.lon.is_not(None)))
    return any((r.details or {}).get("reporter") == task.inspector
               and distance_m(r.lon, r.lat, target.lon, target.lat) <= NEAR_M for r in rows)


def record_finding(rt: Runtime, patrol_task_id: str, case_id: str, outcome: str, actor: str, lon: float,
                   lat: float) -> None:
    with rt.db.transaction() as s:
        if s.scalar(select(PatrolFinding.id).where(PatrolFinding.patrol_task_id == patrol_task_id,
                                                   PatrolFinding.case_id == case_id)) is None:
            s.add(PatrolFinding(patrol_task_id=patrol_task_id, case_id=case_id, outcome=outcome, created_by=actor,
                                created_at=rt.clock.now(), lon=lon, lat=lat))


def open_visit_for(rt: Runtime, patrol_task_id: str) -> tuple[Any, Any]:
    """An open patrol task and its target, for filing a finding; InvalidInput when it is not open."""
    with rt.db.session() as s:
        task = s.get(PatrolTask, patrol_task_id)
        if task is None:
            raise NotFound(f"no patrol task {patrol_task_id}")
        target = s.get(PatrolTarget, task.target_id)
    if task.status != "open":
        raise InvalidInput(f"the patrol task is {task.status}", fields=["task"])
    return task, target
