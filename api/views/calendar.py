"""calendar: administrators load a year's statutory holidays and swapped working days (调休)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select

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
YEAR = "<int(min=2000,max=2100):year>"


@bp.put(f"/{YEAR}")
@roles("admin")
@doc("Load (replace) a year's holidays and swapped working days", body=YearSchema, response=YearView)
def put_year(year: int):
    args = json_body(YearSchema())
    rt = runtime()
    try:
        load_year(rt.db, rt.clock.now(), year=year, source=args["source"], actor=current().name,
                  holidays={e["date"]: e["name"] for e in args["holidays"]},
                  workdays={e["date"]: e["name"] for e in args["workdays"]})
    except CalendarError as exc:
        raise ValidationError({"holidays": [str(exc)]}) from exc
    current_app.extensions["gridloop.calendar"].invalidate()
    return get_year.__wrapped__(year)


@bp.get(f"/{YEAR}")
@roles("admin", "supervisor", "leader")
@doc("A year's holidays and swapped working days, and where they came from", response=YearView)
def get_year(year: int):
    with runtime().db.session() as s:
        meta = s.get(CalendarYear, year)
        days = s.execute(select(CalendarDay).where(CalendarDay.day >= date(year, 1, 1),
                                                   CalendarDay.day <= date(year, 12, 31))
                         .order_by(CalendarDay.day)).scalars().all()
    body = {"year": year, "source": meta.source if meta else None, "loaded_by": meta.loaded_by if meta else None,
            "loaded_at": meta.loaded_at if meta else None,
            "holidays": [{"date": d.day.isoformat(), "name": d.name} for d in days if d.kind == "holiday"],
            "workdays": [{"date": d.day.isoformat(), "name": d.name} for d in days if d.kind == "workday"]}
    return jsonify(YearView().dump(body))
