"""Graded warnings (环境安全预警, DOMAIN.md §1): a warning of level I–IV goes to the people its level
names, who must acknowledge it in time; silence means a reminder, then the level above, up to the
city.

The level and the warning's grid pick the policy (`warning_policy`: the rows of the tenant and
level whose grid prefix is the longest one matching, else the defaults below). Each row is one
recipient group: the supervisors of a grid (or of its ancestor at a given level), or each
inspector or leader of it. Each group runs its own `graded_warning` process (bpmn/), so its
deadlines are durable timers fired exactly once by the scheduler; the group id is the process's
business key and the correlation value of its `warning_ack` message.

Acknowledging is that message: from the API (a signed-in member of staff) or from the link in the
notice (a token signed with the application secret, per group). The process's end is projected
here, in the change that ends it (an engine end listener): the group's status, who acknowledged,
and the warning's status over all its groups. Reminders and escalations are recorded for the
timeline by a `warning.track` job after their change commits."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import definitions, messages, outbox
from engine.change import new_instance
from engine.db import Base, UTCDateTime
from engine.endings import InstanceEnded
from engine.errors import Conflict, NotFound
from engine.models import BigId
from engine.operations import OperationContext
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from notifications.receipts import acknowledge_instance

from .grids import Grid
from .people import Person
from .routing import on_duty
from .working_time import CHINA

PROCESS = "graded_warning"
MESSAGE = "warning_ack"
TRACK = "warning.track"
TRACK_QUEUE = "engine"
LEVELS = (1, 2, 3, 4)  # Ⅰ (most severe) … Ⅳ
DEFAULT_ACK_MINUTES = {1: 15, 2: 30, 3: 60, 4: 120}
NOTIFY_POSTS = ("supervisor", "inspector", "leader")
NOTIFY_LEVELS = ("grid", "town", "district", "city")  # grid: the warning's own grid; else its ancestor
STATUSES = ("open", "acknowledged", "escalated", "expired")
GROUP_STATUSES = ("open", "escalated", "acknowledged", "expired", "cancelled")
TRACKED = ("renotified", "escalated")
GROUP_ID = re.compile(r"^[0-9a-f]{32}$")


class WarningPolicy(Base):
    """Who is told of a warning of `level` in grids under `grid_prefix`, and how long they have.
    Several rows with the same (tenant, level, grid_prefix) are several recipient groups."""

    __tablename__ = "warning_policy"
    __table_args__ = (Index("ix_warning_policy_lookup", "tenant", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12))
    level: Mapped[int] = mapped_column(Integer)  # 1–4
    grid_prefix: Mapped[str | None] = mapped_column(String(40))  # None: every grid of the tenant
    notify_level: Mapped[str] = mapped_column(String(10), default="grid")  # NOTIFY_LEVELS
    notify_post: Mapped[str] = mapped_column(String(20), default="supervisor")  # NOTIFY_POSTS
    ack_minutes: Mapped[int] = mapped_column(Integer)  # the deadline of each attempt
    renotify: Mapped[bool] = mapped_column(Boolean, default=True)  # remind once before escalating


class GradedWarning(Base):
    __tablename__ = "env_warning"
    __table_args__ = (
        Index("ix_warning_grid", "tenant", "grid_code", "status"),
        Index("ix_warning_created", "tenant", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12))
    level: Mapped[int] = mapped_column(Integer)
    grid_code: Mapped[str] = mapped_column(String(40))
    source: Mapped[str | None] = mapped_column(String(100))  # the emitting source: an outlet MN, a station id
    station: Mapped[str] = mapped_column(String(200))  # its name, as the notice shows it
    pollutant: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(20))
    limit: Mapped[float] = mapped_column("limit_value", Float)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20))  # STATUSES, over all its groups
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(200))
    # the acknowledgement that made the warning acknowledged (every group's is on the group)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WarningGroup(Base):
    """One recipient group of a warning and its `graded_warning` process."""

    __tablename__ = "warning_group"
    __table_args__ = (UniqueConstraint("warning_id", "seq", name="uq_warning_group_seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # business key and ack correlation value
    warning_id: Mapped[str] = mapped_column(ForeignKey("env_warning.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    scope: Mapped[str] = mapped_column(String(40))  # the grid whose people are told first
    post: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str | None] = mapped_column(String(100))  # one person (inspector, leader); None: supervisors
    policy: Mapped[str] = mapped_column(String(200))  # why these people: "policy 7", "default", a fallback
    ack_minutes: Mapped[int] = mapped_column(Integer)
    renotify: Mapped[bool] = mapped_column(Boolean)
    escalation_scopes: Mapped[list[str]] = mapped_column(JSON)  # the levels above, up to the city
    current_scope: Mapped[str] = mapped_column(String(40))  # the level told last
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))  # GROUP_STATUSES
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ack_via: Mapped[str | None] = mapped_column(String(10))  # api | link
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WarningEvent(Base):
    """The warning's timeline: raised, renotified, escalated, acknowledged, expired, cancelled."""

    __tablename__ = "warning_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)  # what recorded it: a repeat records nothing
    warning_id: Mapped[str] = mapped_column(ForeignKey("env_warning.id"), index=True)
    group_id: Mapped[str | None] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


W, G, E = GradedWarning.__table__, WarningGroup.__table__, WarningEvent.__table__


# -- who is told ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupPlan:
    scope: str
    post: str
    recipient: str | None
    ack_minutes: int
    renotify: bool
    escalation_scopes: list[str]
    policy: str


class UnknownGrid(LookupError):
    pass


def lineage(s: Session, tenant: str, code: str) -> list[tuple[str, str]]:
    """(code, level) from the grid up to the city, current rows; UnknownGrid if it is not one."""
    chain: list[tuple[str, str]] = []
    current: str | None = code
    while current is not None and len(chain) <= len(NOTIFY_LEVELS):
        row = s.execute(select(Grid.code, Grid.level, Grid.parent_code).where(
            Grid.tenant == tenant, Grid.code == current, Grid.valid_to.is_(None))).first()
        if row is None:
            if not chain:
                raise UnknownGrid(code)
            break
        chain.append((row.code, row.level))
        current = row.parent_code
    return chain


def policies_for(s: Session, tenant: str, level: int, grid: str) -> list[WarningPolicy]:
    """The tenant's rows for `level` with the longest grid prefix that `grid` starts with."""
    rows = [p for p in s.scalars(select(WarningPolicy).where(WarningPolicy.tenant == tenant,
                                                             WarningPolicy.level == level).order_by(WarningPolicy.id))
            if grid.startswith(p.grid_prefix or "")]
    best = max((len(p.grid_prefix or "") for p in rows), default=0)
    return [p for p in rows if len(p.grid_prefix or "") == best]


def default_policy(level: int) -> list[tuple[str, str, int, bool, str]]:
    """(notify level, post, minutes, renotify, why): the grid's supervisors; for I and II also the
    district's."""
    levels = ["grid", "district"] if level <= 2 else ["grid"]
    return [(at, "supervisor", DEFAULT_ACK_MINUTES[level], True, "default") for at in levels]


def plan_groups(s: Session, tenant: str, level: int, chain: Sequence[tuple[str, str]],
                at: datetime) -> list[GroupPlan]:
    """The recipient groups of a warning in `chain[0]` (see `lineage`)."""
    rows = policies_for(s, tenant, level, chain[0][0])
    specs = ([(p.notify_level, p.notify_post, p.ack_minutes, p.renotify, f"policy {p.id}") for p in rows]
             or default_policy(level))
    plans: list[GroupPlan] = []
    seen: set[tuple[str, str, str | None]] = set()
    for notify_level, post, minutes, renotify, why in specs:
        start = 0 if notify_level == "grid" else next(
            (i for i, (_code, lvl) in enumerate(chain) if lvl == notify_level), None)
        if start is None:  # e.g. a district level for a warning of the city itself
            continue
        for plan in _groups_at(s, chain[start:], post, minutes, renotify, why, at):
            if (plan.scope, plan.post, plan.recipient) not in seen:
                seen.add((plan.scope, plan.post, plan.recipient))
                plans.append(plan)
    return plans


def _groups_at(s: Session, chain: Sequence[tuple[str, str]], post: str, minutes: int, renotify: bool, why: str,
               at: datetime) -> list[GroupPlan]:
    codes = [code for code, _level in chain]
    staffed = set(s.scalars(select(Person.grid_code).where(Person.grid_code.in_(codes), Person.post == "supervisor",
                                                           Person.active.is_(True))))
    if post != "supervisor":
        people = on_duty(s, grid_code=codes[0], category="", at=at, post=post) or list(s.scalars(
            select(Person.username).where(Person.grid_code == codes[0], Person.post == post, Person.active.is_(True),
                                          Person.username.is_not(None)).order_by(Person.username)))
        if people:
            above = [c for c in codes[1:] if c in staffed]
            return [GroupPlan(codes[0], post, name, minutes, renotify, above, why) for name in people]
        why = f"{why}; no {post} in {codes[0]}, its supervisors instead"
    # notify.send climbs from a grid without supervisors to its parent: start where it will land,
    # so that the first escalation reaches new people
    first = next((i for i, c in enumerate(codes) if c in staffed), len(codes) - 1)
    return [GroupPlan(codes[first], "supervisor", None, minutes, renotify,
                      [c for c in codes[first + 1:] if c in staffed], why)]


# -- raising ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WarningInput:
    tenant: str
    level: int
    grid_code: str
    station: str
    pollutant: str
    value: float
    limit: float
    observed_at: datetime
    unit: str = ""
    source: str | None = None


def raise_warning(rt: Runtime, w: WarningInput, actor: str, ack_link: Callable[[str], str]) -> GradedWarning:
    """Write the warning and its groups and start one process per group, in one transaction: there
    is never a warning without its processes. `ack_link(group_id)` is the link put in the notices."""
    if w.level not in LEVELS:
        raise ValueError(f"warning level must be 1–4, not {w.level!r}")
    definition = definitions.latest(rt, PROCESS)  # before the write lock (SQLite): NotFound if not deployed
    if definition.suspended:
        raise Conflict(f"version {definition.version} of {PROCESS} is suspended: it takes no new warnings; "
                       "an administrator activates it or makes another version the latest")
    now = rt.clock.now()
    with UnitOfWork(rt) as uow:
        s = uow.session
        chain = lineage(s, w.tenant, w.grid_code)
        plans = plan_groups(s, w.tenant, w.level, chain, now)
        warning = GradedWarning(id=f"W{now.astimezone(CHINA):%Y%m%d}-{uuid.uuid4().hex[:8]}", tenant=w.tenant,
                                level=w.level, grid_code=w.grid_code, source=w.source, station=w.station,
                                pollutant=w.pollutant, value=w.value, unit=w.unit, limit=w.limit,
                                observed_at=w.observed_at, status="open", created_at=now, created_by=actor)
        groups = [WarningGroup(id=uuid.uuid4().hex, warning_id=warning.id, seq=i, scope=p.scope, post=p.post,
                               recipient=p.recipient, policy=p.policy[:200], ack_minutes=p.ack_minutes,
                               renotify=p.renotify, escalation_scopes=p.escalation_scopes, current_scope=p.scope,
                               escalations=0, status="open")
                  for i, p in enumerate(plans, start=1)]
        s.add(warning)
        s.flush()
        s.add_all(groups)
        s.add(WarningEvent(key=f"{warning.id}:raised", warning_id=warning.id, kind="raised", at=now, actor=actor,
                           detail={"level": w.level, "groups": [_describe(g) for g in groups]}))
        s.flush()
        conn = s.connection()
        for g in groups:
            variables = process_variables(w, warning.id, g)
            with new_instance(rt, definition, conn, actor, g.id, {**variables, "ack_url": ack_link(g.id)},
                              scope=w.grid_code) as ch:
                ch.record("instance.started", definition_id=definition.id, version=definition.version,
                          business_key=g.id, variables=variables)  # not the link: it acknowledges
            g.instance_id = ch.instance.id
            uow.changed(ch)
        uow.commit()
    return warning


def process_variables(w: WarningInput, warning_id: str, g: WarningGroup) -> dict[str, Any]:
    return {"warning_id": warning_id, "ack_key": g.id, "level": w.level, "grid": w.grid_code,
            "station": w.station, "pollutant": w.pollutant, "value": number_text(w.value), "unit": w.unit,
            "limit": number_text(w.limit), "observed_at": w.observed_at.isoformat(), "source": w.source or "",
            "notify_to": g.recipient or "", "notify_scope": "" if g.recipient else g.scope,
            "escalation_scopes": list(g.escalation_scopes), "ack_minutes": g.ack_minutes, "renotify": g.renotify,
            "escalations": 0}


def number_text(value: float) -> str:
    """180.0 → "180", 0.35 → "0.35": as a person writes a reading."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _describe(g: WarningGroup) -> dict[str, Any]:
    return {"group": g.id, "scope": g.scope, "post": g.post, "recipient": g.recipient, "policy": g.policy,
            "ack_minutes": g.ack_minutes}


# -- acknowledging ------------------------------------------------------------------------------------

def acknowledge(rt: Runtime, group_id: str, *, by: str, via: str, note: str | None = None) -> str:
    """Send the group's `warning_ack` message. Answers what happened: acknowledged (now), duplicate
    (it already was; nothing changes), expired or cancelled (too late: nothing changes)."""
    with rt.db.session() as s:
        group = s.get(WarningGroup, group_id)
    if group is None:
        raise NotFound(f"warning group {group_id} does not exist")
    if group.status == "acknowledged":
        return "duplicate"
    if group.status in ("expired", "cancelled") or group.instance_id is None:
        return group.status
    payload = {"by": by, "via": via, "at": rt.clock.now().isoformat(), **({"note": note} if note else {})}
    result = messages.correlate(rt, name=MESSAGE, message_id=f"warning-ack:{group_id}", actor=by,
                                correlation_value=group_id, payload=payload)
    if result.duplicate:
        return "duplicate"
    if result.status != "delivered":  # the process ended in between (its last deadline passed)
        with rt.db.session() as s:
            status = s.scalar(select(WarningGroup.status).where(WarningGroup.id == group_id))
        return "duplicate" if status == "acknowledged" else str(status)
    return "acknowledged"


def _ack_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"gridloop.warning-ack", hashlib.sha256).digest()


def ack_token(secret: str, group_id: str) -> str:
    """The token of a group's acknowledgement link: its id and an HMAC of it (128 bits)."""
    mac = hmac.new(_ack_key(secret), group_id.encode(), hashlib.sha256).digest()[:16]
    return f"{group_id}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def group_of_token(secret: str, token: str) -> str | None:
    """The group a token was signed for; None for anything forged or malformed."""
    group_id, _, _mac = token.partition(".")
    if not GROUP_ID.match(group_id):
        return None
    return group_id if hmac.compare_digest(ack_token(secret, group_id).encode(), token.encode()) else None


# -- the process's side ------------------------------------------------------------------------------

def deadline_operation(params: Mapping[str, Any], ctx: OperationContext) -> str:
    """`warning.deadline`: `minutes` after now (the engine's clock), ISO 8601 — a timer's timeDate."""
    minutes = float(params.get("minutes") or 0)
    if not (math.isfinite(minutes) and minutes > 0):
        raise ValueError("warning.deadline needs a positive number of `minutes`")
    if ctx.now is None:
        raise ValueError("warning.deadline must run inside a change")
    return (ctx.now + timedelta(minutes=minutes)).isoformat()


def track_operation(params: Mapping[str, Any], ctx: OperationContext) -> str:
    """`warning.track`: put a reminder or an escalation on the warning's timeline, after commit."""
    event = str(params.get("event", ""))
    if event not in TRACKED:
        raise ValueError(f"warning.track records {', '.join(TRACKED)}, not {event!r}")
    if ctx.emit is None or ctx.now is None:
        raise ValueError("warning.track must run inside a change")
    ctx.emit(TRACK_QUEUE, TRACK, {"key": f"{ctx.instance_id}:{ctx.task_id}", "warning_id": params.get("warning_id"),
                                  "group_id": params.get("group_id"), "event": event, "scope": params.get("scope"),
                                  "step": params.get("step"), "at": ctx.now.isoformat()})
    return event


def track_job(rt: Runtime, payload: dict[str, Any]) -> None:
    """The `warning.track` job: the timeline entry and, for an escalation, the group's level told
    last. A repeated job records nothing new; an escalation reported after the end changes no status."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        if not outbox.mark_done(s, payload.get("outbox_id"), now):
            return
        conn = s.connection()
        if not _lock_warning(conn, payload["warning_id"]):
            return
        if conn.execute(select(E.c.id).where(E.c.key == payload["key"])).first() is not None:
            return
        detail = {k: payload[k] for k in ("scope", "step") if payload.get(k) not in (None, "")}
        conn.execute(insert(E).values(key=payload["key"], warning_id=payload["warning_id"],
                                      group_id=payload.get("group_id"), kind=payload["event"],
                                      at=datetime.fromisoformat(payload["at"]), actor="process", detail=detail))
        if payload["event"] == "escalated" and payload.get("step"):
            conn.execute(update(G).where(G.c.id == payload["group_id"], G.c.escalations < int(payload["step"]))
                         .values(escalations=int(payload["step"]), current_scope=payload["scope"]))
            conn.execute(update(G).where(G.c.id == payload["group_id"], G.c.status == "open")
                         .values(status="escalated"))
        refresh_status(conn, payload["warning_id"])


track_job.marks_done = True  # type: ignore[attr-defined]


def warning_ended(conn: Connection, ended: InstanceEnded) -> None:
    """The end listener: the group acknowledged (its `ack` message arrived), expired (the city's
    deadline passed) or cancelled; then the warning's status over all its groups."""
    if ended.process_key != PROCESS or not ended.business_key:
        return
    group = conn.execute(select(G).where(G.c.id == ended.business_key)).mappings().first()
    if group is None or not _lock_warning(conn, group["warning_id"]):
        return
    v, ack = ended.variables, ended.variables.get("ack")
    status = ("cancelled" if ended.status == "cancelled" else "acknowledged" if isinstance(ack, dict)
              else "expired")
    values: dict[str, Any] = {"status": status, "ended_at": ended.ended_at}
    steps = int(v.get("escalations") or 0)
    if steps > group["escalations"] and v.get("escalation_scope"):
        values.update(escalations=steps, current_scope=v["escalation_scope"])
    actor = ended.actor
    if status == "acknowledged":
        actor = str(ack.get("by") or ended.actor)[:200]
        values.update(acknowledged_by=actor, acknowledged_at=ended.ended_at, ack_via=str(ack.get("via") or "")[:10])
        acknowledge_instance(conn, ended.instance_id, ended.ended_at, actor)
    conn.execute(update(G).where(G.c.id == group["id"]).values(**values))
    detail = {"scope": values.get("current_scope", group["current_scope"]), "via": values.get("ack_via"),
              "note": ack.get("note") if isinstance(ack, dict) else None}
    conn.execute(insert(E).values(key=f"{ended.instance_id}:end", warning_id=group["warning_id"], group_id=group["id"],
                                  kind=status, at=ended.ended_at, actor=actor,
                                  detail={k: d for k, d in detail.items() if d}))
    refresh_status(conn, group["warning_id"], group["id"])


def _lock_warning(conn: Connection, warning_id: str) -> bool:
    """Lock the warning row: its groups change one at a time, so the status over them is right."""
    return conn.execute(select(W.c.id).where(W.c.id == warning_id).with_for_update()).first() is not None


def warning_status(group_statuses: Sequence[str]) -> str:
    """acknowledged when every group was; expired when every group ended and one was not
    acknowledged; escalated while a group waits at a higher level; else open."""
    live = [s for s in group_statuses if s != "cancelled"]
    if not live:
        return "expired"
    if all(s == "acknowledged" for s in live):
        return "acknowledged"
    if all(s in ("acknowledged", "expired") for s in live):
        return "expired"
    return "escalated" if "escalated" in live else "open"


def refresh_status(conn: Connection, warning_id: str, group_id: str | None = None) -> None:
    """The warning's status over its groups (the warning row is locked). Once acknowledged, who and
    when are those of the acknowledgement that completed it: group `group_id`'s, else the latest."""
    groups = conn.execute(select(G.c.id, G.c.status, G.c.acknowledged_by, G.c.acknowledged_at)
                          .where(G.c.warning_id == warning_id)).all()
    status = warning_status([g.status for g in groups])
    values: dict[str, Any] = {"status": status, "acknowledged_by": None, "acknowledged_at": None}
    if status == "acknowledged":
        acked = sorted((g for g in groups if g.acknowledged_at is not None),
                       key=lambda g: (g.id == group_id, g.acknowledged_at))
        if acked:
            values.update(acknowledged_by=acked[-1].acknowledged_by, acknowledged_at=acked[-1].acknowledged_at)
    conn.execute(update(W).where(W.c.id == warning_id).values(**values))


def install(rt: Runtime) -> None:
    """The operations, the job and the end listener of graded warnings."""
    rt.registry.register("warning.deadline", deadline_operation)
    rt.registry.register("warning.track", track_operation)
    rt.add_job(TRACK, track_job)
    if warning_ended not in rt.end_listeners:
        rt.end_listeners.append(warning_ended)
