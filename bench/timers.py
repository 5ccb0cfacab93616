"""Timers at scale: instances each waiting on one timer, deadlines spread over `--spread` seconds,
plus a burst of `--burst` due within one second; two scheduler processes fire them, and the active
one is SIGKILLed halfway through the spread (the standby takes over). The instances are created
beforehand with the batch start (engine/batch_start.py). Prints one JSON line: lateness (audit time
of the firing minus the deadline), double fires, lost timers, the burst's fires/s, CPU per fire
(schedulers and their PostgreSQL backends), and beside them the ceilings of the same run: the
database's own rate of a firing's writes in one process, and raw SpiffWorkflow on one core.

    python -m bench.timers --quick          # 5,000 + a burst of 1,000, over one minute
    python -m bench.timers                  # 100,000 + a burst of 10,000, over ten minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from bench import _common, _timer_figures
from tests.engine.builders import waits_until

log = logging.getLogger("bench.timers")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_timers"
MODEL = waits_until("bench_timer")


APP = "bench-timers-"  # application_name prefix of the schedulers' connections
CHUNK = 500  # instances per batch start


class Discard:
    """A job queue for a run that writes no outbox rows."""

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        pass


def run_scheduler(url: str) -> None:
    """The scheduler process: runs until SIGTERM (or SIGKILL)."""
    from engine.db import Database
    from engine.runtime import Runtime
    from engine.scheduler import Scheduler

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    rt = Runtime(db=Database(url))
    sched = Scheduler(rt, Discard())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sched.start()
    stop.wait()
    sched.stop()


def create(url: str, dues: list[datetime], starters: int) -> tuple[list[str], float]:
    """Start one instance per deadline with batch starts from `starters` threads; their ids in the
    order of `dues`, and the wall seconds it took."""
    from engine.batch_start import StartItem, start_many
    from engine.db import Database
    from engine.runtime import Runtime

    rt = Runtime(db=Database(url))
    ids: list[str] = [""] * len(dues)
    chunks = [list(range(i, min(i + CHUNK, len(dues)))) for i in range(0, len(dues), CHUNK)]
    t0 = time.monotonic()

    def work(mine: list[list[int]]) -> None:
        for chunk in mine:
            started = start_many(rt, actor="bench", key="bench_timer",
                                 items=[StartItem({"due": dues[i].isoformat()}) for i in chunk])
            for i, row in zip(chunk, started, strict=True):
                ids[i] = row.id

    threads = [threading.Thread(target=work, args=(chunks[k::starters],)) for k in range(starters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rt.db.dispose()
    return ids, time.monotonic() - t0


def _query(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(_timer_figures._common_psycopg(url), autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def active_scheduler(url: str) -> str | None:
    """The application_name of the scheduler holding the leadership lock."""
    rows = _query(url, "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                       "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()")
    return rows[0][0] if rows else None


def running(url: str) -> int:
    return _query(url, "SELECT count(*) FROM process_instance WHERE status = 'running'")[0][0]


def _at(moment: float) -> None:
    time.sleep(max(moment - time.time(), 0))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="5,000 + a burst of 1,000 over 60 s")
    ap.add_argument("--instances", type=int, help="spread over the window (default 100,000; quick 5,000)")
    ap.add_argument("--burst", type=int, help="due within one second (default 10,000; quick 1,000)")
    ap.add_argument("--spread", type=float, help="seconds the deadlines spread over (default 600; quick 60)")
    ap.add_argument("--starters", type=int, default=2, help="threads creating instances")
    ap.add_argument("--lead", type=float, help="seconds from the start of creation to the first deadline "
                                               "(default: instances / 150 per s + 10)")
    ap.add_argument("--run-scheduler", action="store_true", help=argparse.SUPPRESS)
    _common.add_scratch_options(ap, "GRIDLOOP_BENCH", DEFAULT_URL)
    args = ap.parse_args(argv)
    if args.run_scheduler:
        run_scheduler(args.database_url)
        return 0
    n = args.instances if args.instances is not None else (5_000 if args.quick else 100_000)
    burst = args.burst if args.burst is not None else (1_000 if args.quick else 10_000)
    spread = args.spread if args.spread is not None else (60.0 if args.quick else 600.0)
    lead = args.lead if args.lead is not None else (n + burst) / 150 + 10
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)
    _common.interrupt_on_sigterm()
    from engine import definitions
    from engine.db import Database
    from engine.runtime import Runtime

    _common.recreate_database(args.database_url, migrate=True)
    rt = Runtime(db=Database(args.database_url))
    definitions.deploy(rt, MODEL, "bench")
    rt.db.dispose()

    base = time.time() + lead  # the first deadline of the window
    rng = random.Random(7)
    offsets = [rng.uniform(0, spread) for _ in range(n)] + [spread / 4 + rng.uniform(0, 1) for _ in range(burst)]
    dues = [datetime.fromtimestamp(base + o, UTC) for o in offsets]
    log.info("creating %d instances (first deadline in %.0f s)", n + burst, lead)
    ids, creating = create(args.database_url, dues, args.starters)
    created_at = time.time()
    late_created = sum(1 for o in offsets if base + o < created_at)
    log.info("created in %.1f s (%d deadlines already past)", creating, late_created)

    procs = {}
    for name in ("a", "b"):
        url = f"{args.database_url}{'&' if '?' in args.database_url else '?'}application_name={APP}{name}"
        procs[APP + name] = subprocess.Popen([sys.executable, "-m", "bench.timers", "--run-scheduler",
                                              "--database-url", url], cwd=_common.ROOT, env=os.environ.copy(),
                                             start_new_session=True)
    sampler = _timer_figures.CpuSampler(args.database_url, [p.pid for p in procs.values()], APP)
    killed = None
    try:
        sampler.start()
        _at(base)
        sampler.sample()
        before = sampler.totals()
        _at(base + spread / 2)
        killed = active_scheduler(args.database_url)
        if killed in procs:
            procs[killed].send_signal(signal.SIGKILL)
            log.info("SIGKILLed the active scheduler %s", killed)
        give_up = base + spread + 120
        while time.time() < give_up and running(args.database_url):
            time.sleep(1.0)
        drained_s = time.time() - base
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        sampler.stop()
    after = sampler.totals()
    outcome = _timer_figures.outcome(args.database_url, {ids[i] for i in range(n, n + burst)})
    fires = outcome["instances"] - outcome["lost"]
    cpu = {kind: after[kind] - before[kind] for kind in after}
    result = {"bench": "timers", "quick": args.quick, "spread_instances": n, "burst_instances": burst,
              "spread_s": spread,
              "create_wall_s": round(creating, 1), "starts_per_s": round((n + burst) / creating, 1),
              "created_after_deadline": late_created, "killed": killed, "drained_s": round(drained_s, 1),
              **outcome,
              "cpu_ms_per_fire": {kind: _common.rnd(v * 1000 / fires) if fires else None for kind, v in cpu.items()},
              "ceiling": {"db_fire_writes_per_s": _timer_figures.db_ceiling(args.database_url, min(n, 20_000), 200),
                          "raw_spiff_fires_per_s": _timer_figures.spiff_ceiling(args.database_url, 2000)},
              "loadavg": os.getloadavg()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
