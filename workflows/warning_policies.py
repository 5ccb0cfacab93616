"""Use cases of the warning policy (workflows/warnings.py): who is told of a warning of each level,
per grid prefix. Each change is one unit of work; warnings already raised keep their recipients."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import select

from engine.errors import InvalidInput, NotFound
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork

from .warning_models import LEVELS, NOTIFY_LEVELS, NOTIFY_POSTS, WarningPolicy


@dataclass(frozen=True)
class NewPolicy:
    """One recipient group for warnings of `level` in grids under `grid_prefix` (None: every grid)."""

    tenant: str
    level: int
    ack_minutes: int
    grid_prefix: str | None = None
    notify_level: str = "grid"
    notify_post: str = "supervisor"
    renotify: bool = True


def policies(rt: Runtime, tenant: str) -> list[WarningPolicy]:
    """The tenant's policy rows by level, grid prefix and age (without a row: the defaults apply)."""
    with rt.db.session() as s:
        return list(s.scalars(select(WarningPolicy).where(WarningPolicy.tenant == tenant)
                              .order_by(WarningPolicy.level, WarningPolicy.grid_prefix, WarningPolicy.id)))


def add_policy(rt: Runtime, new: NewPolicy) -> WarningPolicy:
    """Add a row. InvalidInput names a level, post or notify level the warnings do not know."""
    _check(new)
    with UnitOfWork(rt) as uow:
        row = WarningPolicy(**asdict(new))
        uow.session.add(row)
        uow.session.flush()
        uow.commit()
    return row


def remove_policy(rt: Runtime, policy_id: int) -> None:
    """Remove a row; NotFound if there is none with this id."""
    with UnitOfWork(rt) as uow:
        row = uow.session.get(WarningPolicy, policy_id)
        if row is None:
            raise NotFound(f"warning policy {policy_id} does not exist")
        uow.session.delete(row)
        uow.commit()


def _check(new: NewPolicy) -> None:
    wrong = {name: [f"one of {', '.join(map(str, allowed))}"] for name, value, allowed in (
        ("level", new.level, LEVELS), ("notifyLevel", new.notify_level, NOTIFY_LEVELS),
        ("notifyPost", new.notify_post, NOTIFY_POSTS)) if value not in allowed}
    if new.ack_minutes < 1:
        wrong["ackMinutes"] = ["at least 1 minute"]
    if wrong:
        raise InvalidInput("the warning policy was refused", fields=wrong)
