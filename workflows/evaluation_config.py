"""How a tenant scores its indicators (考核评价配置): per scheme (department, region, and the posts
inspector, supervisor, dispatcher) the weight of each indicator, the banded count scores (立案数分值,
派遣数分值), the denominator rules cities differ on, and the grade bands.

A configuration is a history per tenant: each row is in force from its date (China local) until
the next; rows are only ever added. Without any row the defaults below apply — the GB/T 30428.4 /
CJ/T 292 scheme as DOMAIN.md §3 gives it. A period is scored with the configuration in force on its
first day, and a published evaluation keeps a copy of it (workflows/evaluations.py)."""

from __future__ import annotations

from copy import deepcopy
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base, UTCDateTime

from .indicators import SCORED

SCHEMES = ("department", "region", "inspector", "supervisor", "dispatcher")
COUNT_SCORES = {"filed_score": "filed", "dispatch_score": "dispatched"}  # banded score → the count it bands
DENOMINATOR_RULES = {"deferred": ("include", "exclude"), "invalid_and_merged": ("exclude", "include")}

# 立案数分值 is inverse (fewer problems score better); 派遣数分值 uses the published 受理数 bands
_FILED_BANDS = [{"min": 0, "max": 50, "score": 100}, {"min": 51, "max": 100, "score": 90},
                {"min": 101, "max": 200, "score": 75}, {"min": 201, "max": 500, "score": 60},
                {"min": 501, "max": 1000, "score": 40}, {"min": 1001, "max": None, "score": 0}]
_DISPATCH_BANDS = [{"min": 0, "max": 100, "score": 0}, {"min": 101, "max": 300, "score": 40},
                   {"min": 301, "max": 500, "score": 60}, {"min": 501, "max": 1200, "score": 75},
                   {"min": 1201, "max": 2000, "score": 90}, {"min": 2001, "max": None, "score": 100}]

DEFAULT_CONFIG: dict[str, Any] = {
    "schemes": {
        "department": {"filed_score": 10, "closing_rate": 30, "on_time_handling_rate": 30, "rework_free_rate": 30},
        # no published weights for regions (reference [U]): the department's building blocks, 按期结案率
        # in place of 按期处置率
        "region": {"filed_score": 10, "closing_rate": 30, "on_time_closing_rate": 30, "rework_free_rate": 30},
        "inspector": {"valid_report_rate": 40, "not_missed_rate": 20, "on_time_review_rate": 20,
                      "on_time_verification_rate": 20},
        "supervisor": {"on_time_review_rate": 25, "accurate_filing_rate": 40, "on_time_closing_rate": 35},
        "dispatcher": {"dispatch_score": 20, "on_time_dispatch_rate": 40, "accurate_dispatch_rate": 40},
    },
    "bands": {"filed_score": _FILED_BANDS, "dispatch_score": _DISPATCH_BANDS},
    "denominator": {"deferred": "include", "invalid_and_merged": "exclude"},
    "grades": [{"grade": "A", "min": 90}, {"grade": "B", "min": 75}, {"grade": "C", "min": 60},
               {"grade": "D", "min": 40}, {"grade": "E", "min": 0}],
}


class AssessmentConfig(Base):
    """A tenant's assessment configuration from `effective_from` on (append-only)."""

    __tablename__ = "assessment_config"
    __table_args__ = (Index("ix_assessment_config_tenant_from", "tenant", "effective_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12))
    effective_from: Mapped[date] = mapped_column(Date)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    set_by: Mapped[str] = mapped_column(String(200))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConfigError(ValueError):
    """Refused configuration: `fields` maps each offending path (e.g. schemes.region) to its problems."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in fields.items()))
        self.fields = fields


def config_at(s: Session, tenant: str, day: date) -> tuple[date | None, dict[str, Any]]:
    """The configuration in force on `day` and the date it took effect (None: the defaults)."""
    row = s.scalar(select(AssessmentConfig)
                   .where(AssessmentConfig.tenant == tenant, AssessmentConfig.effective_from <= day)
                   .order_by(AssessmentConfig.effective_from.desc(), AssessmentConfig.id.desc()).limit(1))
    if row is None:
        return None, deepcopy(DEFAULT_CONFIG)
    return row.effective_from, deepcopy(row.body)


def validate_config(body: Any) -> dict[str, Any]:
    """A complete configuration checked (every problem named by its path), normalised to plain data.
    Parts left out are taken from the defaults."""
    if not isinstance(body, dict):
        raise ConfigError({"config": ["must be an object"]})
    problems: dict[str, list[str]] = {}
    unknown = sorted(set(body) - set(DEFAULT_CONFIG))
    if unknown:
        problems["config"] = [f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(DEFAULT_CONFIG)}"]
    out = deepcopy(DEFAULT_CONFIG)
    schemes = body.get("schemes", {})
    if not isinstance(schemes, dict):
        problems["schemes"] = ["must be an object of scheme → {indicator: weight}"]
        schemes = {}
    for name, weights in schemes.items():
        path = f"schemes.{name}"
        if name not in SCHEMES:
            problems[path] = [f"unknown scheme; the schemes are {', '.join(SCHEMES)}"]
        elif (said := _weights_problems(weights)):
            problems[path] = said
        else:
            out["schemes"][name] = {k: float(v) for k, v in weights.items()}
    bands = body.get("bands", {})
    if not isinstance(bands, dict):
        problems["bands"] = ["must be an object of count score → bands"]
        bands = {}
    for name, rows in bands.items():
        path = f"bands.{name}"
        if name not in COUNT_SCORES:
            problems[path] = [f"unknown count score; they are {', '.join(COUNT_SCORES)}"]
        elif (said := _band_problems(rows)):
            problems[path] = said
        else:
            out["bands"][name] = [{"min": int(r["min"]), "max": None if r["max"] is None else int(r["max"]),
                                   "score": float(r["score"])} for r in rows]
    rules = body.get("denominator", {})
    if not isinstance(rules, dict):
        problems["denominator"] = ["must be an object"]
        rules = {}
    for name, value in rules.items():
        path = f"denominator.{name}"
        if name not in DENOMINATOR_RULES:
            problems[path] = [f"unknown rule; the rules are {', '.join(DENOMINATOR_RULES)}"]
        elif value not in DENOMINATOR_RULES[name]:
            problems[path] = [f"must be one of {', '.join(DENOMINATOR_RULES[name])}"]
        else:
            out["denominator"][name] = value
    if "grades" in body:
        if (said := _grade_problems(body["grades"])):
            problems["grades"] = said
        else:
            out["grades"] = [{"grade": g["grade"], "min": float(g["min"])} for g in body["grades"]]
    if problems:
        raise ConfigError(problems)
    return out


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _weights_problems(weights: Any) -> list[str]:
    if not isinstance(weights, dict) or not weights:
        return ["must be a non-empty object of indicator → weight"]
    said = [f"unknown indicator {k!r}; those that can be weighted are {', '.join(SCORED)}"
            for k in weights if k not in SCORED]
    said += [f"weight of {k} must be a number from 0 to 100" for k, v in weights.items()
             if not _number(v) or not 0 <= v <= 100]
    if not said and abs(sum(weights.values()) - 100) > 1e-9:
        said.append(f"weights must sum to 100, not {sum(weights.values()):g}")
    return said


def _band_problems(rows: Any) -> list[str]:
    """Bands must cover 0 to unbounded exactly once: sorted, no gap, no overlap, only the last open."""
    if not isinstance(rows, list) or not rows:
        return ["must be a non-empty list of {min, max, score}"]
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or set(r) != {"min", "max", "score"}:
            return [f"band {i} must have exactly min, max and score"]
        if not (isinstance(r["min"], int) and not isinstance(r["min"], bool) and r["min"] >= 0):
            return [f"band {i}: min must be a whole number ≥ 0"]
        if r["max"] is not None and not (isinstance(r["max"], int) and not isinstance(r["max"], bool)):
            return [f"band {i}: max must be a whole number or null (no upper bound)"]
        if not _number(r["score"]) or not 0 <= r["score"] <= 100:
            return [f"band {i}: score must be a number from 0 to 100"]
        if r["max"] is not None and r["max"] < r["min"]:
            return [f"band {i}: max is below min"]
    if rows[0]["min"] != 0:
        return [f"the first band must start at 0 (counts 0 to {rows[0]['min'] - 1} have no score)"]
    for i in range(1, len(rows)):
        before, here = rows[i - 1], rows[i]
        if before["max"] is None or here["min"] <= before["max"]:
            return [f"bands {i - 1} and {i} overlap"]
        if here["min"] > before["max"] + 1:
            return [f"gap between bands {i - 1} and {i}: counts {before['max'] + 1} to {here['min'] - 1} have no score"]
    if rows[-1]["max"] is not None:
        return [f"the last band must have no upper bound (max null): counts above {rows[-1]['max']} have no score"]
    return []


def _grade_problems(grades: Any) -> list[str]:
    """Grades are thresholds from the top: strictly decreasing minimums, the last at 0 (no gap)."""
    if not isinstance(grades, list) or not grades:
        return ["must be a non-empty list of {grade, min}"]
    for i, g in enumerate(grades):
        if not isinstance(g, dict) or set(g) != {"grade", "min"} or not isinstance(g["grade"], str) \
                or not 1 <= len(g["grade"]) <= 20 or not _number(g["min"]) or not 0 <= g["min"] <= 100:
            return [f"grade {i} must be {{grade: a name of 1-20 characters, min: 0 to 100}}"]
    names = [g["grade"] for g in grades]
    if len(set(names)) != len(names):
        return ["grade names must be distinct"]
    for i in range(1, len(grades)):
        if grades[i]["min"] >= grades[i - 1]["min"]:
            return [f"grades {i - 1} and {i} overlap: minimums must decrease from the top"]
    if grades[-1]["min"] != 0:
        return [f"the last grade must start at 0 (scores below {grades[-1]['min']:g} would have no grade)"]
    return []


def band_score(bands: list[dict[str, Any]], count: int) -> float:
    for band in bands:
        if count >= band["min"] and (band["max"] is None or count <= band["max"]):
            return float(band["score"])
    raise ValueError(f"no band holds {count}")  # validated bands cover every count


def grade_of(grades: list[dict[str, Any]], score: float) -> str:
    for g in grades:
        if score >= g["min"]:
            return g["grade"]
    return grades[-1]["grade"]
