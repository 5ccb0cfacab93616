"""Cases: the business view of each env_case instance, and alarm intake.

Intake is one transaction: the case row (unique by source and external id), its first alarm and its
process instance (business key = case id) are written together or not at all, so a crash at any
point leaves either nothing or a case with its process. A case without one (written by an older
version in three steps) gets it when its alarm comes again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import instances
from engine.change import Change
from engine.db import Base, UTCDateTime
from engine.models import BigId
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork

from .grids import GridIndex
from .people import Category
from .routing import route
from .time_rules import ClockKind, StageLimit, limits_at, process_variables

SOURCES = ("monitoring", "device", "petition", "citizen", "patrol")
CASE_PROCESS = "env_case"


class Case(Base):
    __tablename__ = "env_case"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_case_external"),
        Index("ix_case_dedup", "tenant", "source_ref", "category", "status"),
        Index("ix_case_grid", "tenant", "grid_code", "status"),
        Index("ix_case_recent", "tenant", "created_at", "id"),  # the case list, newest first
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12))
    source: Mapped[str] = mapped_column(String(20))  # monitoring | device | petition | citizen | patrol
    source_ref: Mapped[str | None] = mapped_column(String(100))  # the emitting source: an outlet MN, a station
    external_id: Mapped[str] = mapped_column(String(100))
    category: Mapped[str] = mapped_column(String(50))
    description: Mapped[str | None] = mapped_column(String(2000))
    lon: Mapped[float | None] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str] = mapped_column(String(40))
    route_reason: Mapped[str] = mapped_column(String(300))
    urgent: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20))  # open | closed (set when its process ends)
    outcome: Mapped[str | None] = mapped_column(String(20))  # closed | invalid | merged | cancelled
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    deferred_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set while 缓办 (deferrals.py)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CaseAlarm(Base):
    """Every alarm a case has received (the first and each occurrence): a redelivered alarm is found
    here by its source and external id and is a repeat, never counted twice."""

    __tablename__ = "case_alarm"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_case_alarm_external"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("env_case.id"), index=True)
    source: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


@dataclass(frozen=True)
class Alarm:
    tenant: str
    source: str
    external_id: str
    category: str
    occurred_at: datetime
    source_ref: str | None = None
    lon: float | None = None
    lat: float | None = None
    description: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class Intake:
    case: Case
    outcome: str  # filed | repeat (same alarm again) | occurrence (merged into an open case)


class UnknownCategory(LookupError):
    pass


Attach = Callable[[Session, Case], None]


def file_alarm(rt: Runtime, index: GridIndex, alarm: Alarm, actor: str, attach: Attach | None = None) -> Intake:
    """Turn an alarm into a case (or an occurrence of an open one) and start its process. `attach`
    adds rows of the intake's own (a report's photos) to the case in the same transaction; a repeat
    of the alarm attaches nothing, since its first delivery did."""
    try:
        return _file(rt, index, alarm, actor, attach)
    except IntegrityError:  # the same alarm, filed concurrently: the other request's case is ours too
        return _file(rt, index, alarm, actor, attach)


def _file(rt: Runtime, index: GridIndex, alarm: Alarm, actor: str, attach: Attach | None) -> Intake:
    with UnitOfWork(rt) as uow:
        s = uow.session
        existing = s.scalar(select(Case).join(CaseAlarm, CaseAlarm.case_id == Case.id)
                            .where(CaseAlarm.source == alarm.source, CaseAlarm.external_id == alarm.external_id))
        if existing is not None:
            if existing.instance_id is None:
                uow.changed(_start(rt, s, existing, actor))
            intake = Intake(existing, "repeat")
        else:
            intake, started = _new_or_occurrence(rt, s, index, alarm, actor, rt.clock.now())
            if started is not None:
                uow.changed(started)
            if attach is not None:
                attach(s, intake.case)
        uow.commit()
    return intake


def _new_or_occurrence(rt: Runtime, s: Session, index: GridIndex, alarm: Alarm, actor: str,
                       now: datetime) -> tuple[Intake, Change | None]:
    if alarm.source_ref:
        # `status` turns closed in the change that ends the case's process (case_closing.py)
        open_case = s.scalar(select(Case).where(Case.tenant == alarm.tenant, Case.source_ref == alarm.source_ref,
                                                Case.category == alarm.category, Case.status == "open")
                             .with_for_update())
        if open_case is not None:
            open_case.occurrences += 1
            open_case.last_seen = max(open_case.last_seen, alarm.occurred_at)
            s.add(_received(open_case.id, alarm, now))
            return Intake(open_case, "occurrence"), None
    category = s.get(Category, alarm.category)
    if category is None or category.tenant != alarm.tenant:
        raise UnknownCategory(alarm.category)
    point = (alarm.lon, alarm.lat) if alarm.lon is not None and alarm.lat is not None else None
    r = route(s, city=alarm.tenant, point=point, category=alarm.category, at=now, locate=index.locate,
              ancestors=index.ancestors)
    case = Case(id=f"C{now:%Y%m%d}-{uuid.uuid4().hex[:8]}", tenant=alarm.tenant, source=alarm.source,
                source_ref=alarm.source_ref, external_id=alarm.external_id, category=alarm.category,
                description=alarm.description, lon=alarm.lon, lat=alarm.lat, grid_code=r.grid_code,
                route_reason=r.reason, urgent=category.urgent, status="open", occurrences=1,
                first_seen=alarm.occurred_at, last_seen=alarm.occurred_at, created_at=now,
                details={**(alarm.details or {}), "handled_at": r.handled_at, "assignees": r.assignees,
                         "limits": {stage: [lim.minutes, lim.clock.value]
                                    for stage, lim in limits_at(s, category, now).items()},
                         "parent": _parent(index, r.grid_code)})
    s.add(case)
    s.add(_received(case.id, alarm, now))
    return Intake(case, "filed"), _start(rt, s, case, actor)


def _received(case_id: str, alarm: Alarm, now: datetime) -> CaseAlarm:
    return CaseAlarm(case_id=case_id, source=alarm.source, external_id=alarm.external_id,
                     occurred_at=alarm.occurred_at, received_at=now, details=alarm.details or {})


def _parent(index: GridIndex, code: str) -> str:
    chain = index.ancestors(code) if code in index.grids else [code]
    return chain[1] if len(chain) > 1 else chain[0]


def _start(rt: Runtime, s: Session, case: Case, actor: str) -> Change:
    """Start the case's process in the intake's transaction (its variables fill the start form)."""
    s.flush()
    d = case.details
    change = instances.start_in(rt, s.connection(), actor=actor, key=CASE_PROCESS, business_key=case.id,
                                scope=case.grid_code, variables={
        "case_id": case.id, "category": case.category, "grid": case.grid_code,
        "escalation_scope": d["parent"], "inspector": (d["assignees"] or [None])[0], "urgent": case.urgent,
        **process_variables(_filed_limits(s, case)), "reminder_ratio": 0.75})
    case.instance_id = change.instance.id
    return change


def _filed_limits(s: Session, case: Case) -> dict[str, StageLimit]:
    """The time limits the case was filed under (kept in its details, so a later change of the
    category's rules never reaches it); a case filed before time rules existed gets today's."""
    filed = case.details.get("limits")
    if filed:
        return {stage: StageLimit(int(minutes), ClockKind(clock)) for stage, (minutes, clock) in filed.items()}
    category = s.get(Category, case.category)
    if category is None:
        raise UnknownCategory(case.category)
    return limits_at(s, category, case.created_at)
