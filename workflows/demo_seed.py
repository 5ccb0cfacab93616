"""The demo tenant: 连云港市 (320700) with its real districts, synthetic grids, a few hundred
inspectors on duty, supervisors per level, departments and problem categories — so that a newcomer
sees a living system. Idempotent: a tenant that already has grids is left alone."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from engine.db import Database

from .demo_city import DEMO_CITY_JSON, demo_feature_collection
from .geojson_import import import_grids
from .grids import Grid
from .people import Category, Department, DutyShift, Person

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


def seed_demo(db: Database, now: datetime, *, days_on_duty: int = 60) -> DemoSummary:
    data = json.loads(DEMO_CITY_JSON.read_text(encoding="utf-8"))
    tenant = data["city"]["code"]
    with db.session() as s:
        if s.scalar(select(func.count()).where(Grid.tenant == tenant)):
            people = dict(s.execute(select(Person.post, func.count()).where(Person.tenant == tenant)
                                    .group_by(Person.post)).all())
            grids = s.scalar(select(func.count()).where(Grid.tenant == tenant, Grid.valid_to.is_(None)))
            return DemoSummary(tenant, grids or 0, people.get("inspector", 0), people.get("supervisor", 0), False)
    collection = demo_feature_collection(data)
    import_grids(db, now, tenant, collection)
    features = [f["properties"] for f in collection["features"]]
    until = now + timedelta(days=days_on_duty)
    with db.transaction() as s:
        s.add(Department(code=f"{tenant}-sthjj", tenant=tenant, name=f"{data['city']['name']}生态环境局"))
        s.add_all(Category(code=c, tenant=tenant, name=n, urgent=u, sign_for_hours=sf, handle_hours=h,
                           verify_hours=v) for c, n, u, sf, h, v in CATEGORIES)
        people = []
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
            else:  # city and districts
                people.append(Person(tenant=tenant, name=f"{name}值班长", post="supervisor", grid_code=code,
                                     username=f"sup-{code}"))
        s.add_all(people)
        s.flush()
        s.add_all(DutyShift(person_id=p.id, grid_code=p.grid_code, category=None, starts_at=now, ends_at=until)
                  for p in people)
    inspectors = sum(p.post == "inspector" for p in people)
    return DemoSummary(tenant, len(features), inspectors, len(people) - inspectors, True)
