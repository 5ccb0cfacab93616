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
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    insert,
    select,
    update,
)

from engine import definitions, messages, outbox
from engine.change import new_instance
from engine.endings import InstanceEnded
from engine.errors import Conflict, NotFound
from engine.operations import OperationContext
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from notifications.receipts import acknowledge_instance

from .warning_models import (
    GROUP_ID,
    LEVELS,
    MESSAGE,
    PROCESS,
    TRACK,
    TRACK_QUEUE,
    TRACKED,
    E,
    G,
    GradedWarning,
    W,
    WarningEvent,
    WarningGroup,
)
from .warning_plans import lineage, plan_groups
from .working_time import CHINA

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
        assert isinstance(ack, dict)  # what made the status acknowledged
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
