"""When a case's process ends: the case is marked closed with its outcome, and its assessment
record is written — what the assessment (考核, DOMAIN.md §3) counts per grid, category and
inspector: on-time sign-for, handling and closing, reworks, returns, extensions, escalations.

It runs as an engine end listener, inside the change that ends the instance, so a case is closed
exactly when its process is, never one without the other."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Table, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime
from engine.endings import InstanceEnded
from engine.models import AuditEvent, HumanTask

from .cases import CASE_PROCESS, Case
from .deferrals import deferred_totals, end_open_deferral

OUTCOMES = ("closed", "invalid", "merged", "cancelled")
COUNTERS = ("reworks", "returns", "extensions", "escalations", "transfers")  # kept by the process itself


class CaseAssessment(Base):
    """One row per finished case, written once when its process ends."""

    __tablename__ = "case_assessment"
    __table_args__ = (Index("ix_assessment_tenant_closed", "tenant", "closed_at"),
                      Index("ix_assessment_tenant_due", "tenant", "due_at"),
                      Index("ix_assessment_tenant_filed", "tenant", "filed_at"))

    case_id: Mapped[str] = mapped_column(ForeignKey("env_case.id"), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12))
    grid_code: Mapped[str] = mapped_column(String(40), index=True)
    category: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(String(20))
    inspector: Mapped[str | None] = mapped_column(String(200), index=True)
    outcome: Mapped[str] = mapped_column(String(20))  # closed | invalid | merged | cancelled
    violation: Mapped[bool] = mapped_column(Boolean, default=False)
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    lead_hours: Mapped[float] = mapped_column(Float)  # filed → closed, calendar hours
    # None: the stage never happened (an invalid case was never signed for)
    reviewed_on_time: Mapped[bool | None] = mapped_column(Boolean)  # 甄别 within its limit
    dispatched_on_time: Mapped[bool | None] = mapped_column(Boolean)
    signed_on_time: Mapped[bool | None] = mapped_column(Boolean)
    handled_on_time: Mapped[bool | None] = mapped_column(Boolean)
    verified_on_time: Mapped[bool | None] = mapped_column(Boolean)  # 按时核查
    closed_on_time: Mapped[bool | None] = mapped_column(Boolean)
    reworks: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    reminders: Mapped[int] = mapped_column(Integer, default=0)
    urges: Mapped[int] = mapped_column(Integer, default=0)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    deferrals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # 缓办 approved
    deferred_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # the clock stood still
    # for the indicators (workflows/indicators.py): the handling deadline the case was due to close by
    # (its last handling task's, extensions and 缓办 included), when handling last ended, and who
    # reviewed, dispatched and verified it (the supervisor and dispatcher posts)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewer: Mapped[str | None] = mapped_column(String(200))
    dispatcher: Mapped[str | None] = mapped_column(String(200))
    verifier: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


CASE = cast(Table, Case.__table__)
HT = cast(Table, HumanTask.__table__)
AUDIT = cast(Table, AuditEvent.__table__)
ASSESSMENTS = cast(Table, CaseAssessment.__table__)
_STAGES = ("review", "dispatch", "sign_for", "handle", "verify")


def outcome_of(ended: InstanceEnded) -> str:
    if ended.status != "completed":
        return ended.status
    # the review's default flow ends the case as invalid; a transfer loops back to the review
    outcomes: dict[str | None, str] = {"valid": "closed", "merge": "merged"}
    return outcomes.get(ended.variables.get("review_result"), "invalid")


def close_case(conn, ended: InstanceEnded) -> None:
    """The end listener: close the case and write its assessment record."""
    if ended.process_key != CASE_PROCESS or not ended.business_key:
        return
    case = conn.execute(select(CASE).where(CASE.c.id == ended.business_key)).mappings().first()
    if case is None:  # an env_case instance started by hand, without a case row: nothing to project
        return
    outcome = outcome_of(ended)
    conn.execute(update(CASE).where(CASE.c.id == case["id"])
                 .values(status="closed", outcome=outcome, closed_at=ended.ended_at, deferred_until=None))
    end_open_deferral(conn, case["id"], ended.ended_at)  # a case cancelled while on hold
    tasks = conn.execute(select(HT.c.element_id, HT.c.status, HT.c.due_at, HT.c.ended_at, HT.c.completed_by)
                         .where(HT.c.instance_id == ended.instance_id)
                         .order_by(HT.c.created_at)).mappings().all()
    on_time = {stage: stage_on_time([t for t in tasks if t["element_id"] == stage], ended) for stage in _STAGES}
    handlers = [t["completed_by"] for t in tasks if t["element_id"] == "handle" and t["status"] == "completed"]
    handles = [t for t in tasks if t["element_id"] == "handle"]
    v = ended.variables
    fired = _timers_fired(conn, ended.instance_id)
    deferrals, deferred_seconds = deferred_totals(conn, case["id"])
    closed_on_time = None
    if outcome == "closed" and on_time["handle"] is not None:
        closed_on_time = on_time["handle"] and on_time["sign_for"] is not False and on_time["verify"] is not False
    conn.execute(insert(ASSESSMENTS).values(
        case_id=case["id"], tenant=case["tenant"], grid_code=v.get("grid") or case["grid_code"],
        category=case["category"], source=case["source"], inspector=handlers[-1] if handlers else v.get("inspector"),
        outcome=outcome, violation=v.get("finding_kind") == "violation", filed_at=case["created_at"],
        closed_at=ended.ended_at, lead_hours=round((ended.ended_at - case["created_at"]).total_seconds() / 3600, 3),
        reviewed_on_time=on_time["review"], dispatched_on_time=on_time["dispatch"],
        signed_on_time=on_time["sign_for"], handled_on_time=on_time["handle"], verified_on_time=on_time["verify"],
        closed_on_time=closed_on_time,
        occurrences=case["occurrences"], details={"enforcement": v.get("enforcement")},
        **{name: int(v.get(name) or 0) for name in COUNTERS if name != "escalations"},
        # the reminder and review/dispatch escalation branches end on their own, so their counts never
        # reach the process data
        escalations=int(v.get("escalations") or 0) + fired["review_overdue"] + fired["dispatch_overdue"],
        reminders=fired["sign_reminder"] + fired["review_reminder"] + fired["dispatch_reminder"],
        urges=fired["enforcement_overdue"], deferrals=deferrals, deferred_seconds=deferred_seconds,
        due_at=handling_deadline(tasks),
        handled_at=handles[-1]["ended_at"] if handles and handles[-1]["status"] == "completed" else None,
        reviewer=_last_by(tasks, "review"), dispatcher=_last_by(tasks, "dispatch"), verifier=_last_by(tasks, "verify")))


def handling_deadline(tasks: list[Any]) -> datetime | None:
    """When the case was due to be handled (结案期限): the first handling task's deadline, moved only
    by an approved extension or a 缓办 (the handling task after them carries the new one). A rework
    or an overdue escalation grants new time to finish but does not move what the case was due by."""
    due, moved = None, False
    for t in tasks:  # in the order they were created
        if t["element_id"] == "handle" and (due is None or moved):
            due, moved = t["due_at"], False
        elif t["element_id"] in ("approve_extension", "deferred") and t["status"] == "completed":
            moved = True
    return due


def _last_by(tasks: list[Any], stage: str) -> str | None:
    done = [t["completed_by"] for t in tasks if t["element_id"] == stage and t["status"] == "completed"]
    return done[-1] if done else None


def _timers_fired(conn, instance_id: str) -> Counter[str]:
    """How often each timer event fired, from the instance's audit trail."""
    rows = conn.execute(select(AUDIT.c.details).where(AUDIT.c.instance_id == instance_id,
                                                      AUDIT.c.action == "timer.fired")).scalars()
    return Counter(element for details in rows for element in (details or {}).get("elements", []))


def stage_on_time(tasks: list[Any], ended: InstanceEnded) -> bool | None:
    """On time when every task of the stage was; None when the stage never ran."""
    if not tasks:
        return None
    return all(task_on_time(t["status"], t["due_at"], t["ended_at"], by_timer=ended.status == "completed")
               for t in tasks)


def task_on_time(status: str, due_at: datetime | None, ended_at: datetime | None, *, by_timer: bool,
                 now: datetime | None = None) -> bool | None:
    """Whether one user task was (or still is) on time. A cancelled task was cut off by its overdue
    timer (`by_timer`) unless its instance was cancelled; an open one is late once past due, else
    undecided (None)."""
    if status == "cancelled":
        return not by_timer
    if status == "open":
        return False if due_at is not None and now is not None and now > due_at else None
    return due_at is None or ended_at is None or ended_at <= due_at
