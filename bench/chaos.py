"""Closed loops while the processes die: nothing may be lost or done twice.

    python -m bench.chaos [--loops N] [--clients N] [--max-seconds S] [--fault-every A,B] [--min-faults N]
                          [--quick]

Prints ONE JSON line on stdout (progress goes to stderr). Loopback only; bounded in loops and time.

Setup, in a temporary directory: a PostgreSQL cluster of its own (initdb, a free port; run as the
`postgres` account when started as root) and a redis-server of its own without persistence, so
that restarting them hurts nobody else; the database is migrated, seeded with the demo tenant and
the bundled models as `gridloop run` does (bench.loop's `prepare`). Then `gridloop web`, `gridloop
worker` and `gridloop scheduler` as subprocesses (GRIDLOOP_JOB_LEASE 20 s, so that a job lost with
Redis or a killed worker is handed out again soon), a fake enforcement system that counts every
push, and the fake Twilio of bench.notify that counts every SMS by notification id.

Each client runs bench.loop's loop (alarm → review → dispatch → sign for → check in, photo, handle
with a violation → push → signed callback → verify → closed) as a mobile client would: every POST
carries an Idempotency-Key kept across its retries, and connection errors, timeouts, 5xx, 429 and a
409 `in_progress` are retried with backoff. A completion refused after a retry (the earlier attempt
went through but its answer was lost) is accepted when the task is no longer open. One warm-up
loop per client runs before the faults (it also tells how many notices one loop sends).

Meanwhile, every --fault-every seconds (uniform), one fault at random: SIGKILL of the web
(gunicorn and its workers), the worker or the scheduler, each started again at once; an immediate
(crash) restart of PostgreSQL; a restart of Redis (its queue lost). After the loops: the faults stop,
and the run waits (at most --recovery-s) until every outbox row is done, every notification sent
and every handled case pushed. Then it counts, from the database and the fakes:

- lost_cases: alarms answered with a case that has no row; duplicated_cases: more than one case for
  one alarm's external id;
- lost_transitions: task completions answered 2xx without their `task.completed` audit event and
  completed task row; duplicated_transitions: more than one `task.completed` for one task element of
  an instance;
- lost_notices: fewer notifications sent for a finished loop's case than the warm-up loops got, or a
  notification never sent; duplicated_notices: a notification that reached the SMS provider twice;
- lost_pushes: a handled case the enforcement system never got; duplicated_pushes: a case the
  enforcement system got under more than one Idempotency-Key (a second ticket).

All must be 0 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import secrets
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._chaos_support import CountingEnforcement, PrivatePostgres, PrivateRedis, Servers, login
from bench._chaos_tally import count_outcome, reachable_staff, wait_recovered
from bench._common import gridloop_argv, interrupt_on_sigterm, scratch_database
from bench._loop_support import Unit
from bench.loop import noisy_jpeg, prepare

log = logging.getLogger("bench.chaos")

TENANT = "320700"
CATEGORY = "air.exceedance"
SUP = "bench-sup"  # created by bench.loop.prepare
ELEMENTS = ("review", "dispatch", "sign_for", "handle", "verify")
FAULTS = ("web", "worker", "scheduler", "postgres", "redis")


@dataclass
class LoopRecord:
    """What the client was told: the case, and each completion answered 2xx."""

    external_id: str
    case_id: str | None = None
    instance_id: str | None = None
    completed: list[str] = field(default_factory=list)
    handled: bool = False
    finished: bool = False
    error: str | None = None


class ChaosClient:
    def __init__(self, index: int, unit: Unit, run: Run) -> None:
        self.index, self.unit, self.run = index, unit, run
        self.sup = login(run.base, SUP, run.password, run.patience_s)
        from bench._chaos_support import RetryingClient

        self.system = RetryingClient(run.base, {"X-API-Key": run.api_key}, "system:monitoring", run.patience_s)
        self.enforcement = RetryingClient(run.base, {}, "enforcement", run.patience_s)
        self.inspector = None

    def clients(self) -> list:
        return [c for c in (self.sup, self.system, self.enforcement, self.inspector) if c is not None]

    def _open(self, caller, iid: str, element: str, wait_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + wait_s
        while True:
            items = caller.call("GET", f"/api/v1/task?processInstanceId={iid}&taskDefinitionKey={element}")["items"]
            if items or time.monotonic() > deadline:
                return items[0] if items else None
            time.sleep(0.2)

    def _complete(self, caller, rec: LoopRecord, element: str, variables: dict[str, Any],
                  task: dict[str, Any] | None = None) -> None:
        from bench._chaos_support import Refused

        task = task or self._open(caller, rec.instance_id, element, self.run.patience_s)
        if task is None:
            raise RuntimeError(f"{element} of {rec.case_id} never became open")
        try:
            caller.call("POST", f"/api/v1/task/{task['id']}/complete", json={"variables": variables})
        except Refused as exc:  # our earlier attempt went through, its answer was lost?
            if not exc.retried or self._open(caller, rec.instance_id, element, 0) is not None:
                raise
        rec.completed.append(element)

    def loop(self, rec: LoopRecord) -> None:
        from datetime import UTC, datetime

        run, unit = self.run, self.unit

        case = self.system.call("POST", "/api/v1/alarms", json={
            "tenant": TENANT, "source": "monitoring", "externalId": rec.external_id,
            "sourceRef": f"MN-{rec.external_id}", "category": CATEGORY, "occurredAt": datetime.now(UTC).isoformat(),
            "lon": unit.lon, "lat": unit.lat, "description": "chaos: SO2 above the limit"})
        rec.case_id, rec.instance_id = case["id"], case["processInstanceId"]
        self._complete(self.sup, rec, "review", {"review_result": "valid"})
        self._complete(self.sup, rec, "dispatch", {})
        if self.inspector is None:
            sign_for = self._open(self.sup, rec.instance_id, "sign_for", run.patience_s)
            self.inspector = run.inspector(sign_for["assignee"])
        insp = self.inspector
        self._complete(insp, rec, "sign_for", {})
        handle = self._open(insp, rec.instance_id, "handle", run.patience_s)
        url = f"/api/v1/task/{handle['id']}"
        insp.call("POST", f"{url}/checkin", json={"lon": unit.lon, "lat": unit.lat})
        insp.call("POST", f"{url}/photos", files={"file": ("site.jpg", noisy_jpeg(16 * 1024), "image/jpeg")})
        self._complete(insp, rec, "handle", {"handle_result": "done", "finding_kind": "violation",
                                              "findings": "治污设施停运"}, handle)
        rec.handled = True
        ticket = run.sink.wait_for(rec.case_id, run.patience_s * 2)
        if ticket is None:
            raise RuntimeError(f"the push of {rec.case_id} did not arrive")
        body = json.dumps({"caseId": rec.case_id, "result": "penalized", "amount": 50000, "ticket": ticket}).encode()
        from api.views.enforcement import callback_signature

        cb_id, ts = f"cb-{rec.case_id}", str(int(time.time()))
        self.enforcement.call("POST", "/api/v1/enforcement/callback", idempotent=False, data=body, headers={
            "Content-Type": "application/json", "X-Callback-Id": cb_id, "X-Timestamp": ts,
            "X-Signature": callback_signature(run.secret, cb_id, ts, body)})
        self._complete(self.sup, rec, "verify", {"verified": True})
        detail = self.sup.call("GET", f"/api/v1/cases/{rec.case_id}")
        if detail.get("processStatus") != "completed":
            raise RuntimeError(f"case {rec.case_id} is {detail.get('processStatus')} after verify")
        rec.finished = True


class Run:
    def __init__(self, args, url: str, base: str, sink: CountingEnforcement, secret: str, password: str,
                 api_key: str) -> None:
        from api.wiring import make_database
        from bench.loop import _settings

        self.args, self.url, self.base, self.sink = args, url, base, sink
        self.secret, self.password, self.api_key = secret, password, api_key
        self.patience_s = args.patience_s
        self.records: list[LoopRecord] = []
        self.stop = threading.Event()
        self.faults: list[str] = []
        self._lock = threading.Lock()
        self._created: set[str] = set()
        self._db = make_database(_settings(url, ""))

    def inspector(self, username: str):
        from datetime import UTC, datetime

        from api import accounts

        with self._lock:
            if username not in self._created:
                prefix = next(p for p in ("insp-", "duty-insp-") if username.startswith(p))
                accounts.create_user(self._db, datetime.now(UTC), username=username, password=self.password,
                                     roles=["inspector"], scope=username.removeprefix(prefix))
                self._created.add(username)
        return login(self.base, username, self.password, self.patience_s)

    def loops(self, clients: list[ChaosClient], count: int, deadline: float, min_faults: int = 0) -> None:
        """At least `count` loops; more start until `min_faults` faults have happened (a fast machine
        would otherwise finish before the first fault). None starts after `deadline`."""
        counter = itertools.count()
        lock = threading.Lock()

        def work(c: ChaosClient) -> None:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter)
                    if n >= count and len(self.faults) >= min_faults:
                        return
                    rec = LoopRecord(external_id=f"X{c.index}-{n}-{secrets.token_hex(3)}")
                    self.records.append(rec)
                try:
                    c.loop(rec)
                except Exception as exc:
                    rec.error = f"client {c.index} loop {n}: {type(exc).__name__}: {exc}"[:400]
                    log.warning("%s", rec.error)

        threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def chaos(self, servers: Servers, pg: PrivatePostgres, redis_: PrivateRedis, rng: random.Random) -> None:
        lo, hi = self.args.fault_every
        faults = [f for f in FAULTS if f != "postgres" or self.args.pg_restarts]
        while not self.stop.wait(rng.uniform(lo, hi)):
            fault = rng.choice(faults)
            log.info("fault: %s", fault)
            try:
                if fault == "postgres":
                    pg.restart()
                elif fault == "redis":
                    redis_.restart()
                else:
                    servers.kill(fault)
                self.faults.append(fault)
            except Exception as exc:
                log.warning("fault %s failed: %s", fault, exc)
            servers.ensure()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=None, help="loops under faults (default 60; quick 6)")
    ap.add_argument("--clients", type=int, default=None, help="concurrent clients (default 4; quick 3)")
    ap.add_argument("--max-seconds", type=float, default=None, help="no loop starts after this (default 900; "
                                                                    "quick 60)")
    ap.add_argument("--fault-every", default=None, help="seconds between faults, uniform in A,B (default 3,8; "
                                                        "quick 2,5)")
    ap.add_argument("--min-faults", type=int, default=None, help="more loops start until this many faults have "
                                                                 "happened (default 20; quick 6)")
    ap.add_argument("--recovery-s", type=float, default=180, help="longest wait for recovery (default 180)")
    ap.add_argument("--patience-s", type=float, default=300, help="a client's retries give up after this (default 300)")
    ap.add_argument("--no-pg-restarts", dest="pg_restarts", action="store_false", help="no PostgreSQL restarts")
    ap.add_argument("--seed", type=int, default=None, help="random seed of the faults (default: random)")
    ap.add_argument("--quick", action="store_true", help="a small run (the test suite's)")
    args = ap.parse_args(argv)
    q = args.quick
    args.loops = args.loops if args.loops is not None else (6 if q else 60)
    args.clients = args.clients or (3 if q else 4)
    args.min_faults = args.min_faults if args.min_faults is not None else (6 if q else 20)
    args.max_seconds = args.max_seconds or (60 if q else 900)
    args.fault_every = tuple(float(x) for x in (args.fault_every or ("2,5" if q else "3,8")).split(","))
    args.seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    interrupt_on_sigterm()
    result, ok = run(args)
    sys.stdout.write(json.dumps(result, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0 if ok else 1


def run(args) -> tuple[dict[str, Any], bool]:
    """The whole run; its figures and whether every count is 0."""
    from bench._notify_support import FakeProvider
    from bench.notify import ACCOUNT_SID

    started = time.monotonic()
    base_dir = Path(tempfile.mkdtemp(prefix="gridloop-chaos-"))
    pg, redis_ = PrivatePostgres(base_dir), PrivateRedis(base_dir)
    servers: Servers | None = None
    sink = fake = None
    clients: list[ChaosClient] = []
    chaos_thread = None
    ok = False
    try:
        pg.start()
        redis_.start()
        url = scratch_database("gridloop_chaos", f"postgresql://postgres@127.0.0.1:{pg.port}/postgres")
        password, secret = "bench-" + secrets.token_urlsafe(16), secrets.token_hex(16)
        auth_token = secrets.token_hex(16)
        log.info("private PostgreSQL on %d, Redis on %d (%s): migrate, seed, deploy", pg.port, redis_.port, base_dir)
        kept = os.environ.get("GRIDLOOP_ADMIN_PASSWORD")  # prepare sets it: leave a test session's env as it was
        try:
            api_key, units, _categories = prepare(url, password, base_dir / "uploads")
        finally:
            if kept is None:
                os.environ.pop("GRIDLOOP_ADMIN_PASSWORD", None)
        reachable_staff(url, "+8613800138000")
        sink = CountingEnforcement(secret)
        fake = FakeProvider(ACCOUNT_SID, auth_token)
        from bench._common import free_port

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = _server_env(url, redis_.url, port, sink.url, secret, base_dir, fake.url, auth_token)
        servers = Servers(base_dir, env)
        for name in ("web", "worker", "scheduler"):
            servers.add(name, gridloop_argv(name))
        r = Run(args, url, base, sink, secret, password, api_key)
        _wait_up(base, servers)
        step = max(1, len(units) // args.clients)
        clients = [ChaosClient(i, units[i * step], r) for i in range(args.clients)]
        log.info("warm-up: one loop per client, no faults")
        r.loops(clients, len(clients), time.monotonic() + 300)
        warm = list(r.records)
        if not all(rec.finished for rec in warm):
            raise RuntimeError(f"warm-up failed: {[rec.error for rec in warm if rec.error][:3]}")
        r.records.clear()
        log.info("%d loops on %d clients with a fault every %s s (seed %d)", args.loops, args.clients,
                 args.fault_every, args.seed)
        chaos_thread = threading.Thread(target=r.chaos, args=(servers, pg, redis_, random.Random(args.seed)),
                                        daemon=True)
        t0 = time.monotonic()
        chaos_thread.start()
        r.loops(clients, args.loops, time.monotonic() + args.max_seconds, args.min_faults)
        r.stop.set()
        chaos_thread.join()
        loops_s = time.monotonic() - t0
        servers.ensure()
        log.info("faults stopped (%d); waiting for recovery", len(r.faults))
        recovered_s = wait_recovered(url, [rec for rec in r.records if rec.handled], sink, args.recovery_s)
        counts = count_outcome(url, warm, r.records, sink, fake.take())
        zero = all(v == 0 for k, v in counts.items() if k.startswith(("lost_", "duplicated_")))
        finished = sum(rec.finished for rec in r.records)
        ok = zero and recovered_s is not None and finished == len(r.records) > 0
        result = {
            "benchmark": "chaos",
            **{k: v for k, v in counts.items() if k.startswith(("lost_", "duplicated_"))},
            "all_zero": zero,
            "loops_requested": args.loops, "loops_started": len(r.records), "loops_finished": finished,
            "loop_errors": [rec.error for rec in r.records if rec.error][:5],
            "min_faults": args.min_faults, "clients": args.clients, "seed": args.seed,
            "fault_every_s": list(args.fault_every),
            "faults": {f: r.faults.count(f) for f in FAULTS}, "pg_restarts": pg.restarts,
            "redis_restarts": redis_.restarts, "kills": dict(servers.kills),
            "unexpected_exits": dict(servers.unexpected_exits),
            "client_retries": sum(c.retries for cl in clients for c in cl.clients()),
            **{k: v for k, v in counts.items() if not k.startswith(("lost_", "duplicated_"))},
            "loops_s": round(loops_s, 1), "recovery_s": recovered_s, "total_s": round(time.monotonic() - started, 1),
        }
        return result, ok
    finally:
        if chaos_thread is not None and chaos_thread.is_alive():
            r.stop.set()
            chaos_thread.join(30)
        for c in clients:
            for cl in c.clients():
                with contextlib.suppress(Exception):
                    cl.close()
        if servers is not None:
            servers.stop()
        for thing in (sink, fake):
            if thing is not None:
                with contextlib.suppress(Exception):
                    thing.close()
        redis_.stop()
        pg.stop()
        if ok:
            shutil.rmtree(base_dir, ignore_errors=True)
        else:
            log.warning("logs kept in %s", base_dir)


def _server_env(url: str, redis_url: str, port: int, enforcement_url: str, secret: str, base_dir: Path,
                sms_url: str, auth_token: str) -> dict[str, str]:
    from bench.notify import ACCOUNT_SID, FROM_NUMBER

    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLOOP_")}
    env.update({
        "GRIDLOOP_DATABASE_URL": url, "GRIDLOOP_REDIS_URL": redis_url, "GRIDLOOP_SECRET_KEY": secrets.token_hex(32),
        "GRIDLOOP_HOST": "127.0.0.1", "GRIDLOOP_PORT": str(port), "GRIDLOOP_ENFORCEMENT_URL": enforcement_url,
        "GRIDLOOP_ENFORCEMENT_SECRET": secret, "GRIDLOOP_ENFORCEMENT_TIMEOUT": "3",
        "GRIDLOOP_STORAGE_DIR": str(base_dir / "uploads"), "GRIDLOOP_SEED_DEMO": "false",
        "GRIDLOOP_DEPLOY_BUNDLED": "false", "GRIDLOOP_JOB_LEASE": "20", "GRIDLOOP_LOG_LEVEL": "WARNING",
        "GRIDLOOP_WEB_WORKERS": "2", "GRIDLOOP_NOTIFY_SMS_PROVIDER": "twilio",
        "GRIDLOOP_NOTIFY_TWILIO_ACCOUNT_SID": ACCOUNT_SID, "GRIDLOOP_NOTIFY_TWILIO_AUTH_TOKEN": auth_token,
        "GRIDLOOP_NOTIFY_TWILIO_FROM": FROM_NUMBER, "GRIDLOOP_NOTIFY_TWILIO_BASE_URL": sms_url,
        "GRIDLOOP_NOTIFY_PUBLIC_URL": "http://127.0.0.1:9", "GRIDLOOP_NOTIFY_QUIET_HOURS": "off",
        "GRIDLOOP_LOGIN_RATE_USER": "0", "GRIDLOOP_LOGIN_RATE_IP": "0"})
    return env


def _wait_up(base: str, servers: Servers, timeout_s: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        servers.ensure()
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the server did not become healthy within {timeout_s}s")


if __name__ == "__main__":
    raise SystemExit(main())
