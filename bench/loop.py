"""Closed loops over HTTP against the production processes: concurrent clients, PostgreSQL, Redis;
and the same loop in process, without HTTP, in the same run (the ceiling of the HTTP figure).

    python -m bench.loop [--clients N] [--loops N] [--closed N] [--max-seconds S] [--worker-mode simple|fork]
                         [--quick]

Prints ONE JSON line on stdout (progress goes to stderr), within --max-seconds (default 1200 s; quick
300 s): past its share of the time a phase starts nothing new (a loop in flight ends first), and
the line says what was done, with "finished": false.

Setup: the database `gridloop_bench_loop` on 127.0.0.1 is dropped and re-created, migrated, seeded
(holiday calendar, demo tenant 320700) and the bundled models are deployed, in this process (what
`gridloop run` does on start; `gridloop web` does not). Redis db 10 is flushed. Then, as
subprocesses with GRIDLOOP_* variables: `gridloop web` (gunicorn, GRIDLOOP_WEB_WORKERS workers x 8
threads), --rq-workers `gridloop worker` (RQ; GRIDLOOP_WORKER_MODE from --worker-mode: a long-lived
process, or a work horse forked per job) and one `gridloop scheduler`, with GRIDLOOP_ENFORCEMENT_URL
pointing at a fake enforcement system served by this process. Users: one city supervisor
(`bench-sup`, scope 3207) and, per client, the inspector the case is routed to (the demo roster's
`insp-<unit>`), created with api.accounts; the alarms come with a system API key.

A loop, as tests/api/test_closed_loop_http.py: the system POSTs /alarms at a point of the client's
own basic unit (unique sourceRef, so no alarm joins another) → the supervisor finds and completes
`review` (review_result=valid) and `dispatch` → the inspector finds and completes `sign_for`, finds
`handle`, checks in, uploads a photo (multipart, --photo-kb) and completes it (done, violation) →
the outbox row is relayed by the scheduler to RQ and the worker pushes the case to the fake
enforcement system → as soon as the push arrives the enforcement system POSTs the signed callback
(200 delivered, or 202 buffered when the push job has not committed yet) → the supervisor polls
GET /task until `verify` is there and completes it (verified=True) → GET /cases/{id} must say the
process is completed. Every client runs one warm-up loop first (not measured). Clients retry as a
mobile client does (bench/_loop_client.py): every POST carries an Idempotency-Key; a GET or such a
POST whose connection was reset, refused or timed out is sent again (3 tries, short back-off).
Failed loops and retries are counted by cause.

Phases, in this order: warm-up; --closed closed cases inserted in bulk (bench/_loop_support.py;
no batch starts after 45 % of the time), then ANALYZE; the measured loops on --clients clients
(none starts in the last 25 %); --single-loops loops on one client (none in the last 15 %); the
supervisor's home page and the case list timed sequentially (not in the last 10 %); the server
processes stopped; --inprocess-loops loops in process (bench/_loop_inprocess.py) on one client.
`http_ratio` = HTTP loops/s (all clients) ÷ in-process loops/s (one client);
`http_ratio_1client` compares one client with one client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from bench._common import (
    Processes,
    add_scratch_options,
    free_port,
    gridloop_argv,
    interrupt_on_sigterm,
    pct,
    recreate_database,
    rnd,
    summary,
)
from bench._loop_http import Bench, LoopClient
from bench._loop_inprocess import InProcessLoop, run_inprocess
from bench._loop_setup import TENANT, _pg_url, _settings, noisy_jpeg, prepare, server_side_counts, template_instance
from bench._loop_support import EnforcementSink, insert_closed_cases, wait_healthy

__all__ = ["_settings", "main", "noisy_jpeg", "prepare"]  # bench.chaos takes these from here

log = logging.getLogger("bench.loop")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_loop"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"  # the tests use dbs 15 and 14 (and flush them)

NOTES = (
    "loops_per_s = measured loops / wall time of the measured phase (all clients, after one warm-up loop "
    "each). Endpoint latency is client-side wall time of each HTTP call (requests, keep-alive; a retried call "
    "counts once, with its retries), during the measured loops; GET /task includes the supervisor's polls for "
    "`verify`. push_wait = answer to the handle completion received -> push received by the fake enforcement "
    "system (outbox -> scheduler -> RQ -> worker; below 0 when the push came first); verify_wait = callback "
    "answered -> verify visible. The callback is sent the "
    "moment the push arrives, before the push job has committed, so it is often buffered (202) and delivered "
    "when the case starts waiting. Home page and case list: sequential calls by the city supervisor (scope "
    "3207) after the loops, with the bulk closed cases, the demo cases and the loops' cases in the database. "
    "inprocess: the same steps through workflows/ and engine/ functions by ONE client in the bench process, "
    "after the server processes were stopped, the push job run in that thread; http_ratio divides the HTTP "
    "rate of `clients` concurrent clients by it, http_ratio_1client the HTTP rate of one client. All processes "
    "share this machine (cpu_count cores) with PostgreSQL, Redis, the clients and whatever else runs: see "
    "loadavg_1m."
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 8; quick 4)")
    ap.add_argument("--loops", type=int, default=None, help="measured loops in all (default 200; quick 16)")
    ap.add_argument("--single-loops", type=int, default=None, help="loops on one HTTP client after them (default "
                                                                   "20; quick 4; 0: none)")
    ap.add_argument("--inprocess-loops", type=int, default=None, help="loops in process, one client (default 50; "
                                                                      "quick 8; 0: none)")
    ap.add_argument("--closed", type=int, default=None, help="closed cases inserted in bulk (default 100000; "
                                                             "quick 2000)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="the whole run's time, setup included (default 1200; quick 300): phases past their share "
                         "start nothing new and the JSON line says \"finished\": false")
    ap.add_argument("--samples", type=int, default=None, help="calls per page timing (default 100; quick 20)")
    ap.add_argument("--web-workers", type=int, default=2, help="gunicorn workers of `gridloop web` (default 2, "
                                                              "GRIDLOOP_WEB_WORKERS' default)")
    ap.add_argument("--rq-workers", type=int, default=1, help="`gridloop worker` processes (default 1)")
    ap.add_argument("--worker-mode", choices=("simple", "fork"), default="simple",
                    help="GRIDLOOP_WORKER_MODE of the workers (default simple: no fork per job)")
    ap.add_argument("--photo-kb", type=int, default=64, help="size of each uploaded photo (default 64 KiB)")
    ap.add_argument("--quick", action="store_true", help="a small smoke run")
    add_scratch_options(ap, "GRIDLOOP_BENCH_LOOP", DEFAULT_URL, DEFAULT_REDIS)
    args = ap.parse_args(argv)
    q = args.quick
    args.clients = args.clients or (4 if q else 8)
    args.loops = args.loops if args.loops is not None else (16 if q else 200)
    args.single_loops = args.single_loops if args.single_loops is not None else (4 if q else 20)
    args.inprocess_loops = args.inprocess_loops if args.inprocess_loops is not None else (8 if q else 50)
    args.closed = args.closed if args.closed is not None else (2000 if q else 100_000)
    args.max_seconds = args.max_seconds or (300.0 if q else 1200.0)
    args.samples = args.samples or (20 if q else 100)
    return args


class Budget:
    """The run's time (monotonic): each phase starts nothing new past its share."""

    def __init__(self, max_seconds: float) -> None:
        self.start = time.monotonic()
        self.max_seconds = max_seconds
        self.end = self.start + max_seconds

    def by(self, share: float) -> float:
        """The moment `share` (0..1) of the time has passed."""
        return self.start + share * self.max_seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    interrupt_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

    budget = Budget(args.max_seconds)
    load_start = os.getloadavg()
    url, pg_url = args.database_url, _pg_url(args.database_url)
    password = "bench-" + secrets.token_urlsafe(16)  # letters and a "-": the password policy
    secret = secrets.token_hex(16)
    work_dir = Path(tempfile.mkdtemp(prefix="gridloop-bench-loop-"))
    procs = Processes(work_dir, log)
    clients: list[LoopClient] = []
    bench: Bench | None = None
    rc = 1
    try:
        import redis

        redis.Redis.from_url(args.redis_url).flushdb()
        log.info("database %s: re-create, migrate, seed the demo tenant, deploy", url)
        recreate_database(url)
        api_key, units, categories = prepare(url, password, work_dir / "uploads")
        if len(units) < args.clients:
            raise SystemExit(f"only {len(units)} basic units for {args.clients} clients")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with EnforcementSink(secret) as sink:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("GRIDLOOP_")},
                   "GRIDLOOP_DATABASE_URL": url, "GRIDLOOP_REDIS_URL": args.redis_url,
                   "GRIDLOOP_SECRET_KEY": secrets.token_hex(32), "GRIDLOOP_HOST": "127.0.0.1",
                   "GRIDLOOP_PORT": str(port), "GRIDLOOP_ENFORCEMENT_URL": sink.url,
                   "GRIDLOOP_ENFORCEMENT_SECRET": secret, "GRIDLOOP_STORAGE_DIR": str(work_dir / "uploads"),
                   "GRIDLOOP_SEED_DEMO": "false", "GRIDLOOP_DEPLOY_BUNDLED": "false"}
            env["GRIDLOOP_WEB_WORKERS"] = str(args.web_workers)
            env["GRIDLOOP_WORKER_MODE"] = args.worker_mode
            procs.start("web", gridloop_argv("web"), env)
            for i in range(args.rq_workers):
                procs.start(f"worker{i}", gridloop_argv("worker"), env)
            procs.start("scheduler", gridloop_argv("scheduler"), env)
            wait_healthy(base, procs)
            log.info("server up on %s (logs in %s)", base, work_dir)
            setup_s = time.monotonic() - budget.start

            bench = Bench(args, url, base, sink, secret, password, api_key, units, hard_deadline=budget.end)
            step = max(1, len(units) // args.clients)
            clients = [LoopClient(i, units[i * step], bench) for i in range(args.clients)]
            log.info("warm-up: one loop per client (%d)", len(clients))
            bench.run_phase(clients, len(clients), measured=False)
            if bench.failures:
                raise RuntimeError(f"warm-up failed: {bench.failures[:3]}\n{procs.tails()}")
            warm_cases = list(bench.case_ids)
            bench.case_ids.clear()

            bulk: dict[str, Any] = {"cases": 0, "requested": 0, "finished": True}
            if args.closed:
                state, definition_id = template_instance(pg_url, warm_cases[0])
                log.info("inserting %d closed cases (template state %d bytes)", args.closed, len(state))
                bulk = insert_closed_cases(pg_url, n=args.closed, tenant=TENANT, units=units, categories=categories,
                                           template_state=state, template_case_id=warm_cases[0],
                                           definition_id=definition_id, deadline=budget.by(0.45))
                log.info("  %d in %.1fs", bulk["cases"], bulk["seconds"])

            log.info("measured: %d loops on %d clients", args.loops, len(clients))
            for c in clients:  # forget the warm-up
                c.complete_ms.clear()
            wall = bench.run_phase(clients, args.loops, measured=True, until=budget.by(0.75))
            procs.check_alive()
            loops_done = sum(len(c.loop_ms) for c in clients)
            log.info("  %d loops in %.1fs: %.2f loops/s; %d failures %s", loops_done, wall, loops_done / wall,
                     len(bench.failures), dict(bench.failures_by_cause))
            figures = http_figures(bench, clients, loops_done, wall)
            measured_failures = len(bench.failures)
            single = one_client(bench, clients[0], args.single_loops, budget.by(0.85))

            log.info("pages: %d calls each", args.samples)
            pages = time_pages(bench, clients[0], args.samples, units[0].code, budget.by(0.90))
            counts = server_side_counts(pg_url, bench.case_ids)
            procs.stop()  # the in-process loop runs the jobs itself: no scheduler may relay them

            inprocess = None
            if args.inprocess_loops:
                log.info("in process: %d loops on one client", args.inprocess_loops)
                ip = InProcessLoop(url, args.redis_url, work_dir / "uploads", sink, units[0], bench.photo_bytes)
                try:
                    inprocess = run_inprocess(ip, args.inprocess_loops, until=budget.by(0.98))
                finally:
                    ip.close()
                log.info("  %d loops in %.1fs", inprocess.loops, inprocess.wall_s)

        ip_rate = inprocess.loops / inprocess.wall_s if inprocess and inprocess.wall_s and inprocess.loops else None
        rate = loops_done / wall if wall else 0.0
        finished = (loops_done + measured_failures >= args.loops and bulk["finished"] and bench.cut_by_time == 0
                    and single["loops"] + single["failures"] >= args.single_loops and pages["complete"]
                    and (inprocess is None or inprocess.loops + sum(inprocess.failures_by_cause.values())
                         >= args.inprocess_loops))
        result = {
            "benchmark": "loop.http",
            "finished": finished,
            "loops_per_s": round(rate, 3),
            "inprocess_loops_per_s": rnd(ip_rate, 3),
            "http_ratio": rnd(rate / ip_rate, 3) if ip_rate else None,
            "http_1client_loops_per_s": single["loops_per_s"],
            "http_ratio_1client": rnd(single["loops_per_s"] / ip_rate, 3) if ip_rate and single["loops_per_s"]
            else None,
            "loops": loops_done,
            "loops_requested": args.loops,
            "clients": args.clients,
            "closed_cases": bulk["cases"],
            "wall_s": round(wall, 2),
            "failures_by_cause": dict(bench.failures_by_cause),
            "retries_by_cause": dict(bench.rec.retries),
            "loops_cut_by_time": bench.cut_by_time,
            **figures,
            **{k: v for k, v in pages.items() if k != "complete"},
            "errors": len(bench.rec.errors),
            "error_samples": bench.rec.errors[:5],
            "loop_failures": len(bench.failures),
            "failure_samples": bench.failures[:5],
            "pushes_received": sink.pushes,
            "http_1client": single,
            "inprocess": inprocess.report(args.inprocess_loops) if inprocess else None,
            "server": {"web_workers": args.web_workers, "threads_per_web_worker": 8, "rq_workers": args.rq_workers,
                       "worker_mode": args.worker_mode, "schedulers": 1},
            "bulk_insert": bulk,
            **counts,
            "photo_bytes": bench.photo_bytes,
            "setup_s": round(setup_s, 1),
            "total_s": round(time.monotonic() - budget.start, 1),
            "max_seconds": args.max_seconds,
            "loadavg_1m": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
            "python": platform.python_version(),
            "spiffworkflow": importlib_metadata.version("SpiffWorkflow"),
            "gunicorn": importlib_metadata.version("gunicorn"),
            "rq": importlib_metadata.version("rq"),
            "cpu_count": os.cpu_count(),
            "notes": NOTES,
        }
        sys.stdout.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        failed = bench.rec.errors or bench.failures or (inprocess and inprocess.failures_by_cause)
        rc = 1 if failed else 0
        return rc
    except KeyboardInterrupt:
        log.warning("interrupted")
        rc = 130
        return rc
    finally:
        if bench is not None:
            bench.stop.set()
        for c in clients:
            with contextlib.suppress(Exception):
                c.close()
        procs.stop()
        if bench is not None:
            with contextlib.suppress(Exception):
                bench._db.dispose()
        if rc == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
        else:
            log.warning("server logs kept in %s", work_dir)


def http_figures(bench: Bench, clients: list[LoopClient], loops_done: int, wall: float) -> dict[str, Any]:
    """The measured phase's latencies and waits, over all clients."""
    complete_by_task: dict[str, list[float]] = {}
    callbacks: dict[str, int] = {}
    for c in clients:
        for k, v in c.complete_ms.items():
            complete_by_task.setdefault(k, []).extend(v)
        for k, n in c.callbacks.items():
            callbacks[k] = callbacks.get(k, 0) + n
    return {
        "loop_ms": summary([x for c in clients for x in c.loop_ms]),
        "push_wait_ms": summary([x for c in clients for x in c.push_wait_ms]),
        "verify_wait_ms": summary([x for c in clients for x in c.verify_wait_ms]),
        "verify_polls_per_loop": round(sum(c.verify_polls for c in clients) / max(1, loops_done), 2),
        "callbacks": callbacks,
        "endpoints": {k: summary(v) for k, v in sorted(bench.rec.latency.items()) if not k.startswith("page:")},
        "complete_by_task": {k: summary(v) for k, v in sorted(complete_by_task.items())},
    }


def one_client(bench: Bench, client: LoopClient, loops: int, until: float) -> dict[str, Any]:
    """`loops` loops on `client` alone, after the measured phase (not in its latencies)."""
    if not loops:
        return {"loops_per_s": None, "loops": 0, "failures": 0, "wall_s": 0.0}
    before_failures, before_cases = len(bench.failures), len(bench.case_ids)
    log.info("one client: %d loops", loops)
    wall = bench.run_phase([client], loops, measured=False, until=until)
    done = len(bench.case_ids) - before_cases
    log.info("  %d loops in %.1fs", done, wall)
    return {"loops_per_s": round(done / wall, 3) if wall and done else None, "loops": done,
            "failures": len(bench.failures) - before_failures, "wall_s": round(wall, 2)}


def time_pages(bench: Bench, client: LoopClient, samples: int, unit_code: str, until: float) -> dict[str, Any]:
    """The supervisor's home page and case list (and its variants), sequential calls, none after `until`."""
    sup = client.sup
    list_path = f"/api/v1/cases?tenant={TENANT}"
    home = bench.time_page(sup, f"/api/v1/home?tenant={TENANT}", samples, until)
    case_list = bench.time_page(sup, list_path, samples, until)
    variants = {name: bench.time_page(sup, path, max(5, samples // 4), until) for name, path in (
        ("cases_open", f"{list_path}&status=open"), ("cases_closed", f"{list_path}&status=closed"),
        ("cases_grid_closed", f"{list_path}&grid={unit_code[:9]}&status=closed"),
        ("cases_offset_5000", f"{list_path}&offset=5000"))}
    complete = len(home) == samples and len(case_list) == samples and all(
        len(v) == max(5, samples // 4) for v in variants.values())
    return {"home_p50_ms": rnd(pct(home, .5)), "home_p99_ms": rnd(pct(home, .99)),
            "case_list_p50_ms": rnd(pct(case_list, .5)), "case_list_p99_ms": rnd(pct(case_list, .99)),
            "page_samples": len(home), "case_list_variants": {k: summary(v) for k, v in variants.items()},
            "complete": complete}


if __name__ == "__main__":
    raise SystemExit(main())
