"""Evaluations (考核评价): the indicators of a period grouped by department, region (a grid level)
or post — alone or combined, e.g. ("region:district", "post:inspector") — scored with the tenant's
configuration in force on the period's first day, graded, and published.

A published evaluation is a row holding the figures and a copy of the configuration it used, so a
published score never changes when the configuration does, and `reproduce` recomputes it from the
copy. Who sees what: admins and leaders all of their tenant, supervisors their grid subtree,
inspectors their own figures."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, Database, UTCDateTime
from engine.errors import Conflict, InvalidInput, NotFound
from engine.visibility import Viewer, grid_visible

from .evaluation_config import (
    COUNT_SCORES,
    AssessmentConfig,
    ConfigError,
    band_score,
    config_at,
    grade_of,
    validate_config,
)
from .grids import Grid
from .indicators import DIMENSIONS, MISSED, MISSED_UNAVAILABLE, CaseFact, Period, Rules, case_facts, rates, sum_counts
from .people import Person
from .working_time import CHINA, WorkCalendar


class AssessmentEvaluation(Base):
    """A published evaluation of a tenant's period under one grouping, with the configuration used."""

    __tablename__ = "assessment_evaluation"
    __table_args__ = (UniqueConstraint("tenant", "period_from", "period_to", "by", name="uq_assessment_evaluation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12))
    period: Mapped[str] = mapped_column(String(40))
    period_from: Mapped[datetime] = mapped_column(UTCDateTime)
    period_to: Mapped[datetime] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(100))
    config_effective_from: Mapped[date] = mapped_column(Date)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)


DEFAULTS_FROM = date(1970, 1, 1)  # what a published evaluation records when the defaults applied

# -- periods ---------------------------------------------------------------------------------------------

def _local(d: date) -> datetime:
    return datetime.combine(d, time(0), CHINA)


def period_of(text: str) -> Period:
    """A month (2026-09), a quarter (2026-Q3) or a year (2026), in China local time."""
    if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError("month must be 01 to 12")
        nxt = date(year + month // 12, month % 12 + 1, 1)
        return Period(text, _local(date(year, month, 1)), _local(nxt))
    if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
        year, q = int(m[1]), int(m[2])
        nxt = date(year + 1, 1, 1) if q == 4 else date(year, 3 * q + 1, 1)
        return Period(text, _local(date(year, 3 * q - 2, 1)), _local(nxt))
    if re.fullmatch(r"\d{4}", text):
        return Period(text, _local(date(int(text), 1, 1)), _local(date(int(text) + 1, 1, 1)))
    raise ValueError("a period is a month (2026-09), a quarter (2026-Q3) or a year (2026)")


def period_between(first: date, last: date) -> Period:
    """Any range of whole days, both included."""
    if last < first:
        raise ValueError("the range ends before it starts")
    return Period(f"{first.isoformat()}/{last.isoformat()}", _local(first), _local(last + timedelta(days=1)))


def dimensions_of(by: str) -> tuple[str, ...]:
    dims = tuple(d.strip() for d in by.split(",") if d.strip())
    unknown = [d for d in dims if d not in DIMENSIONS]
    if not dims or unknown or len(set(dims)) != len(dims):
        raise ValueError(f"by is one or more of {', '.join(DIMENSIONS)}, comma-separated, each once")
    if sum(d.startswith("post:") for d in dims) > 1 or sum(d.startswith("region:") for d in dims) > 1:
        raise ValueError("by names at most one post and one region level")
    return dims


def scheme_of(dims: tuple[str, ...]) -> str:
    """The scoring scheme of a grouping: its post's, else the department's, else the region's."""
    post = next((d for d in dims if d.startswith("post:")), None)
    return post.split(":")[1] if post else "department" if "department" in dims else "region"


# -- computing -------------------------------------------------------------------------------------------

def _regions(conn: Any, tenant: str) -> dict[str, dict[str, str]]:
    """Each current grid code → its ancestors by level (itself included)."""
    rows = conn.execute(select(Grid.code, Grid.level, Grid.parent_code)
                        .where(Grid.tenant == tenant, Grid.valid_to.is_(None))).all()
    by_code = {code: (level, parent) for code, level, parent in rows}
    out: dict[str, dict[str, str]] = {}
    for code in by_code:
        chain: dict[str, str] = {}
        current = code
        while current in by_code and len(chain) < 8:
            level, parent = by_code[current]
            chain[level] = current
            current = parent
        out[code] = chain
    return out


def _in_grid(fact: CaseFact, grid: str, regions: dict[str, dict[str, str]]) -> bool:
    return fact.grid_code.startswith(grid) or grid in regions.get(fact.grid_code, {}).values()


def indicators(conn: Any, tenant: str, period: Period, by: tuple[str, ...], *, now: datetime,
               calendar: WorkCalendar, config: dict[str, Any], viewer: Viewer | None = None,
               grid: str | None = None) -> list[dict[str, Any]]:
    """The groups of a period under `by`: their key, counters, rates and scored values. A viewer
    who does not see everything gets only their subtree's cases (supervisors) or their own row."""
    rules = Rules(**config["denominator"])
    regions = _regions(conn, tenant)
    departments = dict(conn.execute(select(Person.username, Person.department_code)
                                    .where(Person.tenant == tenant, Person.username.is_not(None),
                                           Person.department_code.is_not(None))).all())
    facts = case_facts(conn, tenant, period, now, calendar, rules)
    if grid is not None:
        facts = [f for f in facts if _in_grid(f, grid, regions)]
    if viewer is not None and not viewer.sees_all and viewer.oversees:
        facts = [f for f in facts if grid_visible(viewer, f.grid_code)]
    groups = sum_counts(facts, by, regions, departments, tenant)
    scheme = scheme_of(by)
    out = []
    for key in sorted(groups):
        counts = groups[key]
        row: dict[str, Any] = {"key": dict(zip(by, key, strict=True)), "counts": counts, "rates": rates(counts)}
        row["components"] = _components(row["rates"], counts, config)
        row["score"], row["grade"], row["missing"] = _score(row["components"], config["schemes"][scheme],
                                                            config["grades"])
        out.append(row)
    if viewer is not None and not viewer.sees_all and not viewer.oversees:
        post = next((d for d in by if d.startswith("post:")), None)
        out = [r for r in out if post is not None and r["key"][post] == viewer.name]
    return out


def _components(r: dict[str, float | None], counts: dict[str, int], config: dict[str, Any]) -> dict[str, Any]:
    """Every indicator that can be weighted, on a 0–100 scale (None: not available)."""
    def complement(v: float | None) -> float | None:
        return None if v is None else round(100 - v, 2)

    out: dict[str, Any] = {k: v for k, v in r.items() if k not in ("rework_rate", "overdue_rate", MISSED)}
    out.update(rework_free_rate=complement(r["rework_rate"]), overdue_free_rate=complement(r["overdue_rate"]),
               not_missed_rate=complement(r[MISSED]))
    for score, count in COUNT_SCORES.items():
        out[score] = band_score(config["bands"][score], counts[count])
    return out


def _score(components: dict[str, Any], weights: dict[str, float],
           grades: list[dict[str, Any]]) -> tuple[float | None, str | None, list[str]]:
    """Σ weight × value / 100; the weights of indicators not available are shared out among the
    others in proportion (and named), so a group is not punished for data the city does not keep."""
    missing = sorted(k for k in weights if components.get(k) is None)
    present = {k: w for k, w in weights.items() if k not in missing and w > 0}
    total = sum(present.values())
    if not total:
        return None, None, missing
    score = round(sum(components[k] * w for k, w in present.items()) / total, 2)
    return score, grade_of(grades, score), missing


def evaluate(db: Database, calendar: WorkCalendar, tenant: str, period: Period, by: tuple[str, ...],
             now: datetime, *, viewer: Viewer | None = None, grid: str | None = None,
             config: tuple[date | None, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Live figures of a period under the configuration in force on its first day (or `config`)."""
    with db.engine.connect() as conn:
        if config is None:
            with db.session() as s:
                config = config_at(s, tenant, period.start.astimezone(CHINA).date())
        effective, body = config
        groups = indicators(conn, tenant, period, by, now=now, calendar=calendar, config=body, viewer=viewer,
                            grid=grid)
    return {"tenant": tenant, "period": period.label, "from": period.start.isoformat(),
            "to": period.end.isoformat(), "by": list(by), "scheme": scheme_of(by), "computedAt": now.isoformat(),
            "configEffectiveFrom": effective.isoformat() if effective else None, "denominator": body["denominator"],
            "notes": {MISSED: MISSED_UNAVAILABLE}, "groups": groups}


# -- publishing and configuration ------------------------------------------------------------------------

def publish(db: Database, calendar: WorkCalendar, tenant: str, period: Period, by: tuple[str, ...], actor: str,
            now: datetime) -> AssessmentEvaluation:
    """Compute and publish a period's evaluation (Conflict if it is published already; a period
    not yet over cannot be published)."""
    if period.end > now:
        raise InvalidInput(f"period {period.label} is not over yet (it ends {period.end.isoformat()})",
                           fields={"period": ["must have ended"]})
    with db.session() as s:
        effective, body = config_at(s, tenant, period.start.astimezone(CHINA).date())
    figures = evaluate(db, calendar, tenant, period, by, now, config=(effective, body))
    row = AssessmentEvaluation(tenant=tenant, period=period.label, period_from=period.start, period_to=period.end,
                               by=",".join(by), config_effective_from=effective or DEFAULTS_FROM, config=body,
                               figures=figures, published_by=actor, published_at=now)
    try:
        with db.transaction() as s:
            s.add(row)
    except IntegrityError:
        raise Conflict(f"the evaluation of {period.label} by {','.join(by)} is published already") from None
    return row


def reproduce(db: Database, calendar: WorkCalendar, row: AssessmentEvaluation) -> dict[str, Any]:
    """Recompute a published evaluation with the configuration it recorded, as of its publication."""
    period = Period(row.period, row.period_from.astimezone(CHINA), row.period_to.astimezone(CHINA))
    effective = None if row.config_effective_from == DEFAULTS_FROM else row.config_effective_from
    return evaluate(db, calendar, row.tenant, period, tuple(row.by.split(",")), row.published_at,
                    config=(effective, row.config))


def visible_figures(db: Database, row: AssessmentEvaluation, viewer: Viewer) -> dict[str, Any]:
    """A published evaluation as a viewer may read it: all of it, their subtree's groups, or their own."""
    figures = dict(row.figures)
    if viewer.sees_all:
        return figures
    dims = tuple(row.by.split(","))
    post = next((d for d in dims if d.startswith("post:")), None)
    region = next((d for d in dims if d.startswith("region:")), None)
    homes: dict[str | None, str] = {}  # username (None for a person without an account) → grid
    if post and viewer.oversees:
        with db.session() as s:
            homes = dict(s.execute(select(Person.username, Person.grid_code).where(Person.tenant == row.tenant)).all())
    keep: Callable[[dict[str, str]], bool]
    if not viewer.oversees:
        keep = lambda key: post is not None and key[post] == viewer.name  # noqa: E731
    elif post:
        keep = lambda key: grid_visible(viewer, homes.get(key[post]))  # noqa: E731
    elif region:
        keep = lambda key: grid_visible(viewer, key[region])  # noqa: E731
    else:
        keep = lambda key: False  # noqa: E731 - city-wide, department, category: not a subtree's figures
    figures["groups"] = [g for g in row.figures["groups"] if keep(g["key"])]
    return figures


def get_evaluation(db: Database, evaluation_id: int, tenant: str | None = None) -> AssessmentEvaluation:
    with db.session() as s:
        row = s.get(AssessmentEvaluation, evaluation_id)
    if row is None or (tenant is not None and row.tenant != tenant):
        raise NotFound(f"evaluation {evaluation_id} does not exist")
    return row


def list_evaluations(db: Database, tenant: str) -> list[AssessmentEvaluation]:
    with db.session() as s:
        return list(s.scalars(select(AssessmentEvaluation).where(AssessmentEvaluation.tenant == tenant)
                              .order_by(AssessmentEvaluation.period_from.desc(), AssessmentEvaluation.id.desc())))


def set_config(db: Database, tenant: str, effective_from: date, body: Any, actor: str,
               now: datetime) -> AssessmentConfig:
    """Add a configuration from `effective_from` (ConfigError naming each bad field). It may not
    reach a period already published: that period's score must stay what was published."""
    config = validate_config(body)
    with db.transaction() as s:
        published = s.scalar(select(AssessmentEvaluation.period).where(
            AssessmentEvaluation.tenant == tenant, AssessmentEvaluation.period_to > _local(effective_from))
            .order_by(AssessmentEvaluation.period_to.desc()).limit(1))
        if published is not None:
            raise ConfigError({"effectiveFrom": [f"falls in or before period {published}, which is published: "
                                                 "choose a day after the last published period"]})
        row = AssessmentConfig(tenant=tenant, effective_from=effective_from, body=config, set_by=actor, set_at=now)
        s.add(row)
    return row


def config_history(db: Database, tenant: str) -> list[AssessmentConfig]:
    with db.session() as s:
        return list(s.scalars(select(AssessmentConfig).where(AssessmentConfig.tenant == tenant)
                              .order_by(AssessmentConfig.effective_from, AssessmentConfig.id)))
