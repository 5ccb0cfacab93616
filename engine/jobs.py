"""The engine's own jobs. `service_call` runs an asynchronous service-task operation outside any
transaction, then completes the task in a new one; failures retry with backoff from the outbox and
end in an incident. Every job is idempotent: a call whose outbox row is done, or whose instance is
no longer running, is not made again."""

from __future__ import annotations

import contextlib
import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, select

from . import audit, outbox
from .change import change_instance, locked_instance
from .db import Prepared
from .models import Incident, OutboxEntry, ProcessInstance
from .operations import OperationContext, PermanentFailure, UnknownOperation
from .spiff_specs import started_service_task

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


def service_call(rt: Runtime, payload: dict[str, Any]) -> None:
    if not _still_wanted(rt, payload):
        _done(rt, payload)  # an ended instance or a repeat: nothing to do, and nothing to re-deliver
        return
    if "result" in payload:  # an incident retry of a completion that failed after the call succeeded
        result = payload["result"]
    else:
        try:
            op = rt.registry.get(payload["operation"])
        except UnknownOperation:
            raise_incident(rt, payload, f"operation {payload['operation']!r} is not registered in this worker")
            return
        ctx = OperationContext(instance_id=payload["instance_id"], task_id=payload["task_id"],
                               element_id=payload["element_id"], attempt=payload.get("attempt", 1))
        try:
            result = op.handler(payload["params"], ctx)
        except PermanentFailure as exc:
            log.warning("operation failed permanently", extra={"operation": op.name, "error": str(exc)})
            raise_incident(rt, payload, f"refused: {exc}")
            return
        except Exception as exc:
            log.warning("operation failed", extra={"operation": op.name, "attempt": ctx.attempt, "error": str(exc)})
            record_failure(rt, payload, f"{type(exc).__name__}: {exc}")
            return
    try:
        complete_service_task(rt, payload, result)
    except Exception as exc:  # the process failed after the call: keep the result, let an operator retry
        log.exception("completing the service task failed", extra={"operation": payload["operation"]})
        raise_incident(rt, {**payload, "result": result}, f"completing the task failed: {type(exc).__name__}: {exc}")


service_call.marks_done = True  # type: ignore[attr-defined]


PI, OB = cast(Table, ProcessInstance.__table__), cast(Table, OutboxEntry.__table__)
# One statement: the instance's status, and whether this outbox row is done already.
_WANTED = Prepared(select(
    select(PI.c.status).where(PI.c.id == bindparam("instance_id")).scalar_subquery().label("status"),
    select(OB.c.done_at).where(OB.c.id == bindparam("outbox_id")).scalar_subquery().label("done_at"),
))


def _still_wanted(rt: Runtime, payload: dict[str, Any]) -> bool:
    """False for a repeat of a call already done, or a call for an instance that has ended."""
    with rt.db.read() as conn:
        (found,) = rt.db.rows(conn, _WANTED, {"instance_id": payload["instance_id"],
                                              "outbox_id": payload.get("outbox_id")})
    return found["status"] == "running" and found["done_at"] is None


def complete_service_task(rt: Runtime, payload: dict[str, Any], result: Any) -> bool:
    """Put the result into the STARTED task and run on; False if it was already done (a repeat)."""
    with change_instance(rt, payload["instance_id"], actor=f"operation:{payload['operation']}") as ch:
        if payload.get("outbox_id") is not None:
            ch.write_later(outbox.DONE, outbox.done_params(payload["outbox_id"], ch.now))
        task = started_service_task(ch.workflow, payload["task_id"])
        if task is None or ch.instance.status != "running":
            return False
        task.data[task.task_spec.result_variable] = result
        task.complete()
        ch.record("service.completed", task_id=payload["task_id"], element_id=payload["element_id"],
                  operation=payload["operation"], attempt=payload.get("attempt", 1), result=result)
    return True


def _done(rt: Runtime, payload: dict[str, Any]) -> None:
    if payload.get("outbox_id") is not None:
        with rt.db.transaction() as s:
            outbox.mark_done(s, payload["outbox_id"], rt.clock.now())


class _AlreadyRecorded(Exception):
    """Another delivery of this job recorded its outcome first; roll ours back."""


def record_failure(rt: Runtime, payload: dict[str, Any], error: str) -> None:
    """Retry later with exponential backoff and jitter, or raise an incident when attempts run out."""
    op = rt.registry.get(payload["operation"])
    attempt = payload.get("attempt", 1)
    if attempt >= op.max_attempts:
        raise_incident(rt, payload, error)
        return
    now = rt.clock.now()
    delay = jittered(op.retry_delay(attempt))
    try:
        with rt.db.transaction() as s:
            row = locked_instance(s, payload["instance_id"])
            if not outbox.mark_done(s, payload.get("outbox_id"), now):
                raise _AlreadyRecorded
            retry = {k: v for k, v in payload.items() if k != "outbox_id"}
            outbox.add(s, now, queue=op.queue, job="service_call",
                       payload={**retry, "attempt": attempt + 1, "last_error": error}, available_at=now + delay)
            _audit(rt, s, row, now, "service.retry_scheduled", payload, error, retry_at=(now + delay).isoformat())
    except _AlreadyRecorded:
        return
    rt.wake()


def jittered(delay: timedelta) -> timedelta:
    """The delay plus up to 10 % at random, so that failures at the same moment do not retry in step."""
    return delay + timedelta(seconds=random.uniform(0, delay.total_seconds() * 0.1))


def job_incident(s, now, *, job: str, queue: str, payload: dict[str, Any], error: str, attempts: int,
                 instance_id: str | None = None) -> Incident:
    """An incident for a job of another layer (a notice, say) that ran out of retries or was refused;
    retrying it queues the job again with a fresh set of attempts (incidents.retry)."""
    incident = Incident(kind="job", instance_id=instance_id, operation=job, message=error, attempts=attempts,
                        payload={"queue": queue, "job": job, "payload": payload}, status="open", created_at=now)
    s.add(incident)
    return incident


def raise_incident(rt: Runtime, payload: dict[str, Any], error: str) -> None:
    with contextlib.suppress(_AlreadyRecorded):
        _incident(rt, payload, error, rt.clock.now())


def _incident(rt: Runtime, payload: dict[str, Any], error: str, now) -> None:
    with rt.db.transaction() as s:
        row = locked_instance(s, payload["instance_id"])
        if not outbox.mark_done(s, payload.get("outbox_id"), now):
            raise _AlreadyRecorded
        kept = {k: v for k, v in payload.items() if k not in ("outbox_id", "last_error")}
        s.add(Incident(kind="service_task", instance_id=payload["instance_id"], task_id=payload["task_id"],
                       element_id=payload["element_id"], operation=payload["operation"], message=error,
                       attempts=payload.get("attempt", 1), payload=kept, status="open", created_at=now))
        _audit(rt, s, row, now, "incident.raised", payload, error)


def _audit(rt: Runtime, s, row: ProcessInstance, now, action: str, payload: dict[str, Any], error: str,
           **extra: Any) -> None:
    audit.append_to_instance(rt, s, row, [audit.AuditDraft(
        action=action, actor=f"operation:{payload['operation']}", at=now, instance_id=row.id,
        task_id=payload["task_id"], element_id=payload["element_id"],
        details={"operation": payload["operation"], "attempt": payload.get("attempt", 1), "error": error, **extra})])


ENGINE_JOBS = {"service_call": service_call}
