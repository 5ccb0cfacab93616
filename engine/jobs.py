"""The engine's own jobs. `service_call` runs an asynchronous service-task operation outside any
transaction, then completes the task in a new one; failures retry with backoff from the outbox and
end in an incident. Every job is idempotent: a task that is no longer STARTED is left alone."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import audit, outbox
from .change import change_instance
from .models import Incident
from .operations import OperationContext
from .spiff_specs import started_service_task

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger(__name__)


def service_call(rt: Runtime, payload: dict[str, Any]) -> None:
    op = rt.registry.get(payload["operation"])
    ctx = OperationContext(instance_id=payload["instance_id"], task_id=payload["task_id"],
                           element_id=payload["element_id"], attempt=payload.get("attempt", 1))
    try:
        result = op.handler(payload["params"], ctx)
    except Exception as exc:
        log.warning("operation failed", extra={"operation": op.name, "attempt": ctx.attempt, "error": str(exc)})
        record_failure(rt, payload, f"{type(exc).__name__}: {exc}")
        return
    complete_service_task(rt, payload, result)


def complete_service_task(rt: Runtime, payload: dict[str, Any], result: Any) -> bool:
    """Put the result into the STARTED task and run on; False if it was already done (a repeat)."""
    with change_instance(rt, payload["instance_id"], actor=f"operation:{payload['operation']}") as ch:
        outbox.mark_done(ch.session, payload.get("outbox_id"), ch.now)
        task = started_service_task(ch.workflow, payload["task_id"])
        if task is None or ch.instance.status != "running":
            return False
        task.data[task.task_spec.result_variable] = result
        task.complete()
        ch.record("service.completed", task_id=payload["task_id"], element_id=payload["element_id"],
                  operation=payload["operation"], attempt=payload.get("attempt", 1), result=result)
    return True


def record_failure(rt: Runtime, payload: dict[str, Any], error: str) -> None:
    op = rt.registry.get(payload["operation"])
    attempt = payload.get("attempt", 1)
    now = rt.clock.now()
    with rt.db.transaction() as s:
        outbox.mark_done(s, payload.get("outbox_id"), now)
        payload = {k: v for k, v in payload.items() if k != "outbox_id"}
        if attempt < op.max_attempts:
            delay = op.retry_delay(attempt)
            delay += timedelta(seconds=random.uniform(0, delay.total_seconds() * 0.1))  # jitter
            outbox.add(s, now, queue=op.queue, job="service_call",
                       payload={**payload, "attempt": attempt + 1, "last_error": error},
                       available_at=now + delay)
            action, details = "service.retry_scheduled", {"retry_at": (now + delay).isoformat()}
        else:
            s.add(Incident(kind="service_task", instance_id=payload["instance_id"], task_id=payload["task_id"],
                           element_id=payload["element_id"], operation=op.name, message=error,
                           attempts=attempt, payload=payload, status="open", created_at=now))
            action, details = "incident.raised", {}
        audit.append(rt.db, s, [audit.AuditDraft(
            action=action, actor=f"operation:{op.name}", at=now, instance_id=payload["instance_id"],
            task_id=payload["task_id"], element_id=payload["element_id"],
            details={"operation": op.name, "attempt": attempt, "error": error, **details})])
    rt.wake()


ENGINE_JOBS = {"service_call": service_call}
