"""缓办 (deferral): a case whose handling cannot go on until a date (a court ruling, a season, a
factory's shutdown) is put on hold with the approval of the level above. While deferred its
handling clock stands still: what was left of the limit when the deferral began is what is left
when it ends, to the second, on the stage's own clock (natural or working time).

Both steps are synchronous service-task operations, so they commit with the process's change:
`case.defer` opens the deferral (the case row is marked, the remaining time measured) and
`case.resume` closes it (on the date, or released early) and gives the new handling deadline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ForeignKey, Integer, String, Table, select, update
from sqlalchemy.orm import Mapped, mapped_column

from engine import tasks
from engine.db import Base, UTCDateTime
from engine.errors import Conflict, InvalidInput, NotFound
from engine.models import HumanTask
from engine.operations import OperationContext
from engine.runtime import Runtime
from engine.visibility import Viewer, grid_visible

from .cases import Case
from .time_rules import ClockKind
from .working_time import CHINA, WorkCalendar


class CaseDeferral(Base):
    """One approved deferral of a case: while `ended_at` is empty, the case is deferred."""

    __tablename__ = "case_deferral"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("env_case.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    requested_by: Mapped[str | None] = mapped_column(String(200))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    remaining_seconds: Mapped[int] = mapped_column(Integer)  # of the handling limit, when it began
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_how: Mapped[str | None] = mapped_column(String(20))  # date | released


DEFERRALS = cast(Table, CaseDeferral.__table__)


def remaining(calendar: WorkCalendar, clock: ClockKind, now: datetime, due: datetime) -> int:
    """Seconds of the limit left between now and the deadline, on the stage's clock (0 if past)."""
    if due <= now:
        return 0
    if clock is ClockKind.NATURAL:
        return round((due - now).total_seconds())
    return round(calendar.working_hours_between(now, due) * 3600)


def resumed_deadline(calendar: WorkCalendar, clock: ClockKind, now: datetime, seconds: int) -> datetime:
    if clock is ClockKind.NATURAL:
        return now + timedelta(seconds=seconds)
    return calendar.add_working_hours(now, seconds / 3600)


def _moment(value: Any, name: str) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{name} needs a time zone")
    return moment


def _context(ctx: OperationContext) -> tuple[Any, datetime]:
    if ctx.conn is None or ctx.now is None:
        raise RuntimeError("the deferral operations run inside the change (synchronous)")
    return ctx.conn, ctx.now


def _completed_by(conn: Any, instance_id: str, element: str) -> str | None:
    ht = HumanTask.__table__
    return conn.execute(select(ht.c.completed_by).where(ht.c.instance_id == instance_id, ht.c.element_id == element,
                                                        ht.c.status == "completed")
                        .order_by(ht.c.ended_at.desc()).limit(1)).scalar()


def defer_operation(calendar: Callable[[], WorkCalendar]) -> Callable[[Mapping[str, Any], OperationContext], dict]:
    """`case.defer`: case_id, until, reason, due (the handling deadline), clock → {"remaining_seconds",
    "until"}. Who asked and who approved are read from the tasks they completed."""

    def handler(params: Mapping[str, Any], ctx: OperationContext) -> dict[str, Any]:
        conn, now = _context(ctx)
        until, due = _moment(params["until"], "until"), _moment(params["due"], "due")
        if until <= now:
            raise ValueError("a deferral must end in the future")
        asked, approved = (_completed_by(conn, ctx.instance_id, "handle"),
                           _completed_by(conn, ctx.instance_id, "approve_deferral"))
        if asked is not None and asked == approved:
            raise ValueError(f"{approved} asked for this deferral and cannot approve it too: another supervisor "
                             "of the level above decides")
        left = remaining(calendar(), ClockKind(params.get("clock") or "working"), now, due)
        conn.execute(DEFERRALS.insert().values(
            case_id=params["case_id"], reason=str(params.get("reason") or "")[:500],
            requested_by=asked, approved_by=approved,
            until=until, started_at=now, remaining_seconds=left))
        conn.execute(update(Case).where(Case.id == params["case_id"]).values(deferred_until=until))
        return {"remaining_seconds": left, "until": until.astimezone(CHINA).isoformat()}

    return handler


def resume_operation(calendar: Callable[[], WorkCalendar]) -> Callable[[Mapping[str, Any], OperationContext], str]:
    """`case.resume`: case_id, clock, how (date | released) → the new handling deadline (ISO 8601)."""

    def handler(params: Mapping[str, Any], ctx: OperationContext) -> str:
        conn, now = _context(ctx)
        table = DEFERRALS
        open_row = conn.execute(select(table.c.id, table.c.remaining_seconds)
                                .where(table.c.case_id == params["case_id"], table.c.ended_at.is_(None))
                                .order_by(table.c.id.desc()).limit(1)).first()
        if open_row is None:
            raise ValueError(f"case {params['case_id']} is not deferred")
        conn.execute(update(table).where(table.c.id == open_row.id)
                     .values(ended_at=now, ended_how=str(params.get("how") or "date")[:20]))
        conn.execute(update(Case).where(Case.id == params["case_id"]).values(deferred_until=None))
        due = resumed_deadline(calendar(), ClockKind(params.get("clock") or "working"), now,
                               int(open_row.remaining_seconds))
        return due.astimezone(CHINA).isoformat()

    return handler


def end_open_deferral(conn: Any, case_id: str, at: datetime) -> None:
    """A case that ends while on hold (cancelled) ends its deferral too, so its time is counted."""
    table = DEFERRALS
    conn.execute(update(table).where(table.c.case_id == case_id, table.c.ended_at.is_(None))
                 .values(ended_at=at, ended_how="closed"))


def deferred_totals(conn: Any, case_id: str) -> tuple[int, int]:
    """(deferrals, seconds deferred) of a case, for its assessment record."""
    table = DEFERRALS
    rows = conn.execute(select(table.c.started_at, table.c.ended_at).where(table.c.case_id == case_id)).all()
    seconds = sum(round((end - start).total_seconds()) for start, end in rows if end is not None)
    return len(rows), seconds


def request_deferral(rt: Runtime, viewer: Viewer, case_id: str, reason: str, until: datetime) -> HumanTask:
    """缓办 asked for from the case: the inspector handling it, or a supervisor of its grid on the
    inspector's behalf (their name on the timeline), completes the open handling task with `defer`
    — the same path, form check and approval as the handling form. NotFound for a case the viewer
    may not see; Conflict when the case is not being handled; NotAllowed for an inspector to whom
    the handling is not assigned."""
    if until <= rt.clock.now():
        raise InvalidInput("a deferral must end in the future", fields={"until": ["must be later than now"]})
    with rt.db.session() as s:
        case = s.get(Case, case_id)
        if case is None or case.instance_id is None or not grid_visible(viewer, case.grid_code):
            raise NotFound(f"case {case_id} does not exist")
        handle = s.scalar(select(HumanTask).where(HumanTask.instance_id == case.instance_id,
                                                  HumanTask.element_id == "handle", HumanTask.status == "open"))
    if handle is None:
        raise Conflict("the case is not being handled: only a case in handling can be deferred")
    on_behalf = viewer.oversees and handle.assignee != viewer.name
    return tasks.complete(rt, handle.id, viewer.name, {"handle_result": "defer", "defer_reason": reason,
                                                       "defer_until": until.isoformat()},
                          force=on_behalf, viewer=viewer)
