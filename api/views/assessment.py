"""assessment (考核评价): indicators computed live for any period and grouping, the tenant's scoring
configuration (admins set it from a date), and published evaluations that keep the configuration
they used (workflows/indicators.py, evaluation_config.py, evaluations.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from engine.errors import NotAllowed, NotFound
from workflows import evaluations
from workflows.evaluation_config import ConfigError, config_at
from workflows.indicators import DIMENSIONS
from workflows.working_time import CHINA

from ..auth import current, roles
from ..export_tables import assessment_table
from ..exports import ExportArgs, file_response, wanted
from ..http import doc, json_body, query_args, runtime
from ..schemas import Strict
from .grids import TENANT

bp = Blueprint("assessment", __name__, url_prefix="/api/v1/assessment")
READERS = ("admin", "leader", "supervisor", "inspector")
BY = validate.Length(min=1, max=100)
BY_HELP = f"one or more of {', '.join(DIMENSIONS)}, comma-separated (combined: e.g. region:district,post:inspector)"


def _period(args: dict) -> evaluations.Period:
    try:
        if "period" in args:
            return evaluations.period_of(args["period"])
        return evaluations.period_between(args["from_"], args["to"])
    except ValueError as exc:
        raise ValidationError({"period" if "period" in args else "to": [str(exc)]}) from None


def _dims(by: str) -> tuple[str, ...]:
    try:
        return evaluations.dimensions_of(by)
    except ValueError as exc:
        raise ValidationError({"by": [str(exc)]}) from None


def _calendar():
    return current_app.extensions["gridloop.calendar"].calendar()


class IndicatorArgs(ExportArgs):
    tenant = fields.String(required=True, validate=TENANT)
    period = fields.String(validate=validate.Length(min=4, max=10),
                           metadata={"description": "a month (2026-09), a quarter (2026-Q3) or a year (2026)"})
    from_ = fields.Date(data_key="from", metadata={"description": "first day of a range (with `to`)"})
    to = fields.Date(metadata={"description": "last day of a range, included"})
    grid = fields.String(validate=validate.Length(min=1, max=40), metadata={"description": "only this grid's subtree"})
    by = fields.String(load_default="tenant", validate=BY, metadata={"description": BY_HELP})

    @validates_schema
    def _one_period(self, data, **_):
        ranged = "from_" in data or "to" in data
        if ("period" in data) == ranged or (ranged and not ("from_" in data and "to" in data)):
            raise ValidationError("give either period, or from and to", field_name="period")


class EvaluationIn(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    period = fields.String(required=True, validate=validate.Length(min=4, max=10),
                           metadata={"description": "a month (2026-09), a quarter (2026-Q3) or a year (2026)"})
    by = fields.String(required=True, validate=BY, metadata={"description": BY_HELP})


class TenantArgs(Strict):
    tenant = fields.String(required=True, validate=TENANT)


class ConfigIn(Strict):
    tenant = fields.String(required=True, validate=TENANT)
    effective_from = fields.Date(data_key="effectiveFrom", required=True,
                                 metadata={"description": "in force from this day (China time) on"})
    config = fields.Dict(required=True, metadata={"description": "schemes, bands, denominator, grades; a part "
                                                                 "left out keeps the default"})


class EvaluationSummary(Schema):
    id = fields.Integer()
    tenant = fields.String()
    period = fields.String()
    period_from = fields.AwareDateTime(data_key="from")
    period_to = fields.AwareDateTime(data_key="to")
    by = fields.String()
    config_effective_from = fields.Date(data_key="configEffectiveFrom")
    published_by = fields.String(data_key="publishedBy")
    published_at = fields.AwareDateTime(data_key="publishedAt")


@bp.get("/indicators")
@roles(*READERS)
@doc("Indicators of a period computed now, grouped; supervisors see their subtree, inspectors their own row",
     query=IndicatorArgs)
def get_indicators():
    args = query_args(IndicatorArgs())
    p = current()
    by = _dims(args["by"])
    viewer = p.viewer
    if not viewer.sees_all and not viewer.oversees and not any(d == "post:inspector" for d in by):
        raise NotAllowed("an inspector sees their own figures: group by post:inspector")
    if "grid" in args and not viewer.sees_all and not (viewer.scope and args["grid"].startswith(viewer.scope)):
        raise NotFound(f"grid {args['grid']} is not in your area")
    rt = runtime()
    body = evaluations.evaluate(rt.db, _calendar(), args["tenant"], _period(args), by, rt.clock.now(),
                                viewer=viewer, grid=args.get("grid"))
    fmt = wanted(args)
    if fmt != "json":  # a file of the groups (api/exports.py)
        name = f"indicators-{body['tenant']}-{body['period'].replace('/', '_')}-{'_'.join(by).replace(':', '-')}"
        return file_response(fmt, args["lang"], name, *assessment_table(body, args["lang"]))
    return jsonify(body)


@bp.get("/config")
@roles("admin", "leader", "supervisor")
@doc("The tenant's assessment configuration in force today, and every configuration with its start",
     query=TenantArgs)
def get_config():
    return _config_of(query_args(TenantArgs())["tenant"])


def _config_of(tenant: str):
    rt = runtime()
    today = rt.clock.now().astimezone(CHINA).date()
    with rt.db.session() as s:
        effective, body = config_at(s, tenant, today)
    history = evaluations.config_history(rt.db, tenant)
    return jsonify({"tenant": tenant, "effectiveFrom": effective.isoformat() if effective else None,
                    "config": body, "history": [{"effectiveFrom": c.effective_from.isoformat(), "config": c.body,
                                                 "setBy": c.set_by, "setAt": c.set_at.isoformat()} for c in history]})


@bp.put("/config")
@roles("admin")
@doc("Add a configuration from a date on (refused, naming the field: weights not summing to 100, bands "
     "overlapping or with gaps, unknown indicators, a date reaching a published period)", body=ConfigIn)
def put_config():
    args = json_body(ConfigIn())
    rt = runtime()
    try:
        evaluations.set_config(rt.db, args["tenant"], args["effective_from"], args["config"], current().name,
                               rt.clock.now())
    except ConfigError as exc:
        raise ValidationError({k if k == "effectiveFrom" else f"config.{k}": v for k, v in exc.fields.items()}) \
            from None
    return _config_of(args["tenant"])


@bp.post("/evaluations")
@roles("admin")
@doc("Compute a finished period's evaluation and publish it with the configuration it used",
     body=EvaluationIn, status=201)
def post_evaluation():
    args = json_body(EvaluationIn())
    rt = runtime()
    row = evaluations.publish(rt.db, _calendar(), args["tenant"], _period(args), _dims(args["by"]),
                              current().name, rt.clock.now())
    return jsonify({**EvaluationSummary().dump(row), "figures": row.figures}), 201


@bp.get("/evaluations")
@roles(*READERS)
@doc("Published evaluations of a tenant, newest period first", query=TenantArgs, response=EvaluationSummary,
     many=True)
def list_evaluations():
    tenant = query_args(TenantArgs())["tenant"]
    return jsonify(EvaluationSummary(many=True).dump(evaluations.list_evaluations(runtime().db, tenant)))


@bp.get("/evaluations/<int:evaluation_id>")
@roles(*READERS)
@doc("A published evaluation: its figures as published (as much as the caller may see) and its configuration; "
     "`format=csv|xlsx` for its groups as a file", query=ExportArgs)
def get_evaluation(evaluation_id: int):
    args = query_args(ExportArgs())
    db = runtime().db
    row = evaluations.get_evaluation(db, evaluation_id)
    figures = evaluations.visible_figures(db, row, current().viewer)
    fmt = wanted(args)
    if fmt != "json":
        name = f"evaluation-{row.id}-{row.tenant}-{row.period.replace('/', '_')}"
        return file_response(fmt, args["lang"], name, *assessment_table(figures, args["lang"]))
    return jsonify({**EvaluationSummary().dump(row), "config": row.config, "figures": figures})


@bp.get("/evaluations/<int:evaluation_id>/reproduction")
@roles("admin", "leader")
@doc("A published evaluation recomputed now with the configuration it recorded, and whether it matches")
def reproduce_evaluation(evaluation_id: int):
    db = runtime().db
    row = evaluations.get_evaluation(db, evaluation_id)
    again = evaluations.reproduce(db, _calendar(), row)
    same = again["groups"] == row.figures["groups"]
    return jsonify({"id": row.id, "matches": same, "published": row.figures["groups"], "recomputed": again["groups"]})
