"""calendar: administrators load a year's statutory holidays and swapped working days (调休).

The body of `PUT /calendar/{year}` is also the file `gridloop calendar load FILE` reads, checked by
the same schema and `load_year`, so both answer the same words:

    {"source": "国务院办公厅关于2031年部分节假日安排的通知",
     "holidays": [{"date": "2031-01-01", "name": "元旦"}, ...],
     "workdays": [{"date": "2031-01-26", "name": "春节调休"}, ...]}

`holidays` are days off (every statutory holiday and the days off around it), `workdays` the weekend
days worked instead; every date in the year, none in both lists."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from engine.db import Database
from workflows.working_time import CalendarDay, CalendarError, CalendarYear, load_year

from ..auth import current, roles
from ..http import doc, json_body, runtime
from ..schemas import Strict


class DayEntry(Strict):
    date = fields.Date(required=True)
    name = fields.String(load_default="", validate=validate.Length(max=100))


class YearSchema(Strict):
    source = fields.String(required=True, validate=validate.Length(min=1, max=50))
    holidays = fields.List(fields.Nested(DayEntry), required=True, validate=validate.Length(max=366))
    workdays = fields.List(fields.Nested(DayEntry), load_default=list, validate=validate.Length(max=366))

    @validates_schema
    def _no_duplicates(self, data, **_kw):
        for name in ("holidays", "workdays"):
            days = [e["date"] for e in data.get(name, [])]
            if len(days) != len(set(days)):
                raise ValidationError("a date is listed twice", field_name=name)


class YearView(Schema):
    year = fields.Integer()
    source = fields.String(allow_none=True)
    loaded_by = fields.String(data_key="loadedBy", allow_none=True)
    loaded_at = fields.AwareDateTime(data_key="loadedAt", allow_none=True)
    holidays = fields.List(fields.Dict())
    workdays = fields.List(fields.Dict())


bp = Blueprint("calendar", __name__, url_prefix="/api/v1/calendar")
YEAR = "<int:year>"
FIRST_YEAR, LAST_YEAR = 2000, 2100


def _covered(year: int) -> int:
    """The year of the path, if the calendar covers it (a plain 404 would not say why)."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise NotFound(f"the calendar covers the years {FIRST_YEAR} to {LAST_YEAR}; {year} is not one of them")
    return year


@bp.put(f"/{YEAR}")
@roles("admin")
@doc("Load (replace) a year's holidays and swapped working days", body=YearSchema, response=YearView)
def put_year(year: int):
    year = _covered(year)
    args = json_body(YearSchema())
    rt = runtime()
    load_checked(rt.db, rt.clock.now(), year, args, current().name)
    current_app.extensions["gridloop.calendar"].invalidate()
    return jsonify(YearView().dump(year_of(rt.db, year)))


def load_checked(db: Database, now, year: int, args: dict[str, Any], actor: str) -> None:
    """`load_year` with its refusals as field errors (ValidationError), for the API and the CLI."""
    try:
        load_year(db, now, year=year, source=args["source"], actor=actor,
                  holidays={e["date"]: e["name"] for e in args["holidays"]},
                  workdays={e["date"]: e["name"] for e in args["workdays"]})
    except CalendarError as exc:
        raise ValidationError(exc.fields) from exc


def year_of(db: Database, year: int) -> dict[str, Any]:
    """The year as `GET /calendar/{year}` shows it (before YearView)."""
    with db.session() as s:
        meta = s.get(CalendarYear, year)
        days = s.execute(select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                                   CalendarDay.day <= date(year, 12, 31))
                         .order_by(CalendarDay.day)).scalars().all()
    return {"year": year, "source": meta.source if meta else None, "loaded_by": meta.loaded_by if meta else None,
            "loaded_at": meta.loaded_at if meta else None,
            "holidays": [{"date": d.day.isoformat(), "name": d.name} for d in days if d.kind == "holiday"],
            "workdays": [{"date": d.day.isoformat(), "name": d.name} for d in days if d.kind == "workday"]}


@bp.get(f"/{YEAR}")
@roles("admin", "supervisor", "leader")
@doc("A year's holidays and swapped working days, and where they came from", response=YearView)
def get_year(year: int):
    return jsonify(YearView().dump(year_of(runtime().db, _covered(year))))
