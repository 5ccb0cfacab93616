"""The scheduler process: wakes exactly at the earliest timer deadline (not by fixed polling),
relays the outbox, expires buffered messages, runs the chores. A PostgreSQL advisory lock held on
a dedicated connection makes one scheduler active; the others stand by and take over if it dies
or stalls.

One loop thread ticks and then sleeps until the next deadline, a wake-up (NOTIFY or an in-process
commit) or `max_sleep`, whichever comes first. Ticks used to be APScheduler `date` jobs that
re-added themselves from inside their own run; a re-added job that came due while the running one
still counted as an instance was skipped and, being one-shot, dropped, and nothing ticked again
while the process kept the lock. A loop has no chain to break: a tick that raises or overruns is
followed by the next one. A keeper thread holds the lock only while ticks complete: a tick still
running after `stall_after` makes it let go, and the loop ticks again only once the lock is back.

A scheduler standing by is not idle: when timers have been due for longer than `help_after` (a burst
the active one cannot fire on time), it fires them too, in batches of its own. Each instance is
still its own locked change with the deadline re-checked under the lock, and rows the other holds
are skipped, so each timer fires once; firing takes most of a scheduler's CPU, so two fire a burst
about twice as fast."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from . import messages, outbox, start_timers, timers
from .change import WAKEUP_CHANNEL
from .outbox import JobQueue
from .runtime import Runtime

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x6772_6964_0003
HOUSEKEEPING_EVERY = timedelta(seconds=60)
BATCH = 200  # timers fired (one transaction) / rows relayed per pass; a full batch means more is due at once
IDLE_FLOOR_S = 0.05  # a pass that moved nothing while something is due waits this long (no hot spin)
LEADER_CHECK_S = 1.0  # how often the active scheduler checks its lock connection and its loop
HEARTBEAT_KEY = "gridloop:scheduler:last_tick"  # Redis: when the active scheduler last completed a tick
STANDBY_FIRED_KEY = "gridloop:scheduler:standby_fired"  # Redis: timers standbys fired for a late active one
HELP_AFTER = timedelta(milliseconds=500)  # a standby fires timers due longer than this (the active one is behind)


@dataclass
class TickResult:
    fired: int
    relayed: int
    expired: int
    next_run: datetime
    started: int = 0  # instances started by timer start events


class Leadership:
    """Holds the scheduler advisory lock on its own connection (PostgreSQL); always granted on SQLite,
    where the embedded runner is the only process. The connection is detached from the pool, so
    closing it ends the session and frees the lock even when the unlock itself fails."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if not self._rt.db.is_postgres:
            return True
        if self._conn is not None:
            return True
        conn = self._rt.db.engine.connect()
        conn.detach()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
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
        except Exception:  # the session is gone, and the lock with it
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEDULER_LOCK_KEY})
            self._conn.commit()
        except Exception:
            log.warning("scheduler lock: unlock failed; closing the connection frees it", exc_info=True)
        finally:
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        try:
            assert conn is not None  # dropped only while held
            conn.close()
        except Exception:
            log.debug("closing the lock connection failed", exc_info=True)


class Scheduler:
    def __init__(self, rt: Runtime, queue: JobQueue, *, max_sleep: timedelta = timedelta(seconds=30),
                 standby_poll: timedelta = timedelta(seconds=5), stall_after: timedelta | None = None,
                 housekeeping: list[Callable[[], object]] | None = None,
                 housekeeping_every: timedelta = HOUSEKEEPING_EVERY,
                 heartbeat: Callable[[datetime], object] | None = None,
                 help_after: timedelta | None = HELP_AFTER,
                 standby_fired: Callable[[int], object] | None = None) -> None:
        """`stall_after`: a tick running longer than this gives up the lead (default 3 x `max_sleep`).
        `help_after`: standing by, fire timers due for longer than this (None: only stand by); it is
        also how often a standby looks.
        `housekeeping`: chores of other layers (purging old records...), run every `housekeeping_every`.
        `heartbeat`: told the time of each completed tick, to publish it where other processes look.
        `standby_fired`: told how many timers each standby pass fired, likewise (a count to add up)."""
        self.rt = rt
        self.queue = queue
        self.max_sleep = max_sleep
        self.standby_poll = standby_poll
        self.stall_after = stall_after if stall_after is not None else 3 * max_sleep
        self.leadership = Leadership(rt)
        self.housekeeping = list(housekeeping or [])
        self.housekeeping_every = housekeeping_every
        self.heartbeat = heartbeat
        self.standby_fired = standby_fired
        self.help_after = help_after if rt.db.is_postgres else None  # SQLite: the only scheduler leads
        self.helped = 0  # instances whose timers this scheduler fired while standing by
        self._helping = 0  # of those, fired since the standby last found nothing late
        self.ticks = 0  # completed ticks of the loop (not of direct `tick()` calls)
        self.last_tick_at: datetime | None = None  # by the runtime's clock
        self._last_housekeeping = float("-inf")
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by wake(); cleared when a tick starts, so none is lost
        self._leading = threading.Event()  # the lock is ours and the loop may start ticks
        self._state = threading.Lock()  # orders "start a tick" against "give up the lead"
        self._tick_started: float | None = None  # monotonic; None between ticks
        self._threads: list[threading.Thread] = []
        self._loop: threading.Thread | None = None

    # -- one pass --------------------------------------------------------------------------------
    def tick(self) -> TickResult:
        """Start instances on timer start events, fire due timers, relay the outbox, expire messages,
        run chores when due; return when to come back. Run by the loop, it stops between steps once
        the lead is lost."""
        started, next_start = start_timers.fire_due(self.rt, BATCH)
        fired, taken = timers.fire_batch(self.rt, BATCH) if self._may_go_on() else (0, 0)
        relayed = outbox.relay(self.rt, self.queue, BATCH) if self._may_go_on() else 0
        expired = messages.expire(self.rt) if self._may_go_on() else 0
        if self._may_go_on() and time.monotonic() - self._last_housekeeping >= self.housekeeping_every.total_seconds():
            self._last_housekeeping = time.monotonic()
            self._chores()
        more = taken >= BATCH or relayed >= BATCH or started >= BATCH
        return TickResult(fired, relayed, expired, self._next_run(more=more, next_start=next_start), started)

    def _chores(self) -> None:
        for chore in [lambda: outbox.sweep_expired_leases(self.rt, self.rt.job_lease), *self.housekeeping]:
            if not self._may_go_on():
                return
            try:  # one failing chore (a database hiccup) does not stop the others
                chore()
            except Exception:
                log.exception("housekeeping chore failed", extra={"chore": getattr(chore, "__name__", "?")})

    def _may_go_on(self) -> bool:
        return threading.current_thread() is not self._loop or self._leading.is_set()

    def _next_run(self, more: bool, next_start: datetime | None = None) -> datetime:
        now = self.rt.clock.now()
        if more:
            return now
        candidates = [now + self.max_sleep]
        for due in (timers.earliest_wakeup(self.rt), outbox.next_available(self.rt), next_start):
            if due is not None:
                candidates.append(due + timers.WAKE_SLACK)
        return max(min(candidates), now)

    # -- the process -----------------------------------------------------------------------------
    def start(self) -> None:
        """Run in background threads until `stop()`; stand by until the leadership lock is ours."""
        self._loop = threading.Thread(target=self._run, name="scheduler-loop", daemon=True)
        self._threads = [self._loop, threading.Thread(target=self._keep, name="scheduler-lead", daemon=True)]
        if self.rt.db.is_postgres:
            self._threads.append(threading.Thread(target=self._listen, name="scheduler-listen", daemon=True))
        for thread in self._threads:
            thread.start()

    @property
    def active(self) -> bool:
        """The lock is ours and ticks may run."""
        return self._leading.is_set()

    def wake(self) -> None:
        """Something changed (outbox row, earlier deadline): tick now instead of at the planned time.
        A wake-up during a tick makes the loop tick again right after it."""
        self._wake.set()

    def _run(self) -> None:
        """The loop: tick, then sleep until the next deadline, a wake-up or `max_sleep`."""
        failures = 0
        while not self._stop.is_set():
            if not self._enter_tick():
                if not self._help():
                    self._leading.wait(self._standby_wait())
                continue
            try:
                result = self.tick()
            except Exception:
                failures += 1
                log.exception("scheduler tick failed", extra={"failures": failures})
                pause = min(float(2 ** min(failures - 1, 16)), self.max_sleep.total_seconds())
            else:
                failures = 0
                self.ticks += 1
                self.last_tick_at = self.rt.clock.now()
                pause = (result.next_run - self.last_tick_at).total_seconds()
                if pause <= 0 and not (result.fired or result.relayed or result.started):
                    pause = IDLE_FLOOR_S
                self._beat()
            finally:
                with self._state:
                    self._tick_started = None
            if pause > 0:
                self._wake.wait(min(pause, self.max_sleep.total_seconds()))

    def _help(self) -> bool:
        """Standing by: fire a batch of the timers the active scheduler is behind on. Returns whether
        it took a full batch (more are likely behind)."""
        if self.help_after is None or self._stop.is_set() or self._leading.is_set():
            return False
        try:
            fired, taken = timers.fire_batch(self.rt, BATCH, late_by=self.help_after)
        except Exception:  # the database is away: the keeper's checks and the next look will tell
            log.warning("standby scheduler: firing late timers failed", exc_info=True)
            return False
        self.helped += fired
        self._helping += fired
        if fired:
            self._report(self.standby_fired, fired, "standby scheduler: reporting the timers it fired failed")
        if taken == 0 and self._helping:  # the active scheduler has caught up: say how far behind it was
            log.info("standby scheduler fired %d timers the active one was late with", self._helping,
                     extra={"fired": self._helping})
            self._helping = 0
        return taken >= BATCH

    def _standby_wait(self) -> float:
        every = self.standby_poll if self.help_after is None else min(self.standby_poll, self.help_after)
        return every.total_seconds()

    def _beat(self) -> None:
        if self.last_tick_at is not None and self._leading.is_set():
            self._report(self.heartbeat, self.last_tick_at, "scheduler heartbeat failed")

    @staticmethod
    def _report(to: Callable[[Any], object] | None, value: Any, failure: str) -> None:
        """Publish a figure; the work it describes is done, so a failure is only logged (a missing
        heartbeat shows as late)."""
        if to is None:
            return
        try:
            to(value)
        except Exception:
            log.warning(failure, exc_info=True)

    def _enter_tick(self) -> bool:
        with self._state:
            if self._stop.is_set() or not self._leading.is_set():
                return False
            self._tick_started = time.monotonic()
            self._wake.clear()  # whatever woke us before this point is handled by this tick
            return True

    def _stalled(self) -> bool:
        """The loop died, or its current tick has run longer than `stall_after` (caller holds _state)."""
        if self._loop is not None and not self._loop.is_alive():
            return True
        started = self._tick_started
        return started is not None and time.monotonic() - started > self.stall_after.total_seconds()

    def _keep(self) -> None:
        """Hold the lock while ticks complete; give it up when the loop stalls; take it when free."""
        while not self._stop.is_set():
            try:
                self._check_lead()
            except Exception:
                log.exception("scheduler leadership check failed")
            every = LEADER_CHECK_S if self._leading.is_set() else self.standby_poll.total_seconds()
            self._stop.wait(min(every, self.standby_poll.total_seconds()))

    def _check_lead(self) -> None:
        with self._state:
            leading, stalled = self._leading.is_set(), self._stalled()
            if leading and stalled:
                self._leading.clear()  # under _state: no tick starts after this
        if leading and stalled:
            log.error("scheduler loop stalled: no tick completed for %.0f s; giving up the lead so that a "
                      "standby takes over", self.stall_after.total_seconds())
            self.leadership.release()
        elif leading:
            if not self.leadership.still_held():
                self._leading.clear()
                log.warning("scheduler lost its lock connection; standing by")
        elif not stalled and not self._stop.is_set():
            if self.leadership.try_acquire():
                log.info("scheduler active")
                self._leading.set()
                self._wake.set()
            else:
                log.debug("scheduler standing by: another scheduler holds the lock")

    def _listen(self) -> None:
        """LISTEN for wake-ups committed by web and worker processes, on one connection for as long
        as it lives (a NOTIFY sent while nobody listens is lost; each reconnect wakes once for that)."""
        import psycopg

        url = self.rt.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
                    self.wake()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self.wake()
            except Exception:
                log.exception("wake-up listener failed; reconnecting")
                self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop after the tick in progress, if any; nothing runs once this returns."""
        self._stop.set()
        self._leading.set()  # unblocks a standing-by loop, which then sees _stop
        self._wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        self._leading.clear()
        self.leadership.release()
