"""A long-lived RQ worker: jobs run in the worker's own process, not in a work horse forked per job
(the fork and the horse's set-up cost about 60 ms a job). What the fork gave is kept:

- A job past its RQ timeout is interrupted by SIGALRM in this (main) thread — RQ's
  UnixSignalDeathPenalty, as SimpleWorker uses — and fails (or, when it catches the exception, as
  service calls do to retry, ends as it decides). Either way the process then finishes between jobs:
  an exception raised at an arbitrary point may have left a connection or a library half-way, so a
  fresh process takes the next job.
- A job that never gets back to Python to see that exception (it swallows it, or blocks in C with the
  signal ignored) cannot be stopped from inside: a Python thread cannot be killed. A watchdog thread
  ends the whole process once the job runs past its timeout plus a grace (inside the job lease, so the
  job is not handed out again while it still runs); the lease then hands it out again.
- A job that leaks: after `max_jobs` jobs, or once resident memory passes `max_rss_mb` after a job,
  the process finishes between jobs.

Each of those exits is taken up by `engine.supervisor.supervise`, which starts a new process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from rq import SimpleWorker, Worker
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

if TYPE_CHECKING:
    from rq.worker.base import BaseWorker as _WorkerMixinBase  # what the mixin's methods find on `self`
else:
    _WorkerMixinBase = object

log = logging.getLogger(__name__)

EXIT_HUNG = 75  # the watchdog ended the process: a job ran past its hard deadline (EX_TEMPFAIL)


@dataclass(frozen=True)
class Recycle:
    """When a long-lived worker process should make way for a fresh one (checked between jobs)."""

    max_jobs: int = 1000
    max_rss_mb: int = 512  # 0: no limit

    def reason(self, jobs_done: int, rss_bytes: int | None) -> str | None:
        if jobs_done >= self.max_jobs:
            return f"{jobs_done} jobs done (GRIDLOOP_WORKER_MAX_JOBS)"
        if self.max_rss_mb and rss_bytes is not None and rss_bytes > self.max_rss_mb * 1024 * 1024:
            return f"resident memory {rss_bytes // (1024 * 1024)} MB (GRIDLOOP_WORKER_MAX_RSS_MB)"
        return None


def hard_deadline_s(timeout_s: int) -> int:
    """How long a job may run before the watchdog ends the process: its timeout plus half again (at
    least a second) — inside the job lease, which is at least twice the timeout (Settings.job_timeout_s)."""
    return timeout_s + max(1, timeout_s // 2)


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux /proc); None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _exit_hung(job_id: str) -> None:
    log.critical("job %s ran past its hard deadline and did not stop: ending the worker process; "
                 "its lease hands the job out again", job_id, extra={"job_id": job_id})
    os._exit(EXIT_HUNG)


class Watchdog:
    """A thread that calls `on_overrun(job_id)` when the armed job is still running at its deadline."""

    def __init__(self, on_overrun: Callable[[str], None] = _exit_hung) -> None:
        self._on_overrun = on_overrun
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._job_id = ""
        self._stopped = False
        self._thread = threading.Thread(target=self._watch, name="job-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._thread.join(5)

    def arm(self, job_id: str, seconds: float) -> None:
        with self._changed:
            self._job_id, self._deadline = job_id, time.monotonic() + seconds
            self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = None
            self._changed.notify()

    def _watch(self) -> None:
        with self._changed:
            while not self._stopped:
                if self._deadline is None:
                    self._changed.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                job_id, self._deadline = self._job_id, None
                self._on_overrun(job_id)


class NotingDeathPenalty(UnixSignalDeathPenalty):
    """RQ's SIGALRM timeout that also tells its worker when it fired: a job may catch the exception
    (an operation's `except Exception` turns it into a retry) and end normally, and the process should
    still make way for a fresh one."""

    def __init__(self, timeout, exception=JobTimeoutException, *, on_fire: Callable[[str], None], **kwargs) -> None:
        super().__init__(timeout, exception, **kwargs)
        self._on_fire = on_fire
        self._job_id = str(kwargs.get("job_id") or "")

    def handle_death_penalty(self, signum, frame) -> None:
        self._on_fire(self._job_id)
        super().handle_death_penalty(signum, frame)


class PromptCommandChannel(_WorkerMixinBase):
    """RQ's subscribe, but polling the worker's command channel every second instead of every minute:
    redis-py 8's PubSubWorkerThread.stop() waits for the poll to return, which held every exit of a
    worker (a SIGTERM, each recycle) for up to 60 s."""

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]  # rq leaves it unannotated: inferred None
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler)


class ForkingWorker(PromptCommandChannel, Worker):
    """RQ's stock worker (a work horse forked per job): GRIDLOOP_WORKER_MODE=fork."""


class LongLivedWorker(PromptCommandChannel, SimpleWorker):
    """SimpleWorker (jobs in this process, SIGALRM timeouts) that stops between jobs when it should
    make way for a fresh process, and has a watchdog for jobs the timeout cannot stop."""

    def __init__(self, queues, *, connection, recycle: Recycle, watchdog: Watchdog | None = None, **kwargs) -> None:
        super().__init__(queues, connection=connection, **kwargs)
        self.recycle = recycle
        self.watchdog = watchdog or Watchdog()
        self.jobs_done = 0
        self.recycle_reason: str | None = None
        self.stop_signalled = False
        self._plain_heartbeat_at: float | None = None
        self._state_written: str | None = None
        self.death_penalty_class = partial(NotingDeathPenalty, on_fire=self._timed_out)  # type: ignore[assignment]

    @property
    def exit_code(self) -> int:
        """After `work`: 0 when it stopped as asked (recycled, SIGTERM/SIGINT), 1 when RQ's loop gave up
        (Redis lost, an error of its own), so the supervisor backs off instead of respawning at once."""
        return 0 if self.recycle_reason or self.stop_signalled else 1

    def handle_warm_shutdown_request(self) -> None:
        self.stop_signalled = True
        super().handle_warm_shutdown_request()

    def work(self, *args, **kwargs) -> bool:
        self.watchdog.start()
        try:
            return super().work(*args, **kwargs)
        finally:
            self.watchdog.stop()

    def execute_job(self, job, queue) -> None:
        timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
        if timeout > 0:  # -1: no timeout
            self.watchdog.arm(job.id, hard_deadline_s(int(timeout)))
        try:
            super().execute_job(job, queue)
        finally:
            self.watchdog.disarm()
        self.jobs_done += 1
        self.recycle_reason = self.recycle_reason or self.recycle.reason(self.jobs_done, resident_bytes())
        if self.recycle_reason and not self._stop_requested:
            self.log.info("Worker %s: making way for a fresh process: %s", self.name, self.recycle_reason)
            self._stop_requested = True  # RQ's loop stops before taking another job

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """RQ's, but a plain heartbeat (the idle TTL, three round trips) within a second of another
        plain one is left out: RQ's loop sends three around each job, and a key that lives for minutes
        needs one. A heartbeat with a job's TTL, or inside a pipeline, is always sent."""
        plain = timeout is None and pipeline is None
        at = time.monotonic()
        if plain and self._plain_heartbeat_at is not None and at - self._plain_heartbeat_at < 1.0:
            return
        super().heartbeat(timeout, pipeline)
        self._plain_heartbeat_at = at if plain else None

    def set_state(self, state: str, pipeline=None) -> None:
        """RQ's, without writing the state it already wrote last (idle after a job, idle again before
        the next dequeue)."""
        if pipeline is None and state == self._state_written:
            return
        super().set_state(state, pipeline)
        self._state_written = state if pipeline is None else None

    def _timed_out(self, job_id: str) -> None:
        self.recycle_reason = self.recycle_reason or f"job {job_id} timed out"
