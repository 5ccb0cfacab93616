"""Everything the closed-loop domain adds to an engine runtime: its service-task operations, the
job that turns `notify.send` into notices, and the projection that closes a case when its process
ends."""

from __future__ import annotations

from collections.abc import Callable

from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient
from notifications.quiet_hours import QuietHours

from .case_closing import close_case
from .contracts import register as register_contracts
from .grids import GridIndexCache
from .monitoring_rules import FILE_ALARM, AlarmFiler
from .notices import PLAN, NoticePlanner
from .operations import register_operations
from .patrol_rounds import register as register_patrol
from .references import register as register_references
from .warnings import install as install_warnings
from .working_time import WorkCalendar


def install(rt: Runtime, *, calendar: Callable[[], WorkCalendar], enforcement: EnforcementClient | None = None,
            quiet: QuietHours | None = None, public_url: str = "") -> None:
    register_operations(rt.registry, calendar=calendar, enforcement=enforcement)
    register_patrol(rt)
    rt.add_job(PLAN, NoticePlanner(quiet or QuietHours(), public_url))
    rt.add_job(FILE_ALARM, AlarmFiler(GridIndexCache(rt.db)))
    install_warnings(rt)
    register_references(rt.references)
    register_contracts(rt.contracts)
    if close_case not in rt.end_listeners:
        rt.end_listeners.append(close_case)
