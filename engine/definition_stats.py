"""What a process version is doing: its instances counted by status (for the models page), and per
element where its instances spend their time and where they fail (the heat map). Both are read
through the viewer's scope, so a supervisor counts only their grid's instances."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sqlalchemy import and_, case, func, select

from . import definitions
from .models import AuditEvent, HumanTask, Incident, ProcessInstance
from .runtime import Runtime
from .visibility import Viewer, instance_filter

if TYPE_CHECKING:
    from sqlalchemy import Result

PI = ProcessInstance
STATUSES = ("running", "completed", "cancelled")


@dataclass
class VersionStatistics:
    definition_id: int
    key: str
    version: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    suspended: int = 0  # running instances an administrator suspended
    open_tasks: int = 0
    open_incidents: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def statistics(rt: Runtime, viewer: Viewer, key: str | None = None,
               definition_id: int | None = None) -> list[VersionStatistics]:
    """One row per version (of `key`, or just `definition_id`, or all), zeros included."""
    if definition_id is not None:
        versions = [definitions.get(rt, definition_id)]
    else:
        versions = definitions.list_definitions(rt, key)
    out = {d.id: VersionStatistics(d.id, d.key, d.version) for d in versions}
    if not out:
        return []
    ids = sorted(out)
    visible = and_(PI.definition_id.in_(ids), instance_filter(viewer))
    with rt.db.session() as s:
        by_status = s.execute(
            select(PI.definition_id, PI.status, func.count(), func.sum(case((PI.suspended, 1), else_=0)))
            .where(visible).group_by(PI.definition_id, PI.status))
        for def_id, status, n, suspended in by_status:
            row = out[def_id]
            row.counts[status] = row.counts.get(status, 0) + n
            if status == "running":
                row.suspended += int(suspended or 0)
        tasks = s.execute(select(PI.definition_id, func.count()).join(HumanTask, HumanTask.instance_id == PI.id)
                          .where(visible, HumanTask.status == "open").group_by(PI.definition_id))
        for def_id, n in tasks:
            out[def_id].open_tasks = n
        incidents = s.execute(select(PI.definition_id, func.count()).join(Incident, Incident.instance_id == PI.id)
                              .where(visible, Incident.status == "open").group_by(PI.definition_id))
        for def_id, n in incidents:
            out[def_id].open_incidents = n
    return [out[i] for i in ids]


@dataclass
class ElementHeat:
    element_id: str
    entered: int = 0  # times an instance reached it (user tasks: task rows; other elements: audit events)
    completed: int = 0
    waiting: int = 0  # user tasks open now
    durations: list[float] = field(default_factory=list, repr=False)  # seconds, of completed user tasks
    incidents: int = 0
    open_incidents: int = 0

    @property
    def mean_seconds(self) -> float | None:
        return sum(self.durations) / len(self.durations) if self.durations else None

    @property
    def p90_seconds(self) -> float | None:
        return percentile(self.durations, 0.9)


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (the smallest value at or above q of them); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# Audit actions that say an instance passed an element that is not a user task (a timer's event names
# the elements it fired in its details instead).
_PASSING = ("message.correlated", "message.delivered", "service.completed", "signal.received")


def heatmap(rt: Runtime, viewer: Viewer, definition_id: int) -> tuple[int, dict[str, ElementHeat]]:
    """Per element of one version, over the instances the viewer sees: how often instances got there,
    how long its user tasks took (from the task rows' created and ended times), and its incidents.
    Returns (instances looked at, {element id: heat})."""
    definitions.get(rt, definition_id)  # 404 for an unknown version
    visible = and_(PI.definition_id == definition_id, instance_filter(viewer))
    heat: dict[str, ElementHeat] = {}

    def at(element_id: str) -> ElementHeat:
        return heat.setdefault(element_id, ElementHeat(element_id))

    with rt.db.session() as s:
        instances = s.scalar(select(func.count()).select_from(PI).where(visible)) or 0
        tasks = s.execute(select(HumanTask.element_id, HumanTask.status, HumanTask.created_at, HumanTask.ended_at)
                          .join(PI, HumanTask.instance_id == PI.id).where(visible))
        for element_id, status, created_at, ended_at in tasks:
            h = at(element_id)
            h.entered += 1
            if status == "open":
                h.waiting += 1
            elif status == "completed":
                h.completed += 1
                if ended_at is not None and created_at is not None:
                    h.durations.append(max(0.0, (ended_at - created_at).total_seconds()))
        passed = cast("Result[str, int]",  # element_id IS NOT NULL
                      s.execute(select(AuditEvent.element_id, func.count()).join(PI, AuditEvent.instance_id == PI.id)
                                .where(visible, AuditEvent.action.in_(_PASSING), AuditEvent.element_id.is_not(None))
                                .group_by(AuditEvent.element_id)))
        passes: dict[str, int] = {element_id: n for element_id, n in passed}
        timers = s.scalars(select(AuditEvent.details).join(PI, AuditEvent.instance_id == PI.id)
                           .where(visible, AuditEvent.action == "timer.fired"))
        for details in timers:
            for element_id in (details or {}).get("elements") or ():
                passes[element_id] = passes.get(element_id, 0) + 1
        for element_id, n in passes.items():
            h = at(element_id)
            if h.entered == 0:  # user tasks are counted by their rows
                h.entered = h.completed = n
        failed = cast("Result[str, str, int]",  # element_id IS NOT NULL
                      s.execute(select(Incident.element_id, Incident.status, func.count())
                                .join(PI, Incident.instance_id == PI.id)
                                .where(visible, Incident.element_id.is_not(None))
                                .group_by(Incident.element_id, Incident.status)))
        for element_id, status, n in failed:
            h = at(element_id)
            h.incidents += n
            if status == "open":
                h.open_incidents += n
    return instances, heat
