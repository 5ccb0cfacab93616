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
    """Enqueue onto RQ; the job id is the job's key (its outbox rows), so rows relayed again replace
    their own earlier job instead of adding a second one."""

    def __init__(self, connection, *, job_timeout: int = 300) -> None:
        from rq import Queue

        self._connection = connection
        self._queues: dict[str, Queue] = {}
        self._queue_cls = Queue
        self._timeout = job_timeout

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, key: str) -> None:
        self._queue(queue).enqueue(RQ_PERFORM, job, payload, job_id=key, job_timeout=self._timeout,
                                   result_ttl=600, failure_ttl=86400)

    def waiting(self, queue: str) -> int:
        return self._queue(queue).count

    def _queue(self, name: str):
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = self._queue_cls(name, connection=self._connection)
        return q


def run_job(rt: Runtime, job: str, payload: dict[str, Any]) -> int:
    """Run a job; when it returns, its outbox row is done (jobs that record an outcome in a
    transaction of their own mark it there, atomically). A crash leaves it for the lease sweeper.
    A batch (outbox.BATCH) goes to its handler's `run_batch`, which marks its rows done. Answers
    how many outbox rows the job carried."""
    handler = rt.job_handlers.get(job)
    if handler is None:
        raise LookupError(f"no handler for job {job!r}")
    if outbox.BATCH in payload:
        run_batch = getattr(handler, "run_batch", None)
        if run_batch is None:
            raise LookupError(f"job {job!r} was handed a batch but takes one row at a time")
        run_batch(rt, payload[outbox.BATCH])
        return len(payload[outbox.BATCH])
    handler(rt, payload)
    if payload.get("outbox_id") is not None and not getattr(handler, "marks_done", False):
        with rt.db.transaction() as s:
            outbox.mark_done(s, payload["outbox_id"], rt.clock.now())
    return 1


class InProcessJobQueue:
    """The embedded default: worker threads in this process run the same job functions as RQ."""

    def __init__(self, rt: Runtime, *, threads: int = 2) -> None:
        self._rt = rt
        self._jobs: stdqueue.Queue[tuple[str, dict[str, Any]] | None] = stdqueue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"jobs-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, key: str) -> None:
        self._jobs.put((job, payload))

    def waiting(self, queue: str) -> int:
        return self._jobs.qsize()  # one queue for all: what waits for these threads

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

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, key: str) -> None:
        self.pending.append((queue, job, payload))

    def waiting(self, queue: str) -> int:
        return sum(1 for name, _job, _payload in self.pending if name == queue)

    def run_all(self) -> int:
        """Run the pending jobs; answers how many outbox rows they carried (a batch counts each)."""
        n = 0
        while self.pending:
            _queue, job, payload = self.pending.popleft()
            n += run_job(self._rt, job, payload)
        return n
