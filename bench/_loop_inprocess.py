"""The same closed loop in process: the steps of bench/loop.py's HTTP loop called as the API's views
call them (workflows/ and engine/ functions), no HTTP, sequentially by one client in the bench
process, against the same database. The ceiling `http_ratio` is measured against.

Step by step: file the alarm (workflows.cases.file_alarm) → complete review, dispatch, sign_for
(engine.tasks.complete; each task found as an open task of the instance) → check in and store a
photo (workflows.evidence) → the evidence check and complete handle → relay the outbox into a
ManualJobQueue and run its jobs in this thread (the enforcement push goes to the same fake
enforcement system over loopback) → correlate the signed callback's message as
api/views/enforcement.py does → complete verify → the instance must be completed with no open task.
Other jobs the loop's changes relay (notices) are run here too, at the end of the loop: the loop's
whole work is in the figure, as it is on the server's processes over HTTP."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import summary
from bench._loop_client import LoopFailure, failure_cause
from bench._loop_setup import CATEGORY, SUP, TENANT, _settings, noisy_jpeg
from bench._loop_support import EnforcementSink, Unit

log = logging.getLogger("bench.loop")


@dataclass
class InProcessResult:
    loops: int = 0
    wall_s: float = 0.0
    loop_ms: list[float] = field(default_factory=list)
    push_ms: list[float] = field(default_factory=list)
    jobs: Counter = field(default_factory=Counter)
    failures_by_cause: Counter = field(default_factory=Counter)
    failure_samples: list[str] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)

    def report(self, requested: int) -> dict[str, Any]:
        return {"loops_per_s": round(self.loops / self.wall_s, 3) if self.wall_s else None, "loops": self.loops,
                "loops_requested": requested, "clients": 1, "wall_s": round(self.wall_s, 2),
                "loop_ms": summary(self.loop_ms), "push_ms": summary(self.push_ms),
                "jobs_per_loop": {k: round(v / max(1, self.loops + sum(self.failures_by_cause.values())), 2)
                                  for k, v in sorted(self.jobs.items())},
                "failures_by_cause": dict(self.failures_by_cause), "failure_samples": self.failure_samples[:5]}


class InProcessLoop:
    """One client's loop through the domain functions (the runtime as api.wiring.make_runtime builds
    it for the server's processes)."""

    def __init__(self, url: str, redis_url: str, storage_dir: Path, sink: EnforcementSink, unit: Unit,
                 photo_bytes: int) -> None:
        from api.wiring import make_runtime
        from engine.queues import ManualJobQueue
        from workflows.grids import GridIndex

        self.settings = _settings(url, redis_url, storage_dir=str(storage_dir), enforcement_url=sink.url,
                                  enforcement_secret=sink.secret)
        self.rt = make_runtime(self.settings)
        self.index = GridIndex.load(self.rt.db, TENANT)
        self.jobs = ManualJobQueue(self.rt)
        self.sink = sink
        self.unit = unit
        self.photo_bytes = photo_bytes

    def close(self) -> None:
        self.rt.db.dispose()

    def _open(self, iid: str, element: str):
        from engine import instances

        found = [t for t in instances.open_tasks(self.rt, iid) if t.element_id == element]
        if not found:
            raise LoopFailure(f"{element} of {iid} is not open", "task_missing")
        return found[0]

    def _complete(self, iid: str, element: str, actor: str | None, variables: dict[str, Any]):
        from engine import tasks

        task = self._open(iid, element)
        return tasks.complete(self.rt, task.id, actor or task.assignee or SUP, variables)

    def _run_jobs(self, counts: Counter) -> None:
        from engine import outbox
        from engine.queues import run_job

        while outbox.relay(self.rt, self.jobs):
            while self.jobs.pending:
                _queue, job, payload = self.jobs.pending.popleft()
                run_job(self.rt, job, payload)
                counts[job] += 1

    def loop(self, n: int, counts: Counter) -> tuple[float, float, str]:
        """One closed loop; (loop ms, handle completed → push received ms, case id)."""
        from engine import instances, messages
        from workflows.cases import Alarm, file_alarm
        from workflows.evidence import Place, check_in, missing_evidence, store_photo

        rt, unit, s = self.rt, self.unit, self.settings
        t_start = time.perf_counter()
        ext = f"P-{n}-{uuid.uuid4().hex[:6]}"
        intake = file_alarm(rt, self.index, Alarm(
            tenant=TENANT, source="monitoring", external_id=ext, source_ref=f"MN-{ext}", category=CATEGORY,
            occurred_at=datetime.now(UTC), lon=unit.lon, lat=unit.lat, description="bench: SO2 above the limit",
            details={}), "system:bench-monitoring")
        if intake.outcome != "filed":
            raise LoopFailure(f"alarm {ext} was {intake.outcome}, not filed", "alarm_not_filed")
        iid, case_id = intake.case.instance_id, intake.case.id
        self._complete(iid, "review", SUP, {"review_result": "valid"})
        self._complete(iid, "dispatch", SUP, {})
        self._complete(iid, "sign_for", None, {})
        handle = self._open(iid, "handle")
        inspector = handle.assignee or ""
        place = Place(task_id=handle.id, instance_id=iid, grid_code=instances.get(rt, iid).scope or "")
        check_in(rt.db, rt.clock.now(), place, inspector, unit.lon, unit.lat, s.checkin_tolerance_m)
        store_photo(rt.db, rt.clock.now(), place, inspector, noisy_jpeg(self.photo_bytes), "image/jpeg",
                    Path(s.storage_dir), s.max_photo_bytes)
        if missing_evidence(rt.db, handle.id, handle.element_id):
            raise LoopFailure(f"handle of {case_id} lacks its evidence", "evidence_missing")
        self._complete(iid, "handle", inspector, {"handle_result": "done", "finding_kind": "violation",
                                                  "findings": "治污设施停运"})
        handled = time.perf_counter()
        self._run_jobs(counts)
        arrived = self.sink.arrived.get(case_id)
        if arrived is None:
            raise LoopFailure(f"the push of {case_id} did not arrive", "push_missing")
        payload = {"caseId": case_id, "result": "penalized", "amount": 50000, "ticket": self.sink.tickets.get(case_id)}
        result = messages.correlate(rt, name="enforcement_feedback", message_id=f"enforcement:cb-{case_id}",
                                    actor="system:enforcement", correlation_value=case_id, payload=payload)
        if result.status != "delivered":
            raise LoopFailure(f"the callback of {case_id} was {result.status}, not delivered", "callback_buffered")
        self._complete(iid, "verify", SUP, {"verified": True})
        self._run_jobs(counts)
        if instances.get(rt, iid).status != "completed" or instances.open_tasks(rt, iid):
            raise LoopFailure(f"case {case_id} is not completed", "not_completed")
        return (time.perf_counter() - t_start) * 1000.0, (arrived - handled) * 1000.0, case_id


def run_inprocess(loop: InProcessLoop, loops: int, until: float, warmup: int = 1) -> InProcessResult:
    """`warmup` loops (not measured), then up to `loops` loops; none is started after `until`
    (monotonic)."""
    out = InProcessResult()
    for n in range(warmup):
        loop.loop(-1 - n, Counter())
    t0 = time.perf_counter()
    for n in range(loops):
        if time.monotonic() >= until:
            break
        try:
            ms, push_ms, case_id = loop.loop(n, out.jobs)
        except Exception as exc:
            cause = failure_cause(exc)
            out.failures_by_cause[cause] += 1
            out.failure_samples.append(f"in-process loop {n}: {cause}: {exc}"[:400])
            if not isinstance(exc, LoopFailure):
                log.warning("in-process loop %d failed: %r", n, exc)
            continue
        out.loops += 1
        out.loop_ms.append(ms)
        out.push_ms.append(push_ms)
        out.case_ids.append(case_id)
    out.wall_s = time.perf_counter() - t0
    return out
