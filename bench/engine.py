"""Engine throughput benchmark on the 7-step reference process (tests/fixtures/reference_loop.bpmn).

    python -m bench.engine [--loops N] [--warmup N] [--database-url URL]

Prints ONE JSON line on stdout (everything else goes to stderr):

* durable loops/steps per second on PostgreSQL with 1 and with 2 worker processes (spawned), each
  with its own Runtime and Database, each running `--loops` loops back to back;
* per-step latency (1-worker run), p50/p99 overall and p50 per kind;
* the size of `process_instance.state` at every wait state and when completed;
* the same process run purely in memory with SpiffWorkflow (no DB, no JSON) in this process, and
  the durable/raw ratio.

A loop: start (business key unique, `handle_due` 4 h ahead) → complete review → complete handle →
relay the outbox into a ManualJobQueue and run the `service_call` job in-process → correlate the
`feedback` message on `case_id` → complete verify → check the instance is completed.

The database (default `gridloop_bench` on 127.0.0.1) is dropped and re-created before each
measured run, migrated with `api.database.upgrade`, and the model deployed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import platform
import queue
import statistics
import sys
import time
import uuid
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from bench import _common
from bench._common import add_scratch_options, pct, rnd
from bench._engine_ceilings import run_db_floor, run_raw
from bench._engine_driver import FIXTURE, STEP_KINDS, WAIT_STATES, Driver, make_runtime, probe

log = logging.getLogger("bench.engine")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench"
STEPS_PER_LOOP = len(STEP_KINDS)
COMMITS_PER_LOOP = 7  # the six steps and the outbox relay each commit once

NOTES = (
    "A step is one engine transaction driven through the public API: instances.start, tasks.complete "
    "(review, handle, verify), one service_call job (outbox relay into ManualJobQueue, run in-process) "
    "and messages.correlate; 6 steps per loop. Step latency is the wall time of that API call (incl. "
    "its own look-ups, excl. the driver's open_tasks reads and the relay). SQL statements and pool "
    "checkouts are counted with SQLAlchemy events in 5 extra loops, "
    "including the driver's reads. Loops/s = loops / wall time "
    "of the measured phase (all workers start on a barrier after warm-up; wall = first start to last "
    "end). With 2 workers a relay may pick up the other worker's outbox row; a worker then waits for "
    "its own job to be done by the other before it correlates (no buffered messages). raw = the same "
    "process in memory with SpiffWorkflow only: same parsed spec, sandboxed script engine, sync "
    "result for both operations, no DB, no serialization. SystemClock; timers never fire. "
    "db_floor = the database alone: 7 commits per loop on one connection, each locking and rewriting a "
    "state row of the loop's average size and appending one audit row. wal_syncs_per_loop = pg_stat_wal's "
    "wal_sync over the 1-worker run / loops (cluster-wide: other databases' work counts too). "
    "The workflow cache keeps each worker's committed workflows by instance (a hit skips deserializing "
    "the state); --compare-cache runs the 1-worker loops again with it off."
)

def track_backends(db) -> set[int]:
    """PIDs of the PostgreSQL backends this process connects to (to read their CPU time)."""
    from sqlalchemy import event

    pids: set[int] = set()

    @event.listens_for(db.engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        pid = getattr(getattr(dbapi_conn, "info", None), "backend_pid", None)
        if pid:
            pids.add(int(pid))

    return pids


def backend_cpu_s(pids: set[int]) -> float | None:
    """User+system CPU seconds of those backends (same machine only; None when unreadable)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for pid in list(pids):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    except (OSError, ValueError, IndexError):
        return None
    return total / tick if pids else None


def _worker(url: str, index: int, loops: int, warmup: int, tag: str, barrier, results, cache: int) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format=f"%(asctime)s w{index} %(levelname)s %(name)s: %(message)s")
    try:
        rt = make_runtime(url, cache)
        backends = track_backends(rt.db)
        warm = Driver(rt, f"{tag}-w{index}-warm")
        for i in range(warmup):
            warm.loop(i)
        drv = Driver(rt, f"{tag}-w{index}")
        barrier.wait(timeout=120)
        pg0, cpu0 = backend_cpu_s(backends), time.process_time()
        hits0, misses0 = rt.workflows.hits, rt.workflows.misses
        wal0 = wal_syncs(rt.db)
        t0 = time.monotonic()
        for i in range(loops):
            drv.loop(i)
        t1 = time.monotonic()
        cpu1, pg1 = time.process_time(), backend_cpu_s(backends)
        wal1 = wal_syncs(rt.db)
        hits, misses = rt.workflows.hits - hits0, rt.workflows.misses - misses0
        rt.db.dispose()
        results.put({"index": index, "start": t0, "end": t1, "loops": loops, "latency": drv.latency,
                     "relay_ms": drv.relay_ms, "jobs_run": drv.jobs_run, "waited": drv.waited,
                     "cpu_python_s": cpu1 - cpu0, "cache_hit_ratio": hits / max(1, hits + misses),
                     "wal_syncs": None if wal0 is None or wal1 is None else wal1 - wal0,
                     "cpu_postgres_s": None if pg0 is None or pg1 is None else pg1 - pg0})
    except BaseException as exc:  # report, never hang the parent
        log.exception("worker %s failed", index)
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"index": index, "error": f"{type(exc).__name__}: {exc}"})


def wal_syncs(db) -> int | None:
    """WAL flushes of the whole cluster so far (pg_stat_wal, PostgreSQL 14+); None if unreadable."""
    from sqlalchemy import text

    try:
        with db.engine.connect() as conn:
            return int(conn.execute(text("SELECT wal_sync FROM pg_stat_wal")).scalar_one())
    except Exception:
        return None


def run_durable(url: str, workers: int, loops: int, warmup: int, tag: str, cache: int = 512) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, i, loops, warmup, tag, barrier, results, cache),
                         name=f"bench-w{i}") for i in range(workers)]
    for p in procs:
        p.start()
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + 900
    try:
        while len(out) < len(procs):
            try:
                out.append(results.get(timeout=1.0))
            except queue.Empty:
                dead = [p.name for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"worker process(es) died without a result: {dead}") from None
                if time.monotonic() > deadline:
                    raise RuntimeError("durable run did not finish within 900 s") from None
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
    errors = [r["error"] for r in out if "error" in r]
    if errors:
        raise RuntimeError(f"{workers}-worker run failed: {errors}")
    wall = max(r["end"] for r in out) - min(r["start"] for r in out)
    total = sum(r["loops"] for r in out)
    latency = {k: [x for r in out for x in r["latency"][k]] for k in STEP_KINDS}
    steps = sum(len(v) for v in latency.values())
    return {"workers": workers, "wall_s": wall, "loops": total, "steps": steps,
            "loops_per_s": total / wall, "steps_per_s": steps / wall, "latency": latency,
            "relay_ms": [x for r in out for x in r["relay_ms"]],
            "waited": sum(r["waited"] for r in out),
            "per_worker_loops_per_s": [r["loops"] / (r["end"] - r["start"]) for r in out],
            "cpu_python_ms_per_loop": 1000 * sum(r["cpu_python_s"] for r in out) / total,
            "cache_hit_ratio": statistics.mean(r["cache_hit_ratio"] for r in out),
            "wal_syncs_per_loop": (None if any(r["wal_syncs"] is None for r in out)
                                   else max(r["wal_syncs"] for r in out) / total),
            "cpu_postgres_ms_per_loop": (None if any(r["cpu_postgres_s"] is None for r in out)
                                         else 1000 * sum(r["cpu_postgres_s"] for r in out) / total)}


# -- database setup --------------------------------------------------------------------------------

def _sa_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def recreate_database(url: str) -> None:
    """Drop and re-create the benchmark database, migrate it and deploy the reference model."""
    from engine import definitions

    _common.recreate_database(url, migrate=True)
    rt = make_runtime(url)
    try:
        definitions.deploy(rt, FIXTURE.read_text(), "bench")
    finally:
        rt.db.dispose()


def postgres_version(url: str) -> str:
    from sqlalchemy import text

    from engine.db import Database

    db = Database(url)
    try:
        with db.session() as s:
            return str(s.scalar(text("SHOW server_version")))
    finally:
        db.dispose()


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=300, help="measured loops per worker (default 300)")
    ap.add_argument("--warmup", type=int, default=15, help="uncounted loops per worker first (default 15)")
    add_scratch_options(ap, "GRIDLOOP_BENCH", DEFAULT_URL)
    ap.add_argument("--raw-seconds", type=float, default=3.0, help="minimum raw in-memory measuring time")
    ap.add_argument("--probe-loops", type=int, default=5, help="loops used to measure state sizes")
    ap.add_argument("--workflow-cache", type=int, default=512,
                    help="workflows kept per worker (engine.workflow_cache; 0: off, as before it existed)")
    ap.add_argument("--compare-cache", action="store_true",
                    help="also run the 1-worker loops with the cache off, in the same run")
    args = ap.parse_args(argv)
    # The library logs every task state change at INFO: keep the root at WARNING (as in the workers)
    # so that the raw run measured here is not slowed by logging; only our own logger says more.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    url = _sa_url(args.database_url)
    tag = uuid.uuid4().hex[:8]
    started = time.monotonic()
    load_start = os.getloadavg()

    runs: dict[int, dict[str, Any]] = {}
    for workers in (1, 2):
        recreate_database(url)
        log.info("durable run: %d worker(s) x %d loops (+%d warm-up)", workers, args.loops, args.warmup)
        runs[workers] = run_durable(url, workers, args.loops, args.warmup, f"{tag}-{workers}w", args.workflow_cache)
        log.info("  %.1f loops/s, %.1f steps/s (wall %.1fs, waited %d)", runs[workers]["loops_per_s"],
                 runs[workers]["steps_per_s"], runs[workers]["wall_s"], runs[workers]["waited"])
    uncached = None
    if args.compare_cache:
        recreate_database(url)
        log.info("durable run, cache off: 1 worker x %d loops", args.loops)
        uncached = run_durable(url, 1, args.loops, args.warmup, f"{tag}-nocache", 0)
    log.info("probing state sizes")
    pr = probe(url, args.probe_loops, f"{tag}-probe")
    log.info("raw in-memory run")
    raw = run_raw(args.raw_seconds, min_loops=200, warmup=20)
    log.info("  %.1f loops/s", raw["loops_per_s"])
    log.info("the database's own rate")
    floor = run_db_floor(url, COMMITS_PER_LOOP, pr["state_bytes_avg"], args.raw_seconds)
    log.info("  %.1f loops/s", floor["loops_per_s"])

    one = runs[1]
    all_lat = [x for k in STEP_KINDS for x in one["latency"][k]]
    result = {
        "benchmark": "engine.reference_loop",
        "durable_loops_per_s_1w": rnd(one["loops_per_s"]),
        "durable_loops_per_s_2w": rnd(runs[2]["loops_per_s"]),
        "durable_steps_per_s_1w": rnd(one["steps_per_s"]),
        "durable_steps_per_s_2w": rnd(runs[2]["steps_per_s"]),
        "scaling_2w_vs_1w": rnd(runs[2]["loops_per_s"] / one["loops_per_s"], 3),
        "step_latency_ms_p50": rnd(pct(all_lat, 0.50), 3),
        "step_latency_ms_p99": rnd(pct(all_lat, 0.99), 3),
        "step_latency_ms_by_kind": {k: rnd(pct(one["latency"][k], 0.50), 3) for k in STEP_KINDS},
        "step_latency_ms_p50_2w": rnd(pct([x for k in STEP_KINDS for x in runs[2]["latency"][k]], 0.50), 3),
        "relay_ms_p50": rnd(pct(one["relay_ms"], 0.50), 3),
        "state_bytes_avg": pr["state_bytes_avg"],
        "state_bytes_completed": pr["state_bytes_completed"],
        "state_bytes_by_wait_state": {k: pr["sizes"][k] for k in WAIT_STATES},
        "sql_statements_per_loop": pr["statements_per_loop"],
        "sql_statements_by_step": pr["statements_by_step"],
        "pool_checkouts_per_loop": pr["checkouts_per_loop"],
        "pool_checkouts_by_step": pr["checkouts_by_step"],
        "raw_loops_per_s": rnd(raw["loops_per_s"]),
        "ratio_vs_raw": rnd(one["loops_per_s"] / raw["loops_per_s"], 4),
        "ratio_vs_raw_2w": rnd(runs[2]["loops_per_s"] / raw["loops_per_s"], 4),
        "ratio_vs_raw_cache_off": rnd(uncached["loops_per_s"] / raw["loops_per_s"], 4) if uncached else None,
        "durable_loops_per_s_1w_cache_off": rnd(uncached["loops_per_s"]) if uncached else None,
        "cpu_python_ms_per_loop_cache_off": rnd(uncached["cpu_python_ms_per_loop"]) if uncached else None,
        "workflow_cache": {"size": args.workflow_cache, "hit_ratio_1w": rnd(one["cache_hit_ratio"], 3),
                           "hit_ratio_2w": rnd(runs[2]["cache_hit_ratio"], 3)},
        "wal_syncs_per_loop_1w": rnd(one["wal_syncs_per_loop"]) if one["wal_syncs_per_loop"] is not None else None,
        "db_floor_loops_per_s": rnd(floor["loops_per_s"]),
        "ratio_vs_db_floor": rnd(one["loops_per_s"] / floor["loops_per_s"], 4),
        "target_ratio": 0.20,
        "loops": {"per_worker": args.loops, "warmup_per_worker": args.warmup, "durable_1w": one["loops"],
                  "durable_2w": runs[2]["loops"], "raw": raw["loops"], "waited_2w": runs[2]["waited"]},
        "wall_s": {"durable_1w": rnd(one["wall_s"]), "durable_2w": rnd(runs[2]["wall_s"]), "raw": rnd(raw["wall_s"]),
                   "total": rnd(time.monotonic() - started, 1)},
        "cpu_ms_per_loop": {f"{w}w": {"wall_x_workers": rnd(1000 * w / runs[w]["loops_per_s"]),
                                      "python": rnd(runs[w]["cpu_python_ms_per_loop"]),
                                      "postgres": rnd(runs[w]["cpu_postgres_ms_per_loop"])}
                            for w in (1, 2)},
        "per_worker_loops_per_s_2w": [rnd(x) for x in runs[2]["per_worker_loops_per_s"]],
        "loadavg_1m": {"start": rnd(load_start[0]), "end": rnd(os.getloadavg()[0])},
        "python": platform.python_version(),
        "spiffworkflow": importlib_metadata.version("SpiffWorkflow"),
        "sqlalchemy": importlib_metadata.version("SQLAlchemy"),
        "postgres": postgres_version(url),
        "cpu_count": os.cpu_count(),
        "notes": NOTES,
    }
    sys.stdout.write(json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
