"""The demo tenant: 连云港市 (320700) with its real districts, synthetic grids, a few hundred
inspectors, supervisors per level, a duty roster, departments and problem categories — so that a
newcomer sees a living system. Idempotent: a tenant that already has grids is left alone.

The roster is a city's: the units' and towns' staff (and the supervisors of each level) work day
shifts on working days, 08:30–17:30 China time; the grid centre of each district and of the city
keeps a duty inspector and a duty supervisor on night shifts (17:30–08:30) and holiday duty (weekends
and holidays, around the clock). So something filed at any hour routes to someone on duty: by day to
the unit, at night and on holidays to the district centre above it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select

from engine.db import Database, Prepared, insert_all

from .demo_city import DEMO_CITY_JSON, demo_feature_collection
from .geojson_import import import_grids
from .grids import Grid
from .people import Category, Department, DutyShift, Person
from .working_time import CHINA, CalendarService, WorkCalendar

# code, name, urgent, sign-for h, handle h, verify h (working hours; DOMAIN.md §2)
CATEGORIES = [
    ("air.exceedance", "废气超标 Air emission exceedance", True, 0.5, 4.0, 2.0),
    ("water.exceedance", "废水超标 Waste-water exceedance", True, 0.5, 4.0, 2.0),
    ("device.fault", "设备故障 Monitoring device fault", False, 2.0, 24.0, 8.0),
    ("noise", "噪声扰民 Noise nuisance", False, 2.0, 16.0, 8.0),
    ("solid_waste", "固废倾倒 Illegal dumping", False, 2.0, 24.0, 8.0),
    ("petition", "信访 Petition", False, 8.0, 120.0, 16.0),
    ("citizen.report", "群众举报 Citizen report", False, 2.0, 24.0, 8.0),
]


@dataclass(frozen=True)
class DemoSummary:
    tenant: str
    grids: int
    inspectors: int
    supervisors: int
    seeded: bool


DEMO_ROSTER_DAYS = 60  # what `gridloop run` and `seed-demo` roster


def seed_demo(db: Database, now: datetime, *, days_on_duty: int = 21) -> DemoSummary:
    """Seed the tenant with a roster of `days_on_duty` days from `now` (a working day's day shifts are
    ~420 rows: tests that seed it hundreds of times keep to three weeks)."""
    data = json.loads(DEMO_CITY_JSON.read_text(encoding="utf-8"))
    tenant = data["city"]["code"]
    with db.session() as s:
        if s.scalar(select(func.count()).where(Grid.tenant == tenant)):
            posts = dict(s.execute(select(Person.post, func.count()).where(Person.tenant == tenant)
                                   .group_by(Person.post)).all())
            grids = s.scalar(select(func.count()).where(Grid.tenant == tenant, Grid.valid_to.is_(None)))
            return DemoSummary(tenant, grids or 0, posts.get("inspector", 0), posts.get("supervisor", 0), False)
    collection = demo_feature_collection(data)
    import_grids(db, now, tenant, collection)
    features = [f["properties"] for f in collection["features"]]
    until = now + timedelta(days=days_on_duty)
    calendar = CalendarService(db).calendar()
    with db.transaction() as s:
        s.add(Department(code=f"{tenant}-sthjj", tenant=tenant, name=f"{data['city']['name']}生态环境局"))
        s.add_all(Category(code=c, tenant=tenant, name=n, urgent=u, sign_for_hours=sf, handle_hours=h,
                           verify_hours=v) for c, n, u, sf, h, v in CATEGORIES)
        people: list[Person] = []
        for p in features:
            level, code, name = p["level"], p["code"], p["name"]
            if level == "unit":
                people.append(Person(tenant=tenant, name=f"{name}网格员", post="inspector", grid_code=code,
                                     username=f"insp-{code}"))
            elif level == "town":
                people.append(Person(tenant=tenant, name=f"{name}巡查员", post="inspector", grid_code=code,
                                     username=f"insp-{code}"))
                people.append(Person(tenant=tenant, name=f"{name}网格长", post="supervisor", grid_code=code,
                                     username=f"sup-{code}"))
            else:  # city and districts: the 值班长 by day, the centre's duty team at night and on holidays
                people.append(Person(tenant=tenant, name=f"{name}值班长", post="supervisor", grid_code=code,
                                     username=f"sup-{code}"))
                people.append(Person(tenant=tenant, name=f"{name}值班员", post="inspector", grid_code=code,
                                     username=f"duty-insp-{code}"))
                people.append(Person(tenant=tenant, name=f"{name}值班监管员", post="supervisor", grid_code=code,
                                     username=f"duty-sup-{code}"))
        s.add_all(people)
        s.flush()
        db.run(s.connection(), SHIFT_ROWS, roster(people, calendar, now, until))  # ~20,000 rows: executemany
    inspectors = sum(p.post == "inspector" for p in people)
    return DemoSummary(tenant, len(features), inspectors, len(people) - inspectors, True)


DAY_SHIFT = (time(8, 30), time(17, 30))  # China time, on working days
SHIFT_ROWS = Prepared(insert_all(DutyShift.__table__))


def roster(people: list[Person], calendar: WorkCalendar, start: datetime, until: datetime) -> list[dict]:
    """Duty shift rows from the day before `start` until `until`: day shifts for everyone but the
    centres' duty teams, who take the nights (kind `night`) and the days off (`holiday`) — never
    overlapping, each at most 32.5 hours (the last day off runs on to 08:30)."""
    day_staff = [p for p in people if not (p.username or "").startswith("duty-")]
    duty_team = [p for p in people if (p.username or "").startswith("duty-")]
    rows: list[dict] = []
    day = start.astimezone(CHINA).date() - timedelta(days=1)
    while _at(day, time(0)) < until:
        working, next_working = calendar.is_working_day(day), calendar.is_working_day(day + timedelta(days=1))
        begin = _at(day, DAY_SHIFT[1]) if working else _at(day, time(0))
        end = _at(day + timedelta(days=1), DAY_SHIFT[0] if next_working else time(0))
        kind = "night" if working else "holiday"
        rows += [_shift(p, begin, end, kind) for p in duty_team]
        if working:
            rows += [_shift(p, _at(day, DAY_SHIFT[0]), _at(day, DAY_SHIFT[1]), "day") for p in day_staff]
        day += timedelta(days=1)
    return rows


def _at(day: date, t: time) -> datetime:
    return datetime.combine(day, t, CHINA)


def _shift(p: Person, begin: datetime, end: datetime, kind: str) -> dict:
    return {"person_id": p.id, "grid_code": p.grid_code, "category": None, "starts_at": begin, "ends_at": end,
            "kind": kind}
