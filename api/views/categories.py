"""categories: the kinds of problem and their time limits per stage — how long review, dispatch,
sign-for, handling, enforcement feedback and verification may take, and on which clock (natural
time around the clock, or working time). Administrators set new limits from a moment on; a case
keeps the limits it was filed under (workflows/time_rules.py)."""

from __future__ import annotations

from flask import Blueprint, jsonify
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from engine.errors import NotFound
from workflows.people import Category
from workflows.time_rules import STAGES, ClockKind, RetroactiveRule, StageLimit, limits_at, rule_sets, set_time_rules

from ..auth import current, roles
from ..fields import UtcTime
from ..http import doc, json_body, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

bp = Blueprint("categories", __name__, url_prefix="/api/v1/categories")
READERS = ("admin", "supervisor", "leader", "inspector")
MAX_MINUTES = 366 * 24 * 60  # a year: the longest limit a case may have at one stage


class StageLimitIn(Strict):
    limit_minutes = fields.Integer(data_key="limitMinutes", required=True, strict=True,
                                   validate=validate.Range(min=1, max=MAX_MINUTES))
    clock = fields.String(required=True, validate=validate.OneOf([c.value for c in ClockKind]))


# only the stages named change; the others keep their defaults
StagesIn = Strict.from_dict({stage: fields.Nested(StageLimitIn) for stage in STAGES}, name="StagesIn")


class TimeRulesIn(Strict):
    effective_from = UtcTime(data_key="effectiveFrom", load_default=None,
                             metadata={"description": "from when (now or later); empty: now"})
    stages = fields.Nested(StagesIn, required=True)


class CategoryArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)


def _limits(limits: dict[str, StageLimit]) -> dict[str, dict]:
    return {stage: {"limitMinutes": lim.minutes, "clock": lim.clock.value} for stage, lim in limits.items()}


class CategoryView(Schema):
    code = fields.String()
    name = fields.String()
    urgent = fields.Boolean()
    limits = fields.Dict(metadata={"description": "the limits in force now, per stage: limitMinutes and clock"})


@bp.get("")
@roles(*READERS)
@doc("A tenant's problem categories with the time limits in force now", query=CategoryArgs,
     response=CategoryView, many=True)
def list_categories():
    args = query_args(CategoryArgs())
    rt = runtime()
    now = rt.clock.now()
    with rt.db.session() as s:
        categories = s.scalars(select(Category).where(Category.tenant == args["tenant"])
                               .order_by(Category.code)).all()
        body = [{"code": c.code, "name": c.name, "urgent": c.urgent, "limits": _limits(limits_at(s, c, now))}
                for c in categories]
    return jsonify(CategoryView(many=True).dump(body))


@bp.get("/<code>/time-rules")
@roles(*READERS)
@doc("A category's time limits: those in force now and every rule set with its start")
def get_time_rules(code: str):
    rt = runtime()
    with rt.db.session() as s:
        category = s.get(Category, code)
        if category is None:
            raise NotFound(f"category {code} does not exist")
        current_limits = limits_at(s, category, rt.clock.now())
        sets = rule_sets(s, code)
    return jsonify({"category": code, "urgent": category.urgent, "current": _limits(current_limits),
                    "sets": [{"effectiveFrom": when.isoformat(), "stages": _limits(limits), "setBy": by,
                              "setAt": at.isoformat()} for when, limits, by, at in sets]})


@bp.put("/<code>/time-rules")
@roles("admin")
@doc("Set a category's time limits per stage from a moment on (never backwards: running cases keep theirs)",
     body=TimeRulesIn)
def put_time_rules(code: str):
    args = json_body(TimeRulesIn())
    if not args["stages"]:
        raise ValidationError({"stages": ["name at least one stage: " + ", ".join(STAGES)]})
    rt = runtime()
    now = rt.clock.now()
    with rt.db.session() as s:
        category = s.get(Category, code)
    if category is None:
        raise NotFound(f"category {code} does not exist")
    limits = {stage: StageLimit(v["limit_minutes"], ClockKind(v["clock"])) for stage, v in args["stages"].items()}
    try:
        set_time_rules(rt.db, category, effective_from=args["effective_from"] or now, limits=limits,
                       actor=current().name, now=now)
    except RetroactiveRule as exc:
        raise ValidationError({"effectiveFrom": [str(exc)]}) from exc
    return get_time_rules.__wrapped__(code)
