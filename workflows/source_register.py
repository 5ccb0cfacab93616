"""Use cases of the register of monitoring sources (workflows/sources.py): register one, change one,
replace its limits, import many. Each is one unit of work with its audit event (system chain): a
refused request changes nothing, and every refusal names the fields (by item index for a list).

A source's grid is a current grid of its tenant: given, or located from its lon/lat."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine import audit
from engine.errors import Conflict, InvalidInput, NotFound
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork

from .grids import Grid, GridIndexCache
from .items import Items, by_index
from .monitoring_rules import RuleState
from .sources import MonitoringSource, PollutantLimit

Problems = dict[str, Any]  # one item's field errors: {name: [messages]}
CHANGEABLE = ("name", "enterprise", "password", "active", "offline_after_s")


@dataclass(frozen=True)
class NewSource:
    mn: str
    tenant: str
    kind: str
    name: str
    password: str
    enterprise: str | None = None
    lon: float | None = None
    lat: float | None = None
    grid: str | None = None
    offline_after_s: int = 3600
    active: bool = True


@dataclass(frozen=True)
class SourceDetail:
    source: MonitoringSource
    limits: list[PollutantLimit]
    active_rules: list[RuleState]


def detail(s: Session, source: MonitoringSource) -> SourceDetail:
    """The source with its limits and its active rule states (offline, exceedance, device fault)."""
    limits = s.scalars(select(PollutantLimit).where(PollutantLimit.mn == source.mn)
                       .order_by(PollutantLimit.pollutant, PollutantLimit.data_kind)).all()
    states = s.scalars(select(RuleState).where(RuleState.mn == source.mn, RuleState.active.is_(True))
                       .order_by(RuleState.rule, RuleState.pollutant)).all()
    return SourceDetail(source, list(limits), list(states))


# -- use cases -------------------------------------------------------------------------------------

def register(rt: Runtime, actor: str, new: NewSource, grids: GridIndexCache) -> SourceDetail:
    """Register one source. InvalidInput when it cannot be placed in a grid; Conflict for an MN
    already registered."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        grid, errors = _place(grids, new.tenant, new.grid, new.lon, new.lat, _current_grids(s, new.tenant))
        if errors:
            raise InvalidInput(f"source {new.mn} was not registered: {_first(errors)}", fields=errors)
        if s.get(MonitoringSource, new.mn) is not None:
            raise Conflict(f"source {new.mn} is already registered")
        source = _new_source(new, grid, rt.clock.now())
        s.add(source)
        s.flush()
        _audit(rt, s, actor, "source.registered", mn=source.mn, tenant=source.tenant, kind=source.kind, grid=grid)
        found = detail(s, source)
        uow.commit()
    return found


def change(rt: Runtime, actor: str, mn: str, changes: Mapping[str, Any], grids: GridIndexCache) -> SourceDetail:
    """Change the fields given in `changes` (CHANGEABLE, lon/lat together, grid). A new location
    without `grid` is located again; `grid: None` locates from the location (or clears the grid)."""
    with UnitOfWork(rt) as uow:
        s = uow.session
        source = s.get(MonitoringSource, mn, with_for_update=True)
        if source is None:
            raise NotFound(f"source {mn} does not exist")
        changed = [k for k in CHANGEABLE if k in changes]
        for key in changed:
            setattr(source, key, changes[key])
        if "lon" in changes:
            source.lon, source.lat = changes["lon"], changes["lat"]
            changed += ["lon", "lat"]
        if "grid" in changes or changes.get("lon") is not None:
            grid, errors = _place(grids, source.tenant, changes.get("grid"), source.lon, source.lat,
                                  _current_grids(s, source.tenant))
            if errors:
                raise InvalidInput(f"source {mn} was not changed: {_first(errors)}", fields=errors)
            if grid is not None or "grid" in changes:
                source.grid_code = grid
                changed.append("grid")
        _audit(rt, s, actor, "source.changed", mn=mn, fields=sorted(set(changed)), grid=source.grid_code)
        found = detail(s, source)
        uow.commit()
    return found


def replace_limits(rt: Runtime, actor: str, mn: str, limits: Items) -> list[PollutantLimit]:
    """Replace all of the source's limits (loaded items: PollutantLimit's columns but `mn`). One limit
    per pollutant and data kind; NotFound before any item's problems."""
    problems = dict(limits.refused)
    first: dict[tuple[str, str], int] = {}
    for i, lim in limits.loaded:
        key = (lim["pollutant"], lim["data_kind"])
        if key in first:
            problems[i] = {"pollutant": [f"{key[0]} ({key[1]}) is already limited by item {first[key]}"]}
        first.setdefault(key, i)
    with UnitOfWork(rt) as uow:
        s = uow.session
        if s.get(MonitoringSource, mn, with_for_update=True) is None:
            raise NotFound(f"source {mn} does not exist")
        if problems:
            raise InvalidInput("the limits were refused; nothing was changed", fields=by_index(problems))
        before = [limit_record(x) for x in s.scalars(select(PollutantLimit).where(PollutantLimit.mn == mn))]
        s.execute(delete(PollutantLimit).where(PollutantLimit.mn == mn))
        new = [PollutantLimit(mn=mn, **lim) for _, lim in limits.loaded]
        s.add_all(new)
        s.flush()
        _audit(rt, s, actor, "source.limits_replaced", mn=mn, before=before, after=[limit_record(x) for x in new])
        uow.commit()
    return new


def import_sources(rt: Runtime, actor: str, sources: Items, grids: GridIndexCache) -> list[str]:
    """Register every loaded NewSource, or none: the refusal lists every item's problems by index, a
    Conflict when each problem is an MN already registered or repeated. The MNs registered."""
    if not sources.count:
        raise InvalidInput("give at least one source", fields={"_schema": ["give at least one source"]})
    problems = dict(sources.refused)
    loaded: list[tuple[int, NewSource]] = sources.loaded
    with UnitOfWork(rt) as uow:
        s = uow.session
        current = {t: _current_grids(s, t) for t in sorted({new.tenant for _, new in loaded})}
        existing = _existing(s, (new.mn for _, new in loaded))
        placed: list[tuple[NewSource, str | None]] = []
        conflicts: set[int] = set()
        first: dict[str, int] = {}
        for i, new in loaded:
            grid, errors = _place(grids, new.tenant, new.grid, new.lon, new.lat, current[new.tenant])
            if new.mn in existing:
                errors = {**errors, "mn": [f"source {new.mn} is already registered"]}
                conflicts.add(i)
            elif new.mn in first:
                errors = {**errors, "mn": [f"the MN of item {first[new.mn]} again"]}
                conflicts.add(i)
            first.setdefault(new.mn, i)
            if errors:
                if set(errors) != {"mn"}:
                    conflicts.discard(i)
                problems[i] = errors
            else:
                placed.append((new, grid))
        if problems:
            message = f"the import was refused ({len(problems)} of {sources.count} items); nothing was changed"
            refusal = Conflict if set(problems) <= conflicts else InvalidInput
            raise refusal(message, fields=by_index(problems))
        now = rt.clock.now()
        s.add_all(_new_source(new, grid, now) for new, grid in placed)
        s.flush()
        mns = [new.mn for new, _ in placed]
        _audit(rt, s, actor, "source.imported", count=len(mns), mns=mns)
        uow.commit()
    return mns


# -- helpers ---------------------------------------------------------------------------------------

def decimal_text(value: Decimal) -> str:
    """The same text on every database ("100", "0.5"): SQLite keeps no trailing zeros, PostgreSQL does."""
    return format(Decimal(value).normalize(), "f")


def limit_record(lim: PollutantLimit) -> dict[str, Any]:
    """A limit as the API shows it (the audit trail keeps limits in this form)."""
    return {"pollutant": lim.pollutant, "dataKind": lim.data_kind, "limitValue": decimal_text(lim.limit_value),
            "unit": lim.unit, "basis": lim.basis, "useConverted": lim.use_converted, "hysteresis": lim.hysteresis}


def _first(errors: Problems) -> str:
    return next(iter(errors.values()))[0]


def _current_grids(s: Session, tenant: str) -> set[str]:
    return set(s.scalars(select(Grid.code).where(Grid.tenant == tenant, Grid.valid_to.is_(None))))


def _place(grids: GridIndexCache, tenant: str, grid: str | None, lon: float | None, lat: float | None,
           current: set[str]) -> tuple[str | None, Problems]:
    """The grid of a source to be (given, or located from lon/lat), or the field errors why not."""
    if not current:
        return None, {"tenant": [f"tenant {tenant} has no grids: import them first"]}
    if grid is not None:
        if grid not in current:
            return None, {"grid": [f"not a current grid of tenant {tenant}"]}
        return grid, {}
    if lon is None or lat is None:
        return None, {}
    unit = grids.get(tenant).locate(lon, lat)
    if unit is None:
        return None, {"lon": [f"the point is outside every grid of tenant {tenant}: give `grid`"]}
    return unit, {}


def _existing(s: Session, mns: Iterable[str]) -> set[str]:
    wanted = sorted(set(mns))
    found: set[str] = set()
    for i in range(0, len(wanted), 500):
        found.update(s.scalars(select(MonitoringSource.mn).where(MonitoringSource.mn.in_(wanted[i:i + 500]))))
    return found


def _new_source(new: NewSource, grid: str | None, now) -> MonitoringSource:
    return MonitoringSource(mn=new.mn, tenant=new.tenant, kind=new.kind, name=new.name, enterprise=new.enterprise,
                            lon=new.lon, lat=new.lat, grid_code=grid, password=new.password,
                            offline_after_s=new.offline_after_s, active=new.active, created_at=now)


def _audit(rt: Runtime, s: Session, actor: str, action: str, **details: Any) -> None:
    audit.append_system(rt, s, [audit.AuditDraft(action=action, actor=actor, at=rt.clock.now(),
                                                     details=details)])
