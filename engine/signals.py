"""Signals between instances: a thrown signal reaches every instance of the thrower's tenant that was
waiting for it when it was thrown (a signal catch event, a boundary signal event). Signals are not
kept for later: an instance that starts waiting afterwards does not get it (BPMN semantics).

The broadcast is a job run after the throwing change commits (outgoing.signal). Each receiver is
its own change under its own lock, recorded in signal_delivery, so a job that runs again (at least
once) skips the instances it already reached; one receiver's failure is an incident of its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.bpmn.util.event import BpmnEvent
from sqlalchemy import Table, bindparam, exists, select
from sqlalchemy.exc import IntegrityError

from .change import PI, Abandon, change_instance
from .db import Prepared, insert_all
from .errors import EngineError, NotFound, ProcessError
from .jobs import job_incident
from .models import SignalDelivery, SignalSubscription
from .outgoing import QUEUE, SIGNAL_JOB
from .readmodels import signal_names
from .runtime import Runtime
from .spiff_specs import find_task
from .start_events import start_by_signal

SIG = cast(Table, SignalSubscription.__table__)
DELIVERED = cast(Table, SignalDelivery.__table__)
_RECEIVED = exists().where(DELIVERED.c.signal_id == bindparam("signal_id"),
                           DELIVERED.c.instance_id == SIG.c.instance_id)
_WAITERS = (select(SIG.c.instance_id).distinct().join(PI, PI.c.id == SIG.c.instance_id)
            .where(SIG.c.signal_name == bindparam("name"), SIG.c.created_at <= bindparam("thrown_at"),
                   SIG.c.instance_id != bindparam("sender"), PI.c.status == "running", ~_RECEIVED)
            .order_by(SIG.c.instance_id))
_WAITERS_UNSCOPED = Prepared(_WAITERS.where(PI.c.scope.is_(None)))
_WAITERS_IN_TENANT = Prepared(_WAITERS.where(PI.c.scope.startswith(bindparam("tenant"))))
# Read under the receiver's lock: its tasks that were waiting when the signal was thrown, unless the
# signal reached it meanwhile (another run of the same job).
_WAITING_TASKS = Prepared(select(SIG.c.task_id).where(
    SIG.c.instance_id == bindparam("instance_id"), SIG.c.signal_name == bindparam("name"),
    SIG.c.created_at <= bindparam("thrown_at"),
    ~exists().where(DELIVERED.c.signal_id == bindparam("signal_id"),
                    DELIVERED.c.instance_id == bindparam("instance_id"))).order_by(SIG.c.task_id))
_INSERT_DELIVERY = Prepared(insert_all(DELIVERED))


def broadcast(rt: Runtime, payload: dict[str, Any]) -> None:
    """The job: deliver the signal to each waiting instance of the tenant (`to`: only that one, when
    an operator retries an incident of one receiver)."""
    params = {"name": payload["signal"], "thrown_at": datetime.fromisoformat(payload["thrown_at"]),
              "sender": payload["sender"], "signal_id": payload["signal_id"]}
    if payload.get("start_only"):  # an operator retries the starts that failed
        receivers = []
    elif payload.get("to"):
        receivers = [payload["to"]]
    else:
        tenant = payload.get("tenant")
        stmt = _WAITERS_UNSCOPED if tenant is None else _WAITERS_IN_TENANT
        with rt.db.read() as conn:
            receivers = [r["instance_id"] for r in rt.db.rows(conn, stmt, {**params, "tenant": tenant})]
    for instance_id in receivers:
        try:
            _deliver(rt, instance_id, payload, params)
        except EngineError as exc:
            _incident(rt, instance_id, payload, exc)
    if not payload.get("to"):
        try:
            start_by_signal(rt, payload)  # the processes that start on it (start_events.py)
        except EngineError as exc:
            _start_incident(rt, payload, exc)


def _deliver(rt: Runtime, instance_id: str, payload: dict[str, Any], params: dict[str, Any]) -> None:
    name = payload["signal"]
    try:
        with change_instance(rt, instance_id, f"instance:{payload['sender']}") as ch:
            if ch.instance.status != "running" or ch.instance.suspended:
                raise Abandon  # a suspended instance takes no signal (signals are not kept)
            found = rt.db.rows(ch.conn, _WAITING_TASKS, {**params, "instance_id": instance_id})
            tasks = [t for t in (find_task(ch.workflow, r["task_id"]) for r in found)
                     if t is not None and name in signal_names(t)]
            if not tasks:  # no longer waiting, or reached by another run of this job
                raise Abandon
            definition = next(d for d in getattr(tasks[0].task_spec.event_definition, "event_definitions",
                                                 [tasks[0].task_spec.event_definition]) if d.name == name)
            try:
                ch.workflow.send_event(BpmnEvent(definition, payload["payload"]))
            except Exception as exc:
                raise ProcessError(f"signal '{name}' could not be delivered: {exc}",
                                   element=tasks[0].task_spec.bpmn_id) from exc
            ch.write_later(_INSERT_DELIVERY, {"signal_id": payload["signal_id"], "instance_id": instance_id,
                                              "delivered_at": ch.now})
            ch.record("signal.received", task_id=str(tasks[0].id), element_id=tasks[0].task_spec.bpmn_id,
                      signal=name, signal_id=payload["signal_id"], sender=payload["sender"])
    except (Abandon, NotFound):
        return
    except IntegrityError:  # the same signal reached it concurrently (another run of this job)
        return


def _incident(rt: Runtime, instance_id: str, payload: dict[str, Any], exc: EngineError) -> None:
    """One receiver could not take the signal: an incident whose retry delivers to it alone."""
    now = rt.clock.now()
    kept = {k: v for k, v in payload.items() if k not in ("outbox_id", "attempt", "retried_incident")}
    with rt.db.transaction() as s:
        job_incident(s, now, job=SIGNAL_JOB, queue=QUEUE, payload={**kept, "to": instance_id}, attempts=1,
                     instance_id=instance_id,
                     error=f"signal '{payload['signal']}' could not be delivered: {exc.message}")


def _start_incident(rt: Runtime, payload: dict[str, Any], exc: EngineError) -> None:
    """A process could not be started by the signal: an incident whose retry runs the starts alone
    (those that did start are not started again)."""
    now = rt.clock.now()
    kept = {k: v for k, v in payload.items() if k not in ("outbox_id", "attempt", "retried_incident")}
    with rt.db.transaction() as s:
        job_incident(s, now, job=SIGNAL_JOB, queue=QUEUE, payload={**kept, "start_only": True}, attempts=1,
                     instance_id=payload["sender"],
                     error=f"signal '{payload['signal']}' could not start a process: {exc.message}")


JOBS = {SIGNAL_JOB: broadcast}
