"""Patrol plans (网格巡查计划): how often the inspectors of a grid level visit each class of target.

A plan is (grid level, target class, cadence, times per cadence, night). Every target of the class
is visited by the inspector responsible for its grid at that level: a key enterprise in a village
unit is on the unit's, the town's and the district's rounds, each at its own frequency. A cadence
is a calendar period in China time — every two days (counted from 2026-01-01), a week (from
Monday), a half month (1st–15th, 16th–end) or a month — split into `times` slots of whole days;
each slot wants one visit. Twice a week is Monday–Wednesday and Thursday–Sunday.

A tenant without plans of its own patrols by the defaults, which are DOMAIN.md's practice (承德:
county level weekly and town level twice a week for key and complained-about targets, town level
every half month for the others, village level every two days; 三河: a night check (18:00–06:00)
by the town level once a month, here of each key target). `PUT /patrol/plans` replaces the set,
on the system audit chain (`patrol.plans_replaced`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import Boolean, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from engine import audit
from engine.db import Base, UTCDateTime
from engine.runtime import Runtime

from .working_time import CHINA

LEVELS = ("district", "town", "unit")  # the grid levels that patrol (county, town, village)
TARGET_CLASSES = ("key", "complained", "general")  # 重点企业/排口, 被投诉, 其他
CADENCES = ("every_2_days", "week", "half_month", "month")
NIGHT_FROM, NIGHT_TO = time(18, 0), time(6, 0)  # a night check is checked in between (China time)
EPOCH = date(2026, 1, 1)  # every-two-days periods count from here
MAX_PLANS = 60


class PatrolPlan(Base):
    __tablename__ = "patrol_plan"
    __table_args__ = (UniqueConstraint("tenant", "grid_level", "target_class", "night", name="uq_patrol_plan"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    grid_level: Mapped[str] = mapped_column(String(10))
    target_class: Mapped[str] = mapped_column(String(20))
    cadence: Mapped[str] = mapped_column(String(20))
    times: Mapped[int] = mapped_column(Integer)
    night: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Plan:
    grid_level: str
    target_class: str
    cadence: str
    times: int = 1
    night: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"gridLevel": self.grid_level, "targetClass": self.target_class, "cadence": self.cadence,
                "times": self.times, "night": self.night}


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan("district", "key", "week"), Plan("district", "complained", "week"),
    Plan("town", "key", "week", 2), Plan("town", "complained", "week", 2), Plan("town", "general", "half_month"),
    Plan("unit", "key", "every_2_days"), Plan("unit", "complained", "every_2_days"),
    Plan("unit", "general", "every_2_days"),
    Plan("town", "key", "month", night=True),
)


def period_days(cadence: str, day: date) -> tuple[date, int]:
    """The first day and the length in days of the cadence's period containing `day`."""
    if cadence == "every_2_days":
        first = EPOCH + timedelta(days=(day - EPOCH).days // 2 * 2)
        return first, 2
    if cadence == "week":
        return day - timedelta(days=day.weekday()), 7
    month_days = ((day.replace(day=28) + timedelta(days=4)).replace(day=1) - day.replace(day=1)).days
    if cadence == "half_month":
        return (day.replace(day=1), 15) if day.day <= 15 else (day.replace(day=16), month_days - 15)
    if cadence == "month":
        return day.replace(day=1), month_days
    raise ValueError(f"unknown cadence {cadence!r}")


SHORTEST = {"every_2_days": 2, "week": 7, "half_month": 13, "month": 28}  # fewest days a period may have


def slot(plan: Plan, at: datetime) -> tuple[datetime, datetime]:
    """The plan's slot [start, end) containing `at`: its period split into `times` runs of whole days."""
    day = at.astimezone(CHINA).date()
    first, length = period_days(plan.cadence, day)
    offset = (day - first).days
    bounds = [first + timedelta(days=i * length // plan.times) for i in range(plan.times + 1)]
    i = max(k for k in range(plan.times) if (bounds[k] - first).days <= offset)
    start, end = bounds[i], bounds[i + 1]
    return (datetime.combine(start, time(), CHINA), datetime.combine(end, time(), CHINA))


def at_night(at: datetime) -> bool:
    local = at.astimezone(CHINA).time()
    return local >= NIGHT_FROM or local < NIGHT_TO


# -- configuration ---------------------------------------------------------------------------------

class PlanSchema(Schema):
    grid_level = fields.String(data_key="gridLevel", required=True, validate=validate.OneOf(LEVELS))
    target_class = fields.String(data_key="targetClass", required=True, validate=validate.OneOf(TARGET_CLASSES))
    cadence = fields.String(required=True, validate=validate.OneOf(CADENCES))
    times = fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=7))
    night = fields.Boolean(load_default=False)

    @validates_schema
    def _fits(self, data: dict[str, Any], **_: Any) -> None:
        cadence, times = data.get("cadence"), data.get("times", 1)
        if cadence in SHORTEST and times > SHORTEST[cadence]:
            raise ValidationError(f"at most {SHORTEST[cadence]} visits per {cadence} (one a day)", "times")


class PlanSetSchema(Schema):
    plans = fields.List(fields.Nested(PlanSchema), required=True, validate=validate.Length(max=MAX_PLANS))

    @validates_schema
    def _unique(self, data: dict[str, Any], **_: Any) -> None:
        seen: dict[tuple[str, str, bool], int] = {}
        errors: dict[int, dict[str, list[str]]] = {}
        for i, p in enumerate(data.get("plans") or []):
            key = (p["grid_level"], p["target_class"], p["night"])
            if key in seen:
                errors[i] = {"targetClass": [f"plans {seen[key]} and {i} are both for {key[1]} targets at the "
                                             f"{key[0]} level{' at night' if key[2] else ''}"]}
            seen.setdefault(key, i)
        if errors:
            raise ValidationError({"plans": errors})


def plans_of(conn: Any, tenant: str) -> tuple[list[Plan], bool]:
    """The tenant's plans, and whether they are the defaults (it has none of its own)."""
    rows = conn.execute(select(PatrolPlan.grid_level, PatrolPlan.target_class, PatrolPlan.cadence,
                               PatrolPlan.times, PatrolPlan.night)
                        .where(PatrolPlan.tenant == tenant).order_by(PatrolPlan.id)).all()
    if not rows:
        return list(DEFAULT_PLANS), True
    return [Plan(*r) for r in rows], False


def read_plans(rt: Runtime, tenant: str) -> tuple[list[Plan], bool]:
    with rt.db.read() as conn:
        return plans_of(conn, tenant)


def replace_plans(rt: Runtime, tenant: str, plans: list[Plan], actor: str) -> list[Plan]:
    """The tenant's whole plan set, replaced in one transaction (an empty list: back to the defaults).
    Tasks already generated keep their slots; the next round uses the new plans."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        s.execute(delete(PatrolPlan).where(PatrolPlan.tenant == tenant))
        s.add_all([PatrolPlan(tenant=tenant, grid_level=p.grid_level, target_class=p.target_class, cadence=p.cadence,
                              times=p.times, night=p.night, updated_by=actor, updated_at=now) for p in plans])
        audit.append_system(rt, s, [audit.AuditDraft(
            action="patrol.plans_replaced", actor=actor, at=now,
            details={"tenant": tenant, "plans": [p.as_json() for p in plans]})])
    return plans or list(DEFAULT_PLANS)
