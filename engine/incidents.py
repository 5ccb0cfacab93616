"""Incidents: failures that ran out of retries. An operator lists them and retries them."""

from __future__ import annotations

from sqlalchemy import select

from . import audit, outbox, start_timers
from .change import after_commit, instance_lock
from .db import given, page
from .errors import Conflict, NotFound
from .models import Incident
from .runtime import Runtime


def query(rt: Runtime, *, status: str | None = "open", instance_id: str | None = None,
          offset: int = 0, limit: int = 50) -> tuple[list[Incident], int]:
    stmt = select(Incident).where(*given(Incident.status == status if status else None,
                                         Incident.instance_id == instance_id if instance_id else None))
    return page(rt.db, stmt, [Incident.created_at.desc(), Incident.id], offset, limit)


def retry(rt: Runtime, incident_id: int, actor: str) -> Incident:
    """Resolve the incident and run the failed call again with a fresh set of attempts."""
    now = rt.clock.now()
    with rt.db.transaction() as s:
        inc = s.scalar(select(Incident).where(Incident.id == incident_id).with_for_update())
        if inc is None:
            raise NotFound(f"incident {incident_id} does not exist")
        if inc.status != "open":
            raise Conflict(f"incident is {inc.status}")
        inc.status, inc.resolved_at, inc.resolved_by = "resolved", now, actor
        row = s.scalar(instance_lock(inc.instance_id)) if inc.instance_id else None
        started = None
        if inc.kind == "start_timer":  # start the period's instance now; failing again changes nothing
            started = start_timers.start_period(rt, s.connection(), inc.payload["key"], inc.payload["due"])
        elif inc.kind == "timer":
            if row is not None and row.status == "running":
                row.next_wakeup_at = now  # due again: the scheduler fires it on its next pass
        elif inc.kind == "job" or (inc.kind == "job_lost" and inc.operation not in rt.registry):
            job = inc.payload
            outbox.add(s, now, queue=job["queue"], job=job["job"],
                       payload={**job["payload"], "attempt": 1, "retried_incident": inc.id})
        else:
            operation = inc.operation
            queue = rt.registry.get(operation).queue if operation is not None and operation in rt.registry else "engine"
            outbox.add(s, now, queue=queue, job="service_call", payload={**inc.payload, "attempt": 1})
        draft = audit.AuditDraft(action="incident.retried", actor=actor, at=now, instance_id=inc.instance_id,
                                 task_id=inc.task_id, element_id=inc.element_id,
                                 details={"incident": inc.id, "operation": inc.operation})
        if row is not None:
            audit.append_to_instance(rt, s, row, [draft])
        else:
            audit.append_system(rt, s, [draft])
    if started is not None:
        after_commit(rt, started)
    rt.wake()
    return inc
