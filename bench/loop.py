"""Closed loops over HTTP against the production processes: concurrent clients, PostgreSQL, Redis.

    python -m bench.loop [--clients N] [--loops N] [--closed N] [--worker-mode simple|fork] [--quick]

Prints ONE JSON line on stdout (progress goes to stderr).

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
process is completed. Every client runs one warm-up loop first (not measured).

Before the measured loops, --closed closed cases are inserted in bulk (see
bench/_loop_support.py for exactly which rows), then ANALYZE. After them, the supervisor's home page
and the case list are timed sequentially on the otherwise idle server.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
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
from bench._loop_support import (
    Client,
    EnforcementSink,
    HttpError,
    Recorder,
    Unit,
    insert_closed_cases,
    load_units,
    login,
    wait_healthy,
)

log = logging.getLogger("bench.loop")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_loop"
DEFAULT_REDIS = "redis://127.0.0.1:6379/10"  # the tests use dbs 15 and 14 (and flush them)
TENANT = "320700"
CATEGORY = "air.exceedance"
SUP = "bench-sup"
PUSH_TIMEOUT_S = 60.0
VERIFY_TIMEOUT_S = 60.0
POLL_S = 0.02

NOTES = (
    "loops_per_s = measured loops / wall time of the measured phase (all clients, after one warm-up loop "
    "each). Endpoint latency is client-side wall time of each HTTP call (requests, keep-alive), during the "
    "measured loops; GET /task includes the supervisor's polls for `verify`. push_wait = handle completed -> "
    "push received by the fake enforcement system (outbox -> scheduler -> RQ -> worker); verify_wait = "
    "callback answered -> verify visible. The callback is sent the moment the push arrives, before the push "
    "job has committed, so it is normally buffered (202) and delivered when the case starts waiting. Home "
    "page and case list: sequential calls by the city supervisor (scope 3207) after the loops, idle server, "
    "with the bulk closed cases, the demo cases and the loops' cases in the database. All processes share "
    "this machine with PostgreSQL, Redis and the clients."
)


class Stop(Exception):
    pass


class LoopClient:
    """One client: a basic unit of its own, the routed inspector's session, the shared supervisor and
    system sessions (each client has its own `requests` sessions)."""

    def __init__(self, index: int, unit: Unit, bench: Bench) -> None:
        self.index = index
        self.unit = unit
        self.b = bench
        rec = bench.rec
        self.sup = login(bench.base, rec, SUP, bench.password)
        self.system = Client(bench.base, rec, {"X-API-Key": bench.api_key}, "system:monitoring")
        self.enforcement = Client(bench.base, rec, {}, "enforcement")
        self.inspector: Client | None = None
        self.loop_ms: list[float] = []
        self.push_wait_ms: list[float] = []
        self.verify_wait_ms: list[float] = []
        self.verify_polls = 0
        self.callbacks = {"delivered": 0, "buffered": 0}
        self.complete_ms: dict[str, list[float]] = {}

    def close(self) -> None:
        for c in (self.sup, self.system, self.enforcement, self.inspector):
            if c is not None:
                c.close()

    def _task(self, caller: Client, iid: str, element: str) -> dict[str, Any] | None:
        items = caller.call("GET", "GET /task", f"/api/v1/task?processInstanceId={iid}&taskDefinitionKey={element}")
        return items["items"][0] if items["items"] else None

    def _one(self, caller: Client, iid: str, element: str) -> dict[str, Any]:
        task = self._task(caller, iid, element)
        if task is None:
            raise RuntimeError(f"{element} of {iid} is not visible to {caller.name}")
        return task

    def _complete(self, caller: Client, task: dict[str, Any], variables: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        caller.call("POST", "POST /task/{id}/complete", f"/api/v1/task/{task['id']}/complete",
                    json={"variables": variables})
        self.complete_ms.setdefault(task["taskDefinitionKey"], []).append((time.perf_counter() - t0) * 1000.0)

    def loop(self, n: int, measured: bool) -> None:
        b, unit = self.b, self.unit
        t_start = time.perf_counter()
        ext = f"L{self.index}-{n}-{uuid.uuid4().hex[:6]}"
        case = self.system.call("POST", "POST /alarms", "/api/v1/alarms", json={
            "tenant": TENANT, "source": "monitoring", "externalId": ext, "sourceRef": f"MN-{ext}",
            "category": CATEGORY, "occurredAt": datetime.now(UTC).isoformat(), "lon": unit.lon, "lat": unit.lat,
            "description": "bench: SO2 above the limit"})
        if case.get("outcome") != "filed":
            raise RuntimeError(f"alarm {ext} was {case.get('outcome')}, not filed")
        iid, case_id = case["processInstanceId"], case["id"]
        self._complete(self.sup, self._one(self.sup, iid, "review"), {"review_result": "valid"})
        self._complete(self.sup, self._one(self.sup, iid, "dispatch"), {})
        if self.inspector is None:  # the warm-up finds out whom the case is routed to
            assignee = self._one(self.sup, iid, "sign_for")["assignee"]
            self.inspector = b.inspector(assignee, unit)
        insp = self.inspector
        self._complete(insp, self._one(insp, iid, "sign_for"), {})
        handle = self._one(insp, iid, "handle")
        url = f"/api/v1/task/{handle['id']}"
        insp.call("POST", "POST /task/{id}/checkin", f"{url}/checkin", json={"lon": unit.lon, "lat": unit.lat})
        photo = noisy_jpeg(b.photo_bytes)
        insp.call("POST", "POST /task/{id}/photos", f"{url}/photos",
                  files={"file": ("site.jpg", photo, "image/jpeg")})
        self._complete(insp, handle, {"handle_result": "done", "finding_kind": "violation",
                                      "findings": "治污设施停运"})
        handled = time.perf_counter()
        arrived = b.sink.wait_for(case_id, PUSH_TIMEOUT_S)
        if arrived is None:
            raise RuntimeError(f"the push of {case_id} did not arrive within {PUSH_TIMEOUT_S}s")
        push_wait = (arrived - handled) * 1000.0
        body = json.dumps({"caseId": case_id, "result": "penalized", "amount": 50000,
                           "ticket": b.sink.tickets.get(case_id, "")}).encode()
        cb_id, ts = f"cb-{case_id}", str(int(time.time()))
        from api.views.enforcement import callback_signature

        answer = self.enforcement.call("POST", "POST /enforcement/callback", "/api/v1/enforcement/callback",
                                       data=body, headers={
            "Content-Type": "application/json", "X-Callback-Id": cb_id, "X-Timestamp": ts,
            "X-Signature": callback_signature(b.secret, cb_id, ts, body)})
        called_back = time.perf_counter()
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        polls = 0
        while (verify := self._task(self.sup, iid, "verify")) is None:
            polls += 1
            if time.monotonic() > deadline:
                raise RuntimeError(f"verify of {case_id} did not appear within {VERIFY_TIMEOUT_S}s")
            if b.stop.is_set():
                raise Stop
            time.sleep(POLL_S)
        verify_wait = (time.perf_counter() - called_back) * 1000.0
        self._complete(self.sup, verify, {"verified": True})
        detail = self.sup.call("GET", "GET /cases/{id}", f"/api/v1/cases/{case_id}")
        if detail.get("processStatus") != "completed" or detail.get("openTasks"):
            raise RuntimeError(f"case {case_id} is {detail.get('processStatus')} with open tasks "
                               f"{[t['taskDefinitionKey'] for t in detail.get('openTasks', [])]}")
        if measured:
            self.loop_ms.append((time.perf_counter() - t_start) * 1000.0)
            self.push_wait_ms.append(push_wait)
            self.verify_wait_ms.append(verify_wait)
            self.verify_polls += polls
            self.callbacks[answer["status"]] = self.callbacks.get(answer["status"], 0) + 1
        b.case_ids.append(case_id)


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, base: str, sink: EnforcementSink, secret: str,
                 password: str, api_key: str, units: list[Unit]) -> None:
        from api.wiring import make_database

        self.args = args
        self.url = url
        self.base = base
        self.sink = sink
        self.secret = secret
        self.password = password
        self.api_key = api_key
        self.units = units
        self.photo_bytes = args.photo_kb * 1024
        self.rec = Recorder()
        self.stop = threading.Event()
        self.case_ids: list[str] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._created: set[str] = set()
        self._db = make_database(_settings(url, ""))

    def inspector(self, username: str, unit: Unit) -> Client:
        """The routed inspector's session; the user is created on first need (scope: their unit)."""
        from api import accounts

        with self._lock:
            if username not in self._created:
                # a unit's inspector by day on working days, the district's duty inspector at night and on holidays
                prefix = next((p for p in ("insp-", "duty-insp-") if username.startswith(p)), None)
                if prefix is None:
                    raise RuntimeError(f"the case was routed to {username!r}, not to a grid inspector")
                accounts.create_user(self._db, datetime.now(UTC), username=username, password=self.password,
                                     roles=["inspector"], scope=username.removeprefix(prefix))
                self._created.add(username)
            return login(self.base, self.rec, username, self.password)

    def run_phase(self, clients: list[LoopClient], loops: int, measured: bool) -> float:
        """Run `loops` loops over the clients (each takes the next loop number when free); wall seconds."""
        counter = itertools.count()
        self.rec.enabled = measured

        def work(c: LoopClient) -> None:
            while not self.stop.is_set():
                n = next(counter)
                if n >= loops:
                    return
                try:
                    c.loop(n, measured)
                except Stop:
                    return
                except Exception as exc:  # record and go on with the next loop
                    with self._lock:
                        self.failures.append(f"client {c.index} loop {n}: {type(exc).__name__}: {exc}"[:400])
                    if not isinstance(exc, HttpError):
                        log.warning("client %d loop %d failed: %s", c.index, n, exc)

        threads = [threading.Thread(target=work, args=(c,), name=f"client-{c.index}", daemon=True) for c in clients]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(timeout=0.5)
        return time.perf_counter() - t0

    def time_page(self, caller: Client, path: str, samples: int) -> list[float]:
        out = []
        for _ in range(samples):
            t0 = time.perf_counter()
            caller.call("GET", f"page:{path}", path)
            out.append((time.perf_counter() - t0) * 1000.0)
        return out


# -- setup -----------------------------------------------------------------------------------------

def _settings(url: str, redis_url: str, **kw):
    from api.settings import Settings

    return Settings(database_url=url, redis_url=redis_url, secret_key="bench", seed_demo=True, **kw)


def prepare(url: str, password: str, storage_dir: Path) -> tuple[str, list[Unit], list[tuple[str, bool]]]:
    """Migrate, seed and deploy as `gridloop run` does; create the supervisor and the system key."""
    from sqlalchemy import select

    from api import accounts
    from api.wiring import make_runtime, prepare_database
    from workflows.people import Category

    os.environ.setdefault("GRIDLOOP_ADMIN_PASSWORD", "bench-" + secrets.token_urlsafe(12))  # no generated one logged
    settings = _settings(url, "", storage_dir=str(storage_dir))  # the demo cases upload photos
    rt = make_runtime(settings)
    try:
        prepare_database(rt, settings)
        now = datetime.now(UTC)
        accounts.create_user(rt.db, now, username=SUP, password=password, roles=["supervisor"], scope="3207",
                             display_name="bench city supervisor")
        key = accounts.create_api_key(rt.db, now, name="bench-monitoring", roles=["system"])
        units = load_units(rt.db, TENANT)
        with rt.db.session() as s:
            rows = s.scalars(select(Category).where(Category.tenant == TENANT))
            categories = [(c.code, bool(c.urgent)) for c in rows]
    finally:
        rt.db.dispose()
    return key, units, categories


def template_instance(pg_url: str, case_id: str) -> tuple[str, int]:
    """The state and definition of the completed instance of `case_id` (a warm-up loop's case)."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT p.state, p.definition_id, p.status FROM env_case c JOIN process_instance p "
                           "ON p.id = c.instance_id WHERE c.id = %s", (case_id,)).fetchone()
    if row is None or row[2] != "completed":
        raise RuntimeError(f"the warm-up case {case_id} has no completed instance ({row and row[2]})")
    return row[0], row[1]


def server_side_counts(pg_url: str, case_ids: list[str]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        status = dict(conn.execute("SELECT status, count(*) FROM env_case WHERE id = ANY(%s) GROUP BY status",
                                   (case_ids,)).fetchall())
        process = dict(conn.execute("SELECT p.status, count(*) FROM env_case c JOIN process_instance p ON "
                                    "p.id = c.instance_id WHERE c.id = ANY(%s) GROUP BY p.status",
                                    (case_ids,)).fetchall())
        incidents = conn.execute("SELECT count(*) FROM incident WHERE status = 'open'").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM env_case").fetchone()[0]
        state_bytes = conn.execute("SELECT avg(octet_length(p.state))::int FROM env_case c JOIN process_instance p "
                                   "ON p.id = c.instance_id WHERE c.id = ANY(%s)", (case_ids,)).fetchone()[0]
    return {"loop_case_status": status, "loop_process_status": process, "open_incidents": incidents,
            "env_case_rows": total, "state_bytes_completed": state_bytes}


def _pg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def noisy_jpeg(about_bytes: int) -> bytes:
    """A real JPEG (the API decodes every photo) of random pixels, about `about_bytes` long and
    different each time."""
    from PIL import Image

    side = max(8, int((about_bytes / 1.25) ** 0.5))  # ~1.25 bytes a pixel at quality 95
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()


# -- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.loop", description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 8; quick 4)")
    ap.add_argument("--loops", type=int, default=None, help="measured loops in all (default 200; quick 16)")
    ap.add_argument("--closed", type=int, default=None, help="closed cases inserted in bulk (default 100000; "
                                                             "quick 2000)")
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
    args.closed = args.closed if args.closed is not None else (2000 if q else 100_000)
    args.samples = args.samples or (20 if q else 100)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("bench.loop").setLevel(logging.INFO)
    interrupt_on_sigterm()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored

    started = time.monotonic()
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

            bench = Bench(args, url, base, sink, secret, password, api_key, units)
            step = max(1, len(units) // args.clients)
            clients = [LoopClient(i, units[i * step], bench) for i in range(args.clients)]
            log.info("warm-up: one loop per client (%d)", len(clients))
            bench.run_phase(clients, len(clients), measured=False)
            if bench.failures:
                raise RuntimeError(f"warm-up failed: {bench.failures[:3]}\n{procs.tails()}")
            warm_cases = list(bench.case_ids)
            bench.case_ids.clear()

            bulk: dict[str, Any] = {"cases": 0}
            if args.closed:
                state, definition_id = template_instance(pg_url, warm_cases[0])
                log.info("inserting %d closed cases (template state %d bytes)", args.closed, len(state))
                bulk = insert_closed_cases(pg_url, n=args.closed, tenant=TENANT, units=units, categories=categories,
                                           template_state=state, template_case_id=warm_cases[0],
                                           definition_id=definition_id)
                log.info("  done in %.1fs", bulk["seconds"])

            log.info("measured: %d loops on %d clients", args.loops, len(clients))
            for c in clients:  # forget the warm-up
                c.complete_ms.clear()
            wall = bench.run_phase(clients, args.loops, measured=True)
            procs.check_alive()
            loops_done = sum(len(c.loop_ms) for c in clients)
            log.info("  %d loops in %.1fs: %.2f loops/s; %d failures", loops_done, wall, loops_done / wall,
                     len(bench.failures))

            log.info("pages: %d calls each", args.samples)
            sup = clients[0].sup
            home_path = f"/api/v1/home?tenant={TENANT}"
            list_path = f"/api/v1/cases?tenant={TENANT}"
            home = bench.time_page(sup, home_path, args.samples)
            case_list = bench.time_page(sup, list_path, args.samples)
            variants = {name: summary(bench.time_page(sup, path, max(5, args.samples // 4))) for name, path in (
                ("cases_open", f"{list_path}&status=open"), ("cases_closed", f"{list_path}&status=closed"),
                ("cases_grid_closed", f"{list_path}&grid={units[0].code[:9]}&status=closed"),
                ("cases_offset_5000", f"{list_path}&offset=5000"))}
            counts = server_side_counts(pg_url, bench.case_ids)

        rec = bench.rec
        endpoints = {k: summary(v) for k, v in sorted(rec.latency.items()) if not k.startswith("page:")}
        all_loop = [x for c in clients for x in c.loop_ms]
        complete_by_task: dict[str, list[float]] = {}
        for c in clients:
            for k, v in c.complete_ms.items():
                complete_by_task.setdefault(k, []).extend(v)
        callbacks: dict[str, int] = {}
        for c in clients:
            for k, v in c.callbacks.items():
                callbacks[k] = callbacks.get(k, 0) + v
        result = {
            "benchmark": "loop.http",
            "loops_per_s": round(loops_done / wall, 3),
            "loops": loops_done,
            "loops_requested": args.loops,
            "clients": args.clients,
            "closed_cases": bulk["cases"],
            "wall_s": round(wall, 2),
            "loop_ms": summary(all_loop),
            "push_wait_ms": summary([x for c in clients for x in c.push_wait_ms]),
            "verify_wait_ms": summary([x for c in clients for x in c.verify_wait_ms]),
            "verify_polls_per_loop": round(sum(c.verify_polls for c in clients) / max(1, loops_done), 2),
            "callbacks": callbacks,
            "endpoints": endpoints,
            "complete_by_task": {k: summary(v) for k, v in sorted(complete_by_task.items())},
            "home_p50_ms": rnd(pct(home, .5)),
            "home_p99_ms": rnd(pct(home, .99)),
            "case_list_p50_ms": rnd(pct(case_list, .5)),
            "case_list_p99_ms": rnd(pct(case_list, .99)),
            "page_samples": args.samples,
            "case_list_variants": variants,
            "errors": len(rec.errors),
            "error_samples": rec.errors[:5],
            "loop_failures": len(bench.failures),
            "failure_samples": bench.failures[:5],
            "pushes_received": sink.pushes,
            "server": {"web_workers": args.web_workers, "threads_per_web_worker": 8, "rq_workers": args.rq_workers,
                       "worker_mode": args.worker_mode, "schedulers": 1},
            "bulk_insert": bulk,
            **counts,
            "photo_bytes": bench.photo_bytes,
            "total_s": round(time.monotonic() - started, 1),
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
        rc = 0 if not rec.errors and not bench.failures else 1
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


if __name__ == "__main__":
    raise SystemExit(main())
