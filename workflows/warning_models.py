"""The tables of graded warnings (workflows/warnings.py): the tenant's policy rows, the warnings, their
recipient groups (one `graded_warning` process each) and the timeline events."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime
from engine.models import BigId

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
GROUP_ID = re.compile(r"^[0-9a-f]{32}\Z")


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


W, G, E = (cast(Table, GradedWarning.__table__), cast(Table, WarningGroup.__table__),
           cast(Table, WarningEvent.__table__))
