"""Where relayed outbox rows go: RQ on Redis in production, an in-process runner when embedded,
and a manual queue for tests that want to run jobs one by one."""

from __future__ import annotations

import logging
import queue as stdqueue
import threading
from collections import deque
from typing import Any

from . import outbox
from .runtime import Runtime

log = logging.getLogger(__name__)

RQ_PERFORM = "engine.worker.perform"


class RQJobQueue:
    """Enqueue onto RQ; the job id is derived from the outbox row, so a re-relayed row replaces
    its own earlier job instead of adding a second one."""

    def __init__(self, connection, *, job_timeout: int = 300) -> None:
        from rq import Queue

        self._connection = connection
        self._queues: dict[str, Queue] = {}
        self._queue_cls = Queue
        self._timeout = job_timeout

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        q = self._queues.get(queue)
        if q is None:
            q = self._queues[queue] = self._queue_cls(queue, connection=self._connection)
        q.enqueue(RQ_PERFORM, job, payload, job_id=f"outbox-{entry_id}", job_timeout=self._timeout,
                  result_ttl=600, failure_ttl=86400)


def run_job(rt: Runtime, job: str, payload: dict[str, Any]) -> None:
    """Run a job; when it returns, its outbox row is done (jobs that record an outcome in a
    transaction of their own mark it there, atomically). A crash leaves it for the lease sweeper."""
    handler = rt.job_handlers.get(job)
    if handler is None:
        raise LookupError(f"no handler for job {job!r}")
    handler(rt, payload)
    if payload.get("outbox_id") is not None and not getattr(handler, "marks_done", False):
        with rt.db.transaction() as s:
            outbox.mark_done(s, payload["outbox_id"], rt.clock.now())


class InProcessJobQueue:
    """The embedded default: worker threads in this process run the same job functions as RQ."""

    def __init__(self, rt: Runtime, *, threads: int = 2) -> None:
        self._rt = rt
        self._jobs: stdqueue.Queue[tuple[str, dict[str, Any]] | None] = stdqueue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"jobs-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        self._jobs.put((job, payload))

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            try:
                run_job(self._rt, *item)
            except Exception:
                log.exception("in-process job failed", extra={"job": item[0]})

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)


class ManualJobQueue:
    """Collects jobs; `run_all` executes them in the caller's thread (tests, benchmarks)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.pending: deque[tuple[str, str, dict[str, Any]]] = deque()

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        self.pending.append((queue, job, payload))

    def run_all(self) -> int:
        n = 0
        while self.pending:
            _queue, job, payload = self.pending.popleft()
            run_job(self._rt, job, payload)
            n += 1
        return n
