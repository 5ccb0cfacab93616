"""The scheduler process: wakes exactly at the earliest timer deadline (not by fixed polling),
relays the outbox, expires buffered messages. A PostgreSQL advisory lock held on a dedicated
connection makes one scheduler active; the others stand by and take over if it dies."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from . import messages, outbox, timers
from .change import WAKEUP_CHANNEL
from .outbox import JobQueue
from .runtime import Runtime

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x6772_6964_0003
HOUSEKEEPING_EVERY_S = 60.0


@dataclass
class TickResult:
    fired: int
    relayed: int
    expired: int
    next_run: datetime


class Leadership:
    """Holds the scheduler advisory lock on its own connection (PostgreSQL); always granted on SQLite,
    where the embedded runner is the only process."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._conn = None

    def try_acquire(self) -> bool:
        if not self._rt.db.is_postgres:
            return True
        if self._conn is not None:
            return True
        conn = self._rt.db.engine.connect()
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}).scalar()
        conn.commit()
        if got:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        if not self._rt.db.is_postgres:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            self._conn = None
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEDULER_LOCK_KEY})
                self._conn.commit()
            finally:
                self._conn.close()
                self._conn = None


class Scheduler:
    def __init__(self, rt: Runtime, queue: JobQueue, *, max_sleep: timedelta = timedelta(seconds=30),
                 standby_poll: timedelta = timedelta(seconds=5),
                 housekeeping: list[Callable[[], object]] | None = None) -> None:
        """`housekeeping`: chores of other layers (purging old records...), run about once a minute."""
        self.rt = rt
        self.queue = queue
        self.max_sleep = max_sleep
        self.standby_poll = standby_poll
        self.leadership = Leadership(rt)
        self.housekeeping = list(housekeeping or [])
        self._last_housekeeping = float("-inf")
        self._aps = BackgroundScheduler(timezone=UTC)
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held while a job of ours runs; stop() waits for it
        self._woken = threading.Event()  # a wake-up that arrived while a tick was running
        self._listener: threading.Thread | None = None

    # -- one pass --------------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Fire due timers, relay the outbox, expire messages; return when to come back."""
        fired = timers.fire_due(self.rt)
        relayed = outbox.relay(self.rt, self.queue)
        expired = messages.expire(self.rt)
        if time.monotonic() - self._last_housekeeping >= HOUSEKEEPING_EVERY_S:
            self._last_housekeeping = time.monotonic()
            outbox.sweep_expired_leases(self.rt, self.rt.job_lease)
            for chore in self.housekeeping:  # one failing chore (a database hiccup) does not stop the others
                try:
                    chore()
                except Exception:
                    log.exception("housekeeping chore failed", extra={"chore": getattr(chore, "__name__", "?")})
        return TickResult(fired, relayed, expired, self._next_run(more=fired >= 200 or relayed >= 200))

    def _next_run(self, more: bool) -> datetime:
        now = self.rt.clock.now()
        if more:
            return now
        candidates = [now + self.max_sleep]
        for due in (timers.earliest_wakeup(self.rt), outbox.next_available(self.rt)):
            if due is not None:
                candidates.append(due + timers.WAKE_SLACK)
        return max(min(candidates), now)

    # -- the process -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run in background threads until `stop()`; standby until the leadership lock is ours."""
        self._aps.start()
        self._aps.add_job(self._lead_or_wait, "date", run_date=datetime.now(UTC), id="lead")

    def _lead_or_wait(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._try_to_lead()

    def _try_to_lead(self) -> None:
        if not self.leadership.try_acquire():
            log.info("scheduler standing by: another scheduler holds the lock")
            self._aps.add_job(self._lead_or_wait, "date", id="lead", replace_existing=True,
                              run_date=datetime.now(UTC) + self.standby_poll)
            return
        log.info("scheduler active")
        if self.rt.db.is_postgres and (self._listener is None or not self._listener.is_alive()):
            self._listener = threading.Thread(target=self._listen, name="scheduler-listen", daemon=True)
            self._listener.start()
        self._tick_and_reschedule()

    def _run_tick(self) -> None:
        with self._busy:
            if not self._stop.is_set():
                self._tick_and_reschedule()

    def _tick_and_reschedule(self) -> None:
        if not self.leadership.still_held():
            log.warning("scheduler lost its lock; standing by")
            self._aps.add_job(self._lead_or_wait, "date", id="lead", replace_existing=True,
                              run_date=datetime.now(UTC) + self.standby_poll)
            return
        self._woken.clear()  # whatever woke us before this point is handled by this tick
        try:
            result = self.tick()
            delay = result.next_run - self.rt.clock.now()
        except Exception:
            log.exception("scheduler tick failed")
            delay = timedelta(seconds=1)
        if self._woken.is_set():  # woken during the tick: its work may have been committed too late for it
            delay = timedelta(0)
        run_at = datetime.now(UTC) + max(delay, timedelta(0))
        self._aps.add_job(self._run_tick, "date", run_date=run_at, id="tick", replace_existing=True,
                          misfire_grace_time=None, coalesce=True, max_instances=1)

    def wake(self) -> None:
        """Something changed (outbox row, earlier deadline): tick now instead of at the planned time."""
        if self._stop.is_set() or not self._aps.running:
            return
        self._woken.set()
        job = self._aps.get_job("tick")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def _listen(self) -> None:
        """LISTEN for wake-ups committed by web and worker processes."""
        import psycopg

        url = self.rt.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
                    for _ in conn.notifies(timeout=1.0, stop_after=None):
                        self.wake()
                        if self._stop.is_set():
                            return
                    continue
            except Exception:
                log.exception("wake-up listener failed; reconnecting")
                self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop after the tick in progress, if any; nothing runs once this returns."""
        self._stop.set()
        with self._busy:
            if self._aps.running:
                self._aps.shutdown(wait=False)
        self.leadership.release()
