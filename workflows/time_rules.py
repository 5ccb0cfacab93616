"""Time limits per category and stage (DOMAIN.md §2): how long each stage of a case may take and
on which clock — natural time (around the clock) or working time (the statutory calendar).

A category's limits are a history of rule sets, each effective from a moment; a case takes the set
in force when it is filed and keeps it (intake copies the limits into the process's variables), so
a change never reaches back into running cases. Without any set, the defaults below apply: urgent
categories count in natural time, the others in working time; review and dispatch take the
published 10 minutes (urgent) or 30 minutes, the later stages the category's own hours."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base, Database, UTCDateTime

from .people import Category

log = logging.getLogger(__name__)

STAGES = ("review", "dispatch", "sign_for", "handle", "feedback", "verify")
URGENT_INTAKE_MINUTES = 10  # 立案 + 派遣, urgent (DOMAIN.md §2)
ORDINARY_INTAKE_MINUTES = 30
FEEDBACK_HOURS = 16.0  # the enforcement system's default feedback limit


class ClockKind(StrEnum):
    NATURAL = "natural"  # around the clock
    WORKING = "working"  # working hours on the statutory calendar


@dataclass(frozen=True)
class StageLimit:
    minutes: int
    clock: ClockKind

    @property
    def hours(self) -> float:
        return self.minutes / 60


class TimeRule(Base):
    """One stage's limit within a rule set of a category; a set is the rows sharing `effective_from`."""

    __tablename__ = "time_rule"
    __table_args__ = (UniqueConstraint("category", "effective_from", "stage", name="uq_time_rule"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    category: Mapped[str] = mapped_column(ForeignKey("category.code"))
    stage: Mapped[str] = mapped_column(String(20))  # one of STAGES
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    limit_minutes: Mapped[int] = mapped_column(Integer)
    clock: Mapped[str] = mapped_column(String(10))  # ClockKind
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


def default_limits(category: Category) -> dict[str, StageLimit]:
    clock = ClockKind.NATURAL if category.urgent else ClockKind.WORKING
    intake = URGENT_INTAKE_MINUTES if category.urgent else ORDINARY_INTAKE_MINUTES
    hours = {"sign_for": category.sign_for_hours, "handle": category.handle_hours, "feedback": FEEDBACK_HOURS,
             "verify": category.verify_hours}
    return {"review": StageLimit(intake, clock), "dispatch": StageLimit(intake, clock),
            **{stage: StageLimit(round(h * 60), clock) for stage, h in hours.items()}}


def limits_at(s: Session, category: Category, at: datetime) -> dict[str, StageLimit]:
    """The limits in force for `category` at `at`: the latest set effective by then, stage by stage
    over the defaults (a set may name only some stages)."""
    limits = default_limits(category)
    latest = s.scalar(select(TimeRule.effective_from)
                      .where(TimeRule.category == category.code, TimeRule.effective_from <= at)
                      .order_by(TimeRule.effective_from.desc()).limit(1))
    if latest is not None:
        for rule in s.scalars(select(TimeRule).where(TimeRule.category == category.code,
                                                     TimeRule.effective_from == latest)):
            limits[rule.stage] = StageLimit(rule.limit_minutes, ClockKind(rule.clock))
    return limits


def rule_sets(s: Session, category: str) -> list[tuple[datetime, dict[str, StageLimit], str, datetime]]:
    """Every rule set of a category, oldest first: (effective from, limits, set by, set at)."""
    sets: dict[datetime, tuple[dict[str, StageLimit], str, datetime]] = {}
    for rule in s.scalars(select(TimeRule).where(TimeRule.category == category)
                          .order_by(TimeRule.effective_from, TimeRule.stage)):
        limits, _, _ = sets.setdefault(rule.effective_from, ({}, rule.set_by, rule.set_at))
        limits[rule.stage] = StageLimit(rule.limit_minutes, ClockKind(rule.clock))
    return [(when, limits, by, at) for when, (limits, by, at) in sets.items()]


class RetroactiveRule(ValueError):
    pass


def set_time_rules(db: Database, category: Category, *, effective_from: datetime,
                   limits: Mapping[str, StageLimit], actor: str, now: datetime) -> None:
    """A new rule set from `effective_from` (now or later: running cases keep what they were filed
    with, and a set in the past would rewrite what earlier cases were measured against). A set with
    the same start, not yet in force, is replaced; stages it does not name keep the defaults."""
    if effective_from < now:
        raise RetroactiveRule("is in the past: time limits change from now on, never backwards")
    unknown = sorted(set(limits) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(unknown)}; the stages are {', '.join(STAGES)}")
    with db.transaction() as s:
        s.execute(delete(TimeRule).where(TimeRule.category == category.code,
                                         TimeRule.effective_from == effective_from))
        s.add_all(
            TimeRule(tenant=category.tenant, category=category.code, stage=stage, effective_from=effective_from,
                     limit_minutes=limit.minutes, clock=limit.clock.value, set_by=actor, set_at=now)
            for stage, limit in limits.items())
    log.info("time rules set", extra={"category": category.code, "effective_from": effective_from.isoformat(),
                                      "actor": actor, "stages": {k: [v.minutes, v.clock.value]
                                                                 for k, v in limits.items()}})


def process_variables(limits: Mapping[str, StageLimit]) -> dict[str, object]:
    """The limits as the case process reads them: `<stage>_hours` and `<stage>_clock`, and the
    default extension (the handling limit again)."""
    out: dict[str, object] = {}
    for stage, limit in limits.items():
        out[f"{stage}_hours"] = limit.hours
        out[f"{stage}_clock"] = limit.clock.value
    out["extension_hours"] = limits["handle"].hours
    return out
