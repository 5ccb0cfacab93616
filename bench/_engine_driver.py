"""The reference loop driven through the engine's API (bench.engine, bench.profile_engine): a
Runtime, a Driver that times each step, and a probe of state sizes and statements per step."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from bench._common import ROOT

FIXTURE = ROOT / "tests" / "fixtures" / "reference_loop.bpmn"
PROCESS_KEY = "reference_loop"
STEP_KINDS = ("start", "complete_review", "complete_handle", "job", "correlate", "complete_verify")
WAIT_STATES = ("after_start", "after_review", "after_handle", "after_job", "after_correlate")
POLL_TIMEOUT_S = 30.0


# -- the durable loop ------------------------------------------------------------------------------

def register_reference_operations(rt) -> None:
    """The two operations of the reference model (as tests/conftest.py:reference_operations)."""
    rt.registry.register("ref.classify", lambda p, c: {"level": "high" if p["value"] > 100 else "low"})
    rt.registry.register("ref.push", lambda p, c: {"pushed": p["case_id"]}, is_async=True)


def make_runtime(url: str, workflow_cache: int = 512):
    from engine.db import Database
    from engine.runtime import Runtime
    from engine.workflow_cache import WorkflowCache

    rt = Runtime(db=Database(url), workflows=WorkflowCache(workflow_cache))
    register_reference_operations(rt)
    return rt


StepHook = Callable[[str, str], None]


class Driver:
    """Runs reference loops against one Runtime and records the latency of every step."""

    def __init__(self, rt, tag: str) -> None:
        from engine.queues import ManualJobQueue

        self.rt = rt
        self.tag = tag
        self.jobs = ManualJobQueue(rt)
        self.latency: dict[str, list[float]] = {k: [] for k in STEP_KINDS}
        self.relay_ms: list[float] = []
        self.jobs_run = 0
        self.waited = 0         # loops that had to wait for the other worker to run their job
        self._done_jobs: set[str] = set()

    def _timed(self, kind: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        self.latency[kind].append((time.perf_counter() - t0) * 1000.0)
        return out

    def _relay_and_run(self) -> int:
        from engine import outbox
        from engine.queues import run_job

        t0 = time.perf_counter()
        outbox.relay(self.rt, self.jobs)
        self.relay_ms.append((time.perf_counter() - t0) * 1000.0)
        n = 0
        while self.jobs.pending:
            _queue, job, payload = self.jobs.pending.popleft()
            self._timed("job", run_job, self.rt, job, payload)
            self._done_jobs.add(payload["instance_id"])
            n += 1
        self.jobs_run += n
        return n

    def _await_job(self, iid: str) -> None:
        """Make sure the push job of `iid` has completed, by this worker or by another one."""
        from engine import instances

        if iid in self._done_jobs:
            self._done_jobs.discard(iid)
            return
        self.waited += 1
        deadline = time.monotonic() + POLL_TIMEOUT_S
        while True:
            if instances.subscriptions(self.rt, iid):
                return
            if self._relay_and_run() and iid in self._done_jobs:
                self._done_jobs.discard(iid)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"push job of {iid} was not run within {POLL_TIMEOUT_S}s")
            time.sleep(0.0005)

    def loop(self, i: int, hook: StepHook | None = None) -> str:
        from engine import instances, messages, tasks

        rt = self.rt
        case = f"{self.tag}-{i}"
        due = (rt.clock.now() + timedelta(hours=4)).isoformat()
        started = self._timed("start", instances.start, rt, actor="bench", key=PROCESS_KEY, business_key=case,
                              variables={"case_id": case, "value": 150, "grid": "g1", "handle_due": due})
        iid = started.instance.id
        if hook:
            hook("after_start", iid)
        (review,) = instances.open_tasks(rt, iid)
        self._timed("complete_review", tasks.complete, rt, review.id, "sup", {"approved": True})
        if hook:
            hook("after_review", iid)
        (handle,) = instances.open_tasks(rt, iid)
        self._timed("complete_handle", tasks.complete, rt, handle.id, "insp", {"violation": True})
        if hook:
            hook("after_handle", iid)
        self._relay_and_run()
        self._await_job(iid)
        if hook:
            hook("after_job", iid)
        res = self._timed("correlate", messages.correlate, rt, name="feedback", message_id=f"m-{case}",
                          actor="enf", correlation_value=case, payload={"result": "ok"})
        if res.status != "delivered":
            raise RuntimeError(f"feedback for {case} was {res.status}, not delivered")
        if hook:
            hook("after_correlate", iid)
        (verify,) = instances.open_tasks(rt, iid)
        self._timed("complete_verify", tasks.complete, rt, verify.id, "sup", {"passed": True})
        status = instances.get(rt, iid).status
        if status != "completed":
            raise RuntimeError(f"instance {iid} is {status}, not completed")
        if hook:
            hook("completed", iid)
        return iid


# -- state sizes and statements per step (not timed) -----------------------------------------------

def probe(url: str, loops: int, tag: str) -> dict[str, Any]:
    """Run a few loops in this process and read the state size after each step; also count the SQL
    statements (and pool checkouts) each step issues."""
    from sqlalchemy import event, text

    rt = make_runtime(url)
    counts = {"statements": 0, "checkouts": 0}

    def on_exec(*_a, **_k):
        counts["statements"] += 1

    def on_checkout(*_a, **_k):
        counts["checkouts"] += 1

    event.listen(rt.db.engine, "before_cursor_execute", on_exec)
    event.listen(rt.db.engine.pool, "checkout", on_checkout)
    sizes: dict[str, list[int]] = {k: [] for k in (*WAIT_STATES, "completed")}
    per_phase: dict[str, list[tuple[int, int]]] = {k: [] for k in (*WAIT_STATES, "completed")}
    last = {"statements": 0, "checkouts": 0}

    def hook(where: str, iid: str) -> None:
        per_phase[where].append((counts["statements"] - last["statements"], counts["checkouts"] - last["checkouts"]))
        with rt.db.engine.connect() as conn:
            n = conn.execute(text("SELECT octet_length(state) FROM process_instance WHERE id = :i"),
                             {"i": iid}).scalar_one()
        sizes[where].append(int(n))
        last.update(counts)

    drv = Driver(rt, tag)
    drv.loop(0)  # warm
    for i in range(1, loops + 1):
        last.update(counts)
        drv.loop(i, hook)
    rt.db.dispose()
    stmts = {k: statistics.mean(s for s, _c in v) for k, v in per_phase.items()}
    checkouts = {k: statistics.mean(c for _s, c in v) for k, v in per_phase.items()}
    step_of = dict(zip((*WAIT_STATES, "completed"), ("start", "review+open_tasks", "handle+open_tasks",
                                                    "relay+job", "correlate", "verify+open_tasks+get"), strict=True))
    return {
        "sizes": {k: round(statistics.mean(v)) for k, v in sizes.items()},
        "state_bytes_avg": round(statistics.mean(x for k in WAIT_STATES for x in sizes[k])),
        "state_bytes_completed": round(statistics.mean(sizes["completed"])),
        "statements_per_loop": round(sum(stmts.values()), 1),
        "checkouts_per_loop": round(sum(checkouts.values()), 1),
        "statements_by_step": {step_of[k]: round(v, 1) for k, v in stmts.items()},
        "checkouts_by_step": {step_of[k]: round(v, 1) for k, v in checkouts.items()},
    }
