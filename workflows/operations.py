"""Service-task operations of the closed-loop domain, registered into the engine's registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from engine.operations import OperationContext, OperationRegistry
from integrations.enforcement import EnforcementClient

from .cases import Case
from .deferrals import defer_operation, resume_operation
from .grids import Grid
from .notices import notify_operation
from .time_rules import ClockKind
from .working_time import CHINA, WorkCalendar


def classify_alarm(params: Mapping[str, Any], _ctx: OperationContext) -> dict[str, Any]:
    """Severity from how far a reading exceeds its limit (pure; runs inside the transaction)."""
    value, limit = float(params.get("value", 0)), float(params.get("limit", 0) or 0)
    ratio = value / limit if limit > 0 else 0.0
    level = "urgent" if ratio >= 2 else "high" if ratio >= 1.5 else "normal"
    return {"level": level, "ratio": round(ratio, 3)}


def sla_deadline(calendar: Callable[[], WorkCalendar]) -> Callable[[Mapping[str, Any], OperationContext], str]:
    """`sla.deadline`: a deadline `hours` (or `days`) after `start` (default: now by the engine's
    clock) on the stage's `clock` — working time on the statutory calendar (the default) or natural
    time around the clock — as ISO 8601 in China time, for a timer guarding the next task."""

    def handler(params: Mapping[str, Any], ctx: OperationContext) -> str:
        start_text = params.get("start")
        start = datetime.fromisoformat(start_text) if start_text else ctx.now
        if start is None or start.tzinfo is None:
            raise ValueError("sla.deadline needs an aware start time")
        clock = ClockKind(params.get("clock") or ClockKind.WORKING)
        days, hours = params.get("days"), params.get("hours")
        if days not in (None, ""):
            deadline = (start + timedelta(days=int(days)) if clock is ClockKind.NATURAL
                        else calendar().add_working_days(start, int(days)))
        elif hours not in (None, ""):
            deadline = (start + timedelta(hours=float(hours)) if clock is ClockKind.NATURAL
                        else calendar().add_working_hours(start, float(hours)))
        else:
            raise ValueError("sla.deadline needs `hours` or `days`")
        return deadline.astimezone(CHINA).isoformat()

    return handler


def enforcement_push(client: EnforcementClient) -> Callable[[Mapping[str, Any], OperationContext], Any]:
    """`enforcement.push` (asynchronous): the case goes to the enforcement system; its feedback comes
    back later as the `enforcement_feedback` message."""

    def handler(params: Mapping[str, Any], _ctx: OperationContext) -> dict[str, Any]:
        return client.push(dict(params))

    return handler


def case_transfer(params: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
    """`case.transfer`: the case moves to another grid in the change that transfers it — its row (so
    the new grid's people see it), the instance's scope and the level its escalations go to. The
    inspector routed in the old grid is dropped: the new grid's supervisor dispatches."""
    if ctx.conn is None or ctx.move_scope is None:
        raise RuntimeError("case.transfer runs inside the change (a synchronous operation)")
    case_id, to = params["case_id"], params["grid"]
    grid = ctx.conn.execute(select(Grid.parent_code).where(Grid.code == to, Grid.valid_to.is_(None))).first()
    if grid is None:
        raise ValueError(f"there is no grid {to!r}")
    parent = grid.parent_code or to
    case = ctx.conn.execute(select(Case.grid_code, Case.details).where(Case.id == case_id)
                            .with_for_update()).first()  # details is read-modify-written elsewhere too
    if case is not None and case.grid_code != to:
        ctx.conn.execute(update(Case).where(Case.id == case_id).values(
            grid_code=to, route_reason=f"转办 transferred from {case.grid_code}",
            details={**(case.details or {}), "parent": parent}))
    ctx.move_scope(to)
    return {"grid": to, "escalation_scope": parent, "inspector": None}


def register_operations(registry: OperationRegistry, *, calendar: Callable[[], WorkCalendar],
                        enforcement: EnforcementClient | None = None) -> None:
    registry.register("alarm.classify", classify_alarm)
    registry.register("sla.deadline", sla_deadline(calendar))
    registry.register("notify.send", notify_operation)
    registry.register("case.transfer", case_transfer)
    registry.register("case.defer", defer_operation(calendar))
    registry.register("case.resume", resume_operation(calendar))
    registry.register("enforcement.push", enforcement_push(enforcement or EnforcementClient("", "")),
                      is_async=True, queue="integrations", max_attempts=6)
