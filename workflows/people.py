"""People of the loop and who is on duty where: inspectors and supervisors with their grid and
department, on-duty rosters per grid, and problem categories with their time limits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, column, table, text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base, UTCDateTime
from engine.visibility import Viewer

POSTS = ("inspector", "supervisor", "leader", "admin")
# The logins (api.accounts.User's table): this layer reads the columns its rules need.
LOGINS = table("app_user", column("username"), column("roles"), column("scope"), column("active"))
SEES_ALL = ("admin", "leader", "system")


def staff_viewer(name: str, roles: frozenset[str], scope: str | None) -> Viewer:
    """What someone with these roles may see (engine.visibility): admins and systems everything;
    leaders everything, or — a district's or town's leader, given a scope — everything in their grid;
    supervisors every task in their grid; inspectors the tasks offered to them there."""
    scoped_leader = "leader" in roles and bool(scope)
    everything = roles.intersection(SEES_ALL) - ({"leader"} if scoped_leader else set())
    return Viewer(name, roles, scope, sees_all=bool(everything), oversees="supervisor" in roles or scoped_leader)


class Department(Base):
    __tablename__ = "department"

    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(200))


class Person(Base):
    """A member of staff. `username` links the login account (api.accounts.User), if any."""

    __tablename__ = "person"
    __table_args__ = (Index("ix_person_grid_post", "grid_code", "post"),
                      Index("uq_person_username_lower", text("lower(username)"), unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    username: Mapped[str | None] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    post: Mapped[str] = mapped_column(String(20))  # inspector | supervisor | leader | admin
    grid_code: Mapped[str] = mapped_column(String(20))  # the grid they belong to (a unit, a town, ...)
    department_code: Mapped[str | None] = mapped_column(ForeignKey("department.code"))
    phone: Mapped[str | None] = mapped_column(String(30))
    wecom_id: Mapped[str | None] = mapped_column(String(64))
    channels: Mapped[str | None] = mapped_column(String(60))  # notice channels by preference, e.g. "sms,wechat_work"
    active: Mapped[bool] = mapped_column(Boolean, default=True)


SHIFT_KINDS = ("day", "night", "holiday")  # 白班, 夜班, 节假日值班 of the grid centre


class DutyShift(Base):
    """Someone on duty for a grid (optionally for one category) from `starts_at` to `ends_at`; its
    kind says which watch it is (routing only looks at the time)."""

    __tablename__ = "duty_shift"
    __table_args__ = (Index("ix_duty_grid_time", "grid_code", "starts_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    grid_code: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(50))  # None: every category
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(10), default="day", server_default="day")  # SHIFT_KINDS


class Category(Base):
    """A kind of problem and its time limits (working hours), per tenant."""

    __tablename__ = "category"

    code: Mapped[str] = mapped_column(String(50), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(200))
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    sign_for_hours: Mapped[float] = mapped_column(Float, default=2.0)
    handle_hours: Mapped[float] = mapped_column(Float, default=24.0)
    verify_hours: Mapped[float] = mapped_column(Float, default=8.0)
    reminder_ratio: Mapped[float] = mapped_column(Float, default=0.75)  # remind at 75 % of a limit
