"""readings: monitoring data for systems that do not speak HJ 212 (posted as JSON, stored through the
same intake as the TCP listener's: the same table, the same `last_seen_at`, the same threshold-rule
hook), and the stored readings to read back.

Posting the same readings again stores nothing twice (a reading is identified by source, data
time, pollutant, command and kind), so a client may simply retry."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from engine.db import Database
from integrations.hj212 import VALUE_KINDS
from workflows.readings import DATA_FLAGS, ReadingsIntake, StoredReading, active_sources, count, intake_for, query

from .. import schemas
from ..auth import Principal, current, roles
from ..fields import EventTime, UtcTime
from ..http import doc, json_body, query_args, runtime
from ..schemas import Strict

bp = Blueprint("readings", __name__, url_prefix="/api/v1")
READERS = ("admin", "supervisor", "leader")
MAX_READINGS = 500  # per request
MN = validate.Length(min=1, max=64)
POLLUTANT = validate.Regexp(r"^[A-Za-z0-9_.]{1,40}\Z", error="an HJ 212 code: letters, digits, _ or . (max 40)")
LIMIT = Decimal(10) ** 15


def _bounded(value: Decimal) -> None:
    if not value.is_finite() or abs(value) >= LIMIT or value.as_tuple().exponent < -12:  # type: ignore[operator]
        raise ValidationError("a finite number below 10^15 with at most 12 decimals")


class ReadingIn(Strict):
    pollutant = fields.String(required=True, validate=POLLUTANT)
    kind = fields.String(required=True, validate=validate.OneOf(sorted(VALUE_KINDS)))
    value = fields.Decimal(required=True, allow_nan=False, validate=_bounded)
    flag = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(DATA_FLAGS))


class ReadingsIn(Strict):
    mn = fields.String(required=True, validate=MN)
    cn = fields.String(required=True, validate=validate.Regexp(r"^2[0-9]{3}\Z", error="an HJ 212 data command (2xxx), "
                                                                                   "e.g. 2011 real-time, 2061 hourly"))
    data_time = EventTime(data_key="dataTime", required=True)
    readings = fields.List(fields.Nested(ReadingIn), required=True,
                           validate=validate.Length(min=1, max=MAX_READINGS))

    @validates_schema
    def _once_each(self, data, **_kwargs) -> None:
        seen: set[tuple[str, str]] = set()
        for r in data.get("readings", []):
            key = (r["pollutant"], r["kind"])
            if key in seen:
                raise ValidationError(f"{r['pollutant']}-{r['kind']} appears twice", "readings")
            seen.add(key)


class AcceptedView(Schema):
    mn = fields.String()
    accepted = fields.Integer()


class ReadingView(Schema):
    id = fields.Integer()
    mn = fields.String()
    pollutant = fields.String()
    cn = fields.String()
    kind = fields.String()
    value = fields.Function(lambda r: _text(r.value))  # exact decimal text, without trailing zeros
    flag = fields.String(allow_none=True)
    data_time = fields.AwareDateTime(data_key="dataTime")
    received_at = fields.AwareDateTime(data_key="receivedAt")


class ReadingListArgs(schemas.PageArgs):
    mn = fields.String(validate=MN)
    pollutant = fields.String(validate=POLLUTANT)
    start = UtcTime(data_key="from")
    end = UtcTime(data_key="to")

    @validates_schema
    def _window(self, data, **_kwargs) -> None:
        if "start" in data and "end" in data and data["start"] >= data["end"]:
            raise ValidationError("must be after `from`", "to")


def _text(value: Decimal) -> str:
    """The same text on every database ("49.2", "1200"): SQLite keeps no trailing zeros, PostgreSQL does."""
    return format(value.normalize(), "f")


def _intake() -> ReadingsIntake:
    intake = current_app.extensions.get("gridloop.readings")
    if intake is None:  # the intake of the processes: with the threshold rules when they are there
        rt = runtime()
        intake = current_app.extensions["gridloop.readings"] = intake_for(rt.db, rt.clock)
    return intake


@bp.post("/readings")
@roles("system")
@doc("Store monitoring readings of one source and data time (for systems without HJ 212); a repeat is "
     "stored once", body=ReadingsIn, response=AcceptedView, status=201)
def post_readings():
    a = json_body(ReadingsIn())
    intake = _intake()
    with intake.db.session() as s:
        if a["mn"] not in active_sources(s, [a["mn"]]):
            raise ValidationError({"mn": ["no active monitoring source has this MN"]})
    accepted = intake.accept({"mn": a["mn"], "pollutant": r["pollutant"], "cn": a["cn"], "kind": r["kind"],
                              "value": r["value"], "flag": r["flag"], "data_time": a["data_time"]}
                             for r in a["readings"])
    return jsonify(AcceptedView().dump({"mn": a["mn"], "accepted": accepted})), 201


def _scope(p: Principal) -> str | None:
    """Admins and leaders see every source; a supervisor the sources in their grid ("" without one)."""
    return None if p.has("admin", "leader") else (p.scope or "")


@bp.get("/readings")
@roles(*READERS)
@doc("Stored readings by source, pollutant and data-time window [from, to), newest first",
     query=ReadingListArgs, response=schemas.page_of(ReadingView, "ReadingPage"))
def list_readings():
    args = query_args(ReadingListArgs())
    scope = _scope(current())
    stmt = query(mn=args.get("mn"), pollutant=args.get("pollutant"), start=args.get("start"), end=args.get("end"),
                 scope=scope)
    db: Database = runtime().db
    rows: list[StoredReading] = []
    total = 0
    if scope != "":  # a supervisor without a grid sees nothing (fail closed)
        with db.session() as s:
            total = count(s, stmt)
            rows = list(s.scalars(stmt.order_by(StoredReading.data_time.desc(), StoredReading.id.desc())
                                  .offset(args["offset"]).limit(args["limit"])))
    return jsonify({"items": ReadingView(many=True).dump(rows), "total": total, "offset": args["offset"],
                    "limit": args["limit"]})
