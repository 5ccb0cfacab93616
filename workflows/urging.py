"""督办 (urging): a supervisor or leader presses the people working on an open case.

One unit of work: the `case.urged` event on the case's audit trail and the notice to each assignee
commit together or not at all, so the timeline never shows an urge that told nobody. The answer
says who was told — a notice queued on a channel they have (delivery follows asynchronously, see
GET /notifications?caseId=) — and who was not, and why; a notice that cannot go out is also a
failed notification with an incident, so an operator sees it too."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from engine import instances
from engine.change import locked_instance
from engine.errors import Conflict, NotFound
from engine.models import HumanTask
from engine.runtime import Runtime
from engine.unit_of_work import UnitOfWork
from engine.visibility import Viewer, grid_visible
from notifications.queueing import Queued
from notifications.quiet_hours import QuietHours

from . import notices
from .cases import Case

NO_CHANNEL = "no channel"  # no phone or WeChat Work id on record
NOT_STAFF = "not on the staff list"  # no active member of staff has this username


@dataclass(frozen=True)
class NotNotified:
    user: str
    reason: str


@dataclass(frozen=True)
class Urged:
    case_id: str
    tasks: list[str]  # the open tasks urged (their element ids)
    notified: list[str] = field(default_factory=list)  # a notice is queued on a channel they have
    not_notified: list[NotNotified] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)  # the ids of the notices queued


def urge_case(rt: Runtime, viewer: Viewer, case_id: str, note: str, *, quiet: QuietHours,
              public_url: str = "") -> Urged:
    """Urge everyone assigned to an open task of the case `viewer` may see. NotFound for a case
    they may not see; Conflict once its process has ended."""
    now = rt.clock.now()
    with UnitOfWork(rt) as uow:
        s = uow.session
        case = s.get(Case, case_id)
        if case is None or case.instance_id is None or not _sees(viewer, case):
            raise NotFound(f"case {case_id} does not exist")
        if locked_instance(s, case.instance_id).status != "running":
            raise Conflict("the case is closed")
        open_tasks = list(s.scalars(select(HumanTask).where(HumanTask.instance_id == case.instance_id,
                                                            HumanTask.status == "open")
                                    .order_by(HumanTask.created_at, HumanTask.id)))
        people = sorted({t.assignee for t in open_tasks if t.assignee})
        tasks = [t.element_id for t in open_tasks]
        instances.annotate_in(rt, s, case.instance_id, viewer.name, "case.urged", now, note=note, tasks=tasks,
                              assignees=people)
        due = min((t.due_at for t in open_tasks if t.due_at), default=None)
        outcomes = notices.urge(s, now, key=f"urge:{case_id}:{uuid.uuid4().hex}", case_id=case_id, people=people,
                                note=note, urged_by=viewer.name, due=due.isoformat() if due else None, quiet=quiet,
                                public_url=public_url)
        uow.wake_after_commit()  # the notices' delivery jobs are due now (or at the end of quiet hours)
        uow.commit()
    urged = Urged(case_id=case_id, tasks=tasks)
    for person, queued in outcomes.items():
        ids = [q.notification_id for q in queued if q.notification_id]
        if ids:
            urged.notified.append(person)
            urged.notifications.extend(ids)
        else:
            urged.not_notified.append(NotNotified(person, _reason(queued)))
    return urged


def _sees(viewer: Viewer, case: Case) -> bool:
    return grid_visible(viewer, case.grid_code)


def _reason(queued: list[Queued]) -> str:
    if any(q.request.recipient == notices.NOBODY for q in queued):
        return NOT_STAFF
    return NO_CHANNEL
