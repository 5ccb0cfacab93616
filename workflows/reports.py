"""Reports from outside the grid: citizens' reports (through Open311) and petitions (信访).

A citizen's report of the same category within `radius_m` of an open case reported in the last
`window` is the same problem: it joins that case as an occurrence instead of opening a new one
(FixMyStreet shows "already reported nearby" for the same reason). The case's location is its
first report's; a case without a location is never matched, nor is a report without one.

A petition is a case with the limits of DOMAIN.md §2 (信访工作条例): accept or refuse within 15
days of receipt, finish within 60, one extension of up to 30 days. They are counted in natural
days (the usual reading of the regulation, and the courts' rule for periods): the day of receipt
does not count, a limit ends with its last day (China time). The regulation counts the 60 days
from acceptance; counting them from receipt, as here, is never later than the legal limit."""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import instances
from engine.db import Database
from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import HumanTask
from engine.runtime import Runtime

from .cases import Alarm, Attach, Case, CaseAlarm, Intake, file_alarm
from .evidence import Evidence, Place, store_photo
from .grids import Grid, GridIndex
from .people import Category
from .working_time import CHINA

EARTH_RADIUS_M = 6_371_000.0
METERS_PER_DEGREE = 111_320.0


# -- citizens' reports ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DuplicatePolicy:
    radius_m: float = 100.0
    window: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Report:
    """One citizen's report, as the intake sees it (whatever channel it came through)."""

    tenant: str
    request_id: str
    category: str
    received_at: datetime
    lon: float | None = None
    lat: float | None = None
    address: str | None = None
    description: str | None = None
    media_url: str | None = None
    reporter: dict[str, str] = field(default_factory=dict)  # name, phone, email, openid: whatever was given
    channel: dict[str, str] = field(default_factory=dict)  # device_id, account_id, api client
    photo: Evidence | None = None


def new_request_id(now: datetime) -> str:
    """A public id for a report: not guessable, sortable by day."""
    return f"R{now.astimezone(CHINA):%Y%m%d}-{secrets.token_hex(5)}"


def jurisdictions(db: Database) -> list[str]:
    """Tenants that can take reports: those with a current city grid."""
    with db.session() as s:
        return list(s.scalars(select(Grid.tenant).where(Grid.level == "city", Grid.valid_to.is_(None))
                              .order_by(Grid.tenant).distinct()))


def reportable_categories(db: Database, tenant: str, codes: Iterable[str]) -> list[Category]:
    """The tenant's categories among `codes` (the ones citizens may report), in code order."""
    with db.session() as s:
        return list(s.scalars(select(Category).where(Category.tenant == tenant, Category.code.in_(list(codes)))
                              .order_by(Category.code)))


def store_report_photo(db: Database, now: datetime, request_id: str, actor: str, data: bytes, content_type: str,
                       storage, max_bytes: int) -> Evidence:
    """Keep a report's photo with the same checks as on-site photos (type, size, magic bytes); it is
    filed under the report's id and linked to the case's instance once the case is known."""
    return store_photo(db, now, Place(task_id=request_id, instance_id="", grid_code=""), actor, data,
                       content_type, storage, max_bytes)


def file_report(rt: Runtime, index: GridIndex, report: Report, actor: str,
                policy: DuplicatePolicy = DuplicatePolicy()) -> Intake:
    """A new case, or an occurrence of the open case of its category nearby (`outcome` says which)."""
    details = {"report": _report_details(report)}
    if report.reporter:
        details["reporter"] = dict(report.reporter)
    alarm = Alarm(tenant=report.tenant, source="citizen", external_id=report.request_id, category=report.category,
                  occurred_at=report.received_at, lon=report.lon, lat=report.lat, description=report.description,
                  details=details)
    intake = join_nearby(rt, alarm, policy) if report.lon is not None and report.lat is not None else None
    if intake is None:
        intake = file_alarm(rt, index, alarm, actor)
        if intake.outcome == "filed" and report.lon is None and report.address:
            reason = f"reported by address only (no geocoder): {report.address}"[:300]
            with rt.db.transaction() as s:
                s.execute(update(Case).where(Case.id == intake.case.id).values(route_reason=reason))
    if report.photo is not None and intake.case.instance_id:
        with rt.db.transaction() as s:
            s.execute(update(Evidence).where(Evidence.id == report.photo.id)
                      .values(instance_id=intake.case.instance_id))
    return intake


def _report_details(report: Report) -> dict[str, Any]:
    photo = report.photo
    return {"request_id": report.request_id, "lon": report.lon, "lat": report.lat, "address": report.address,
            "description": report.description, "media_url": report.media_url, "channel": dict(report.channel),
            "photo": {"evidence_id": photo.id, "sha256": photo.sha256, "content_type": photo.content_type}
            if photo else None}


def join_nearby(rt: Runtime, alarm: Alarm, policy: DuplicatePolicy, attach: Attach | None = None) -> Intake | None:
    """Record `alarm` as an occurrence of the nearest open case of its category within the policy's
    radius and window, in one transaction with that case locked (and `attach`'s rows); None when
    there is none. Only for an alarm with a position (its two callers see to that)."""
    assert alarm.lon is not None and alarm.lat is not None
    now = rt.clock.now()
    with rt.db.transaction() as s:
        if s.scalar(select(CaseAlarm.id).where(CaseAlarm.source == alarm.source,
                                               CaseAlarm.external_id == alarm.external_id)) is not None:
            return None  # the same report again: file_alarm answers it as a repeat
        case = nearest_open_case(s, alarm.tenant, alarm.category, alarm.lon, alarm.lat,
                                 since=alarm.occurred_at - policy.window, radius_m=policy.radius_m)
        if case is None:
            return None
        case.occurrences += 1
        case.last_seen = max(case.last_seen, alarm.occurred_at)
        s.add(CaseAlarm(case_id=case.id, source=alarm.source, external_id=alarm.external_id,
                        occurred_at=alarm.occurred_at, received_at=now,
                        details={**(alarm.details or {}), "joined": True}))
        if attach is not None:
            attach(s, case)
    return Intake(case, "occurrence")


def nearest_open_case(s: Session, tenant: str, category: str, lon: float, lat: float, *, since: datetime,
                      radius_m: float) -> Case | None:
    """The open case of `category` nearest to (lon, lat) within `radius_m`, last reported at or after
    `since` (locked for update). A bounding box narrows the rows, the great-circle distance decides."""
    dlat = radius_m / METERS_PER_DEGREE
    dlon = radius_m / (METERS_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
    rows = s.scalars(select(Case).where(
        Case.tenant == tenant, Case.category == category, Case.status == "open", Case.last_seen >= since,
        Case.lat.between(lat - dlat, lat + dlat), Case.lon.between(lon - dlon, lon + dlon))
        .order_by(Case.id).with_for_update()).all()
    scored = [(distance_m(lon, lat, c.lon, c.lat), c.id, c)
              for c in rows if c.lon is not None and c.lat is not None]  # always (the query): narrows the types
    return min((t for t in scored if t[0] <= radius_m), default=(None, None, None))[2]


def distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle (haversine) distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class ReportState:
    """Where a report stands: its case's status and stage, for the reporter and the public."""

    request_id: str
    case_id: str
    category: str
    category_name: str
    status: str  # open | closed
    outcome: str | None  # closed | invalid | merged | cancelled
    joined: bool  # it joined a case reported before (a duplicate)
    agency: str  # the grid the case belongs to
    requested_at: datetime
    updated_at: datetime
    expected_at: datetime | None  # when the current stage is due
    stages: list[str]  # names of the open tasks
    lon: float | None
    lat: float | None
    address: str | None
    description: str | None
    media_url: str | None
    has_photo: bool


@dataclass(frozen=True)
class ReportQuery:
    tenant: str
    request_ids: list[str] | None = None
    categories: list[str] | None = None
    statuses: list[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 1000


def report_states(db: Database, q: ReportQuery) -> list[ReportState]:
    """Citizens' reports (source "citizen", whichever channel) of a tenant, newest first."""
    stmt = select(CaseAlarm, Case).join(Case, Case.id == CaseAlarm.case_id).where(
        CaseAlarm.source == "citizen", Case.tenant == q.tenant)
    if q.request_ids is not None:
        stmt = stmt.where(CaseAlarm.external_id.in_(q.request_ids))
    if q.categories:
        stmt = stmt.where(Case.category.in_(q.categories))
    if q.statuses:
        stmt = stmt.where(Case.status.in_(q.statuses))
    if q.since is not None:
        stmt = stmt.where(CaseAlarm.received_at >= q.since)
    if q.until is not None:
        stmt = stmt.where(CaseAlarm.received_at <= q.until)
    with db.session() as s:
        rows = s.execute(stmt.order_by(CaseAlarm.received_at.desc(), CaseAlarm.id.desc()).limit(q.limit)).all()
        cases = {c.id: c for _, c in rows}
        names = dict(s.execute(select(Category.code, Category.name).where(
            Category.code.in_({c.category for c in cases.values()}))).all())
        grids = dict(s.execute(select(Grid.code, Grid.name).where(
            Grid.code.in_({c.grid_code for c in cases.values()}), Grid.valid_to.is_(None))).all())
        open_tasks: dict[str, list[HumanTask]] = {}
        instance_ids = [c.instance_id for c in cases.values() if c.instance_id and c.status == "open"]
        for t in s.scalars(select(HumanTask).where(HumanTask.instance_id.in_(instance_ids),
                                                   HumanTask.status == "open").order_by(HumanTask.created_at)):
            open_tasks.setdefault(t.instance_id, []).append(t)
    return [_state(a, c, names.get(c.category, c.category), grids.get(c.grid_code, c.grid_code),
                   open_tasks.get(c.instance_id or "", [])) for a, c in rows]


def _state(a: CaseAlarm, c: Case, category_name: str, agency: str, tasks: list[HumanTask]) -> ReportState:
    r = (a.details or {}).get("report") or {}
    dues = [t.due_at for t in tasks if t.due_at is not None]
    updated = c.closed_at if c.status == "closed" and c.closed_at else max(
        [a.received_at, c.last_seen, *(t.created_at for t in tasks)])
    return ReportState(
        request_id=a.external_id, case_id=c.id, category=c.category, category_name=category_name, status=c.status,
        outcome=c.outcome, joined=bool((a.details or {}).get("joined")), agency=agency,
        requested_at=a.received_at, updated_at=updated, expected_at=max(dues) if dues else None,
        stages=[t.name or t.element_id for t in tasks],
        lon=r.get("lon", c.lon if a.external_id == c.external_id else None),
        lat=r.get("lat", c.lat if a.external_id == c.external_id else None),
        address=r.get("address"), description=r.get("description", c.description if not r else None),
        media_url=r.get("media_url"), has_photo=bool(r.get("photo")))


def report_photo(db: Database, request_id: str) -> Evidence | None:
    """The photo posted with a citizen's report (never another evidence row, whatever the id)."""
    with db.session() as s:
        alarm = s.scalar(select(CaseAlarm).where(CaseAlarm.source == "citizen", CaseAlarm.external_id == request_id))
        photo = ((alarm.details or {}).get("report") or {}).get("photo") if alarm is not None else None
        return s.get(Evidence, photo["evidence_id"]) if photo else None


# -- petitions (信访) -------------------------------------------------------------------------------

ACCEPT_DAYS = 15
COMPLETE_DAYS = 60
MAX_EXTENSION_DAYS = 30
ACCEPTANCE_TASK = "review"  # env_case's 甄别: for a petition, the decision to accept (受理) or refuse it


@dataclass(frozen=True)
class Petition:
    tenant: str
    petition_id: str
    category: str
    received_at: datetime
    content: str
    petitioner: dict[str, str]
    lon: float | None = None
    lat: float | None = None
    address: str | None = None


def petition_limits(received_at: datetime) -> dict[str, str]:
    """The limits of a petition received at `received_at`, as China dates (the last day of each)."""
    received_on = received_at.astimezone(CHINA).date()
    return {"received_on": received_on.isoformat(),
            "acceptance_due": (received_on + timedelta(days=ACCEPT_DAYS)).isoformat(),
            "completion_due": (received_on + timedelta(days=COMPLETE_DAYS)).isoformat(),
            "counted_in": "natural days"}


def file_petition(rt: Runtime, index: GridIndex, p: Petition, actor: str) -> Intake:
    """A case for the petition (the same petition id again is a repeat of its case)."""
    if p.received_at > rt.clock.now():
        raise InvalidInput("a petition cannot be received in the future", fields=["receivedAt"])
    details: dict[str, Any] = {"petition": {**petition_limits(p.received_at), "extension": None},
                               "reporter": dict(p.petitioner)}
    if p.address:
        details["address"] = p.address
    alarm = Alarm(tenant=p.tenant, source="petition", external_id=p.petition_id, category=p.category,
                  occurred_at=p.received_at, lon=p.lon, lat=p.lat, description=p.content, details=details)
    return file_alarm(rt, index, alarm, actor)


def find_petition(db: Database, petition_id: str) -> Case | None:
    with db.session() as s:
        return s.scalar(select(Case).where(Case.source == "petition", Case.external_id == petition_id))


def extend_petition(rt: Runtime, petition_id: str, days: int, reason: str, actor: str) -> Case:
    """Extend the completion limit once, by at most 30 days, before it has passed (延期, approved by
    the caller). Recorded on the case and on its timeline."""
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise InvalidInput(f"an extension is 1 to {MAX_EXTENSION_DAYS} days", fields=["days"])
    now = rt.clock.now()
    with rt.db.transaction() as s:
        case = s.scalar(select(Case).where(Case.source == "petition", Case.external_id == petition_id)
                        .with_for_update())
        if case is None:
            raise NotFound(f"petition {petition_id} does not exist")
        petition = dict(case.details.get("petition") or {})
        if case.status != "open":
            raise Conflict("the petition's case is closed")
        if petition.get("extension"):
            raise Conflict("the petition has already been extended once")
        due = date.fromisoformat(petition["completion_due"])
        if now.astimezone(CHINA).date() > due:
            raise Conflict(f"the completion limit ended on {due}; an extension must be approved before it")
        new_due = due + timedelta(days=days)
        petition["extension"] = {"days": days, "reason": reason, "by": actor, "at": now.isoformat(),
                                 "previous_due": due.isoformat()}
        petition["completion_due"] = new_due.isoformat()
        case.details = {**case.details, "petition": petition}
        instance_id = case.instance_id
    if instance_id:
        instances.annotate(rt, instance_id, actor, "petition.extended", days=days, reason=reason,
                           completion_due=new_due.isoformat())
    extended = find_petition(rt.db, petition_id)
    assert extended is not None  # found and locked above; cases are never deleted
    return extended


@dataclass(frozen=True)
class Limit:
    due: date
    done_at: datetime | None
    state: str  # pending | met | late (done after its last day) | overdue (not done, past its last day)
    days_left: int | None  # pending only: days until the end of the last day counts down to 0


def petition_status(db: Database, case: Case, now: datetime) -> dict[str, Limit]:
    """Acceptance (the review's decision, or the case's end if sooner) and completion (the case's end)
    against their limits."""
    petition = case.details["petition"]
    with db.session() as s:
        decided = s.scalar(select(HumanTask.ended_at).where(
            HumanTask.instance_id == case.instance_id, HumanTask.element_id == ACCEPTANCE_TASK,
            HumanTask.status == "completed").order_by(HumanTask.ended_at).limit(1)) if case.instance_id else None
    closed = case.closed_at if case.status == "closed" else None
    accepted = min((t for t in (decided, closed) if t is not None), default=None)
    today = now.astimezone(CHINA).date()
    return {"acceptance": _limit(date.fromisoformat(petition["acceptance_due"]), accepted, today),
            "completion": _limit(date.fromisoformat(petition["completion_due"]), closed, today)}


def _limit(due: date, done_at: datetime | None, today: date) -> Limit:
    if done_at is not None:
        return Limit(due, done_at, "met" if done_at.astimezone(CHINA).date() <= due else "late", None)
    if today > due:
        return Limit(due, None, "overdue", None)
    return Limit(due, None, "pending", (due - today).days)
