"""Problems an inspector finds on patrol (网格巡查): a fourth intake source beside monitoring alarms,
petitions and citizens' reports (DOMAIN.md §1, "event generation").

A patrol report goes through the same intake as the others: a report of the same category within
the duplicate radius and window of an open case joins it as an occurrence (reports.join_nearby),
anything else becomes a new case routed by its position and started on env_case. It is reviewed
(甄别) like every intake: the inspector found it, a supervisor of the grid decides whether it is a
case and dispatches it — the plan's "发现、上报、派单" keeps discovery and dispatch apart, and the
有效上报率 of the inspector's post counts the reports a supervisor found valid.

Everything is checked before anything is kept: the category (the tenant's), the position (inside
the inspector's own grid, within the check-in tolerance) and every photo (type, size, a full
decode). The photos' rows are written in the intake's transaction, so a case never lacks the
photos it was filed with; their files are content-addressed and written just before (a file no
row names is harmless, and the same bytes sent again land on it)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import InvalidInput
from engine.runtime import Runtime

from .cases import Alarm, Case, Intake, UnknownCategory, file_alarm
from .evidence import EvidenceError, Place, check_photo, distance_outside_m, keep_photo_file, photo_row
from .grids import GridIndex
from .people import Category, Person
from .reports import DuplicatePolicy, join_nearby
from .working_time import CHINA

SOURCE = "patrol"
MAX_PHOTOS = 4


@dataclass(frozen=True)
class Photo:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class PatrolReport:
    tenant: str
    report_id: str
    reporter: str  # the inspector's username
    scope: str  # the inspector's grid
    category: str
    lon: float
    lat: float
    description: str
    photos: tuple[Photo, ...]


@dataclass(frozen=True)
class Limits:
    storage: Path
    max_photo_bytes: int
    tolerance_m: float  # how far outside their grid a position may lie (GPS), as for check-ins
    duplicates: DuplicatePolicy = field(default_factory=DuplicatePolicy)


def report_id(now: datetime, reporter: str, idempotency_key: str | None, random_part: str) -> str:
    """The report's external id: from the client's Idempotency-Key when it sent one, so the same
    write replayed after its stored answer expired is still a repeat of its case."""
    if idempotency_key:
        return "P-" + hashlib.sha256(f"{reporter}\n{idempotency_key}".encode()).hexdigest()[:32]
    return f"P{now.astimezone(CHINA):%Y%m%d}-{random_part}"


def file_patrol_report(rt: Runtime, index: GridIndex, report: PatrolReport, limits: Limits) -> Intake:
    """A new case (outcome "filed"), an occurrence of the open case of its category nearby
    ("occurrence"), or the same report again ("repeat"); its photos on the case's instance."""
    _check(rt, index, report, limits)
    now = rt.clock.now()
    kept = [keep_photo_file(limits.storage, now, p.data, p.content_type) for p in report.photos]
    alarm = Alarm(tenant=report.tenant, source=SOURCE, external_id=report.report_id, category=report.category,
                  occurred_at=now, lon=report.lon, lat=report.lat, description=report.description,
                  details={"reporter": report.reporter, "patrol": {
                      "report_id": report.report_id, "person": _person(rt, report.reporter),
                      "photos": [k.sha256 for k in kept]}})

    def attach(s: Session, case: Case) -> None:
        place = Place(task_id=report.report_id, instance_id=case.instance_id or "", grid_code=case.grid_code)
        s.add_all([photo_row(k, place, report.reporter, now) for k in kept])

    intake = join_nearby(rt, alarm, limits.duplicates, attach)
    if intake is None:
        try:
            intake = file_alarm(rt, index, alarm, report.reporter, attach)
        except UnknownCategory:  # removed since it was checked
            raise InvalidInput(f"unknown category {report.category!r}", fields=["category"]) from None
    return intake


def _check(rt: Runtime, index: GridIndex, report: PatrolReport, limits: Limits) -> None:
    if not report.photos:
        raise InvalidInput("a patrol report needs at least one photo", fields=["photos"])
    if len(report.photos) > MAX_PHOTOS:
        raise InvalidInput(f"at most {MAX_PHOTOS} photos", fields=["photos"])
    for n, photo in enumerate(report.photos, 1):
        try:
            check_photo(photo.data, photo.content_type, limits.max_photo_bytes, field="photos")
        except EvidenceError as exc:
            raise EvidenceError("photos", f"photo {n}: {exc.message}", exc.status) from None
    with rt.db.session() as s:
        category = s.get(Category, report.category)
    if category is None or category.tenant != report.tenant:
        raise InvalidInput(f"unknown category {report.category!r} in {report.tenant}", fields=["category"])
    outside = _outside_m(rt, index, report)
    if outside > limits.tolerance_m:
        where = f"{outside:.0f} m outside" if math.isfinite(outside) else "outside"
        raise InvalidInput(f"the position is {where} your grid {report.scope} (tolerance {limits.tolerance_m:.0f} m)",
                           fields=["lon", "lat"])


def _outside_m(rt: Runtime, index: GridIndex, report: PatrolReport) -> float:
    """How far the position lies outside the reporter's grid: 0 when the unit containing it is in
    their scope, else the distance to their grid's polygon (infinite when the scope is no grid)."""
    unit = index.locate(report.lon, report.lat)
    if unit is not None and unit.startswith(report.scope):
        return 0.0
    try:
        return distance_outside_m(rt.db, report.scope, report.lon, report.lat)
    except EvidenceError:
        return math.inf


def _person(rt: Runtime, username: str) -> dict[str, object] | None:
    """The reporter's staff record, as it stood (their login may be renamed or removed later)."""
    with rt.db.session() as s:
        p = s.scalar(select(Person).where(Person.username == username))
    return {"id": p.id, "name": p.name, "grid": p.grid_code} if p else None
