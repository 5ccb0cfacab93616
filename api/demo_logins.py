"""Logins for the demo tenant, so that a newcomer sees each role's console: the supervisor (值班长)
of one district, an inspector of one of its units — both the roster's own people, linked by their
username — and a leader of the district. Each is created once, with a generated password that is
answered here and shown once by the caller; an existing username is left alone (a reset is
`gridloop reset-password` or POST /api/v1/users/{id}/reset-password)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from engine.runtime import Runtime
from workflows.grids import Grid
from workflows.people import Person

from . import accounts
from .user_admin import NewUser, create_user

DEMO_DISTRICT = "320706"  # 海州区: the city's central district


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    scope: str
    password: str


def ensure_demo_logins(rt: Runtime, tenant: str, district: str = DEMO_DISTRICT) -> list[DemoLogin]:
    """The demo logins created now (none when they exist, or the district is not in the tenant)."""
    with rt.db.session() as s:
        if s.scalar(select(Grid.id).where(Grid.tenant == tenant, Grid.code == district,
                                          Grid.valid_to.is_(None))) is None:
            return []
        supervisor = s.scalar(select(Person).where(Person.tenant == tenant, Person.username == f"sup-{district}"))
        inspector = s.scalar(select(Person).where(Person.tenant == tenant, Person.post == "inspector",
                                                  Person.grid_code.startswith(district), Person.grid_code != district,
                                                  Person.username.is_not(None), Person.active.is_(True))
                             .order_by(func.length(Person.grid_code).desc(), Person.grid_code).limit(1))  # a unit's
    wanted = [NewUser(f"leader-{district}", ["leader"], f"{district} 领导 (demo)", district)]
    wanted += [NewUser(p.username, [p.post], p.name, p.grid_code, p.id) for p in (supervisor, inspector)
               if p is not None and p.username]
    made = []
    for new in wanted:
        if accounts.find_user(rt.db, new.username) is not None:
            continue
        row, password = create_user(rt, "system:demo", new)
        made.append(DemoLogin(row.user.username, new.roles[0], new.scope or "", password or ""))
    return made
