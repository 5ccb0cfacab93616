"""Notification delivery throughput and lag: outbox → scheduler relay → RQ → `notify.deliver` → provider.

    python -m bench.notify [--notices N] [--batch N] [--workers 1,2] [--worker-modes simple,fork] [--quick]

Prints ONE JSON line on stdout (progress goes to stderr).

Setup, for each worker count (1, then 2): the database `gridloop_bench_notify` on 127.0.0.1 is
dropped, re-created and migrated (api.database.upgrade); Redis db 11 is flushed. Subprocesses with
GRIDLOOP_* variables: one `gridloop scheduler` (relays the outbox to RQ) and K `gridloop worker
notify` (GRIDLOOP_WORKER_MODE from --worker-modes: `simple`, the default, runs jobs in a long-lived
process; `fork` is RQ's stock worker, a forked work horse per job; each mode is a run of its own,
keyed `<mode>_<K>w`, so both can be compared in the same invocation). GRIDLOOP_NOTIFY_TWILIO_* point the real
TwilioSms provider (official SDK, base-URL override) at FakeTwilio from tests/notifications/fakes.py,
run in a child process of this one; GRIDLOOP_NOTIFY_PUBLIC_URL is set so that every send carries
its notification id in the StatusCallback URL, which is how the fake attributes each request
(nothing calls that URL). Quiet hours are off.

This process plays the `notice.plan` job: `queue_notices` in one transaction per batch (one
`dispatch` notice per request, unique key, channel sms with its own phone number), exactly as
workflows/notices.py calls it. Commit time = time.time() right after commit; arrival = time.time()
in the fake when the send request arrived (same machine, same clock).

Phases: warm-up (10 notices with a NOTIFY, not measured) → burst (N notices in batches of --batch, queued as fast
as possible; notices/s = drain rate, (N − 1) / (last − first arrival); its lag is mostly backlog) →
paced "as_is" (P notices, one per transaction, open loop at half the drain rate: lag_ms_*) → paced
"woken" (the same, but the transaction also NOTIFYs the scheduler as engine changes do, which
queue_notices does not: lag_ms_*_woken). Then: every notification row must be `sent`, each must
have reached the fake exactly once (`duplicates`, `lost`), and every outbox row must be done; RQ's
job timestamps split each lag into relay / queue wait / send / record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from ._common import Processes, add_scratch_options, gridloop_argv, interrupt_on_sigterm, pct, recreate_database, rnd
from ._notify_support import FakeProvider

log = logging.getLogger("bench.notify")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_notify"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
ACCOUNT_SID = "AC" + "b" * 32
FROM_NUMBER = "+15005550006"
WARMUP = 10
STALL_S = 60.0  # no new arrival for this long: the run has failed
DATA = {"case_no": "BENCH-0001", "category": "废气", "address": "南京市玄武区北京东路41号", "due": "2025-06-01 17:00"}

NOTES = (
    "Real path: a `gridloop scheduler` subprocess relays outbox rows (FOR UPDATE SKIP LOCKED, up to 200 "
    "per tick) to RQ; each `gridloop worker notify` runs the job (in its long-lived process in mode simple, in a "
    "work horse forked per job in mode fork). A job carries up to notify_batch notices "
    "(GRIDLOOP_NOTIFY_BATCH; the relay gathers due rows into batches, and holds a batch with room left while "
    "the queue has jobs waiting): it claims them (transaction 1), sends each through TwilioSms (twilio SDK) "
    "to the fake over loopback HTTP, and records `sent` + outbox done for all (transaction 2). The bench "
    "commits like the notice.plan job "
    "(queue_notices; its outbox rows NOTIFY the scheduler on commit). notices_per_s = burst drain rate "
    "(first to last arrival); "
    "notices_per_s_from_first_commit includes the wait for the scheduler's first relay. lag_ms_* = "
    "paced as_is (one notice per transaction at half the drain rate); lag_ms_*_woken = the same with an "
    "extra NOTIFY in the transaction (now the same as as_is). breakdown_ms_p50: relay = RQ enqueued_at − "
    "commit, queue_wait = "
    "started_at − enqueued_at, send = fake arrival − started_at (in a batch: after the sends before it), "
    "record = ended_at − arrival (in a batch: the sends after it, then the transaction recording all). "
    "Everything shares the machine's cores with PostgreSQL, Redis and this process."
)


# -- setup -----------------------------------------------------------------------------------------

def process_env(url: str, redis_url: str, fake_url: str, auth_token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDLOOP_")}
    env.update({
        "GRIDLOOP_DATABASE_URL": url, "GRIDLOOP_REDIS_URL": redis_url,
        "GRIDLOOP_SECRET_KEY": secrets.token_hex(32), "GRIDLOOP_LOG_LEVEL": "WARNING",
        "GRIDLOOP_SEED_DEMO": "false", "GRIDLOOP_DEPLOY_BUNDLED": "false",
        "GRIDLOOP_NOTIFY_SMS_PROVIDER": "twilio", "GRIDLOOP_NOTIFY_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "GRIDLOOP_NOTIFY_TWILIO_AUTH_TOKEN": auth_token, "GRIDLOOP_NOTIFY_TWILIO_FROM": FROM_NUMBER,
        "GRIDLOOP_NOTIFY_TWILIO_BASE_URL": fake_url,
        # Only so that each send carries its notification id (StatusCallback); nothing calls it.
        "GRIDLOOP_NOTIFY_PUBLIC_URL": "http://127.0.0.1:9",
        "GRIDLOOP_NOTIFY_QUIET_HOURS": "off",
    })
    return env


def wait_workers(redis_conn, count: int, procs: Processes, timeout_s: float = 60) -> None:
    from rq import Worker

    deadline = time.monotonic() + timeout_s
    while len(Worker.all(connection=redis_conn)) < count:
        procs.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} RQ workers did not register within {timeout_s}s\n{procs.tails()}")
        time.sleep(0.1)


# -- the producer: this process plays notice.plan ----------------------------------------------------

class Producer:
    def __init__(self, url: str) -> None:
        from engine.db import Database
        from notifications.quiet_hours import QuietHours

        self.db = Database(url)
        self.quiet = QuietHours(start=None)
        self.commits: dict[str, float] = {}  # notification id → time.time() of its commit
        self.seq = 0

    def batch(self, n: int, *, wake: bool = False) -> list[str]:
        """Queue `n` notices in one transaction; `wake`: also NOTIFY the scheduler in it, as engine
        changes do when they write outbox rows (queue_notices does not)."""
        from engine.change import WAKEUP_CHANNEL
        from notifications.queueing import NoticeRequest, queue_notices
        from notifications.templates import DISPATCH

        requests = []
        for _ in range(n):
            i, self.seq = self.seq, self.seq + 1
            requests.append(NoticeRequest(key=f"bench:{i}", kind=DISPATCH, recipient=f"bench-{i}",
                                          channels=[("sms", f"+86138{i:08d}")], data=DATA))
        with self.db.transaction() as s:
            ids = queue_notices(s, datetime.now(UTC), requests, self.quiet)
            if wake:
                self.db.notify(s, WAKEUP_CHANNEL)
        at = time.time()
        if len(ids) != n:
            raise RuntimeError(f"queue_notices queued {len(ids)} of {n}")
        for nid in ids:
            self.commits[nid] = at
        return ids


def wait_arrivals(fake: FakeProvider, total: int, procs: Processes) -> float:
    """Wait until `total` distinct notifications have reached the fake; answer time.time() then."""
    seen, progress = -1, time.monotonic()
    while True:
        n = fake.distinct()
        if n >= total:
            return time.time()
        if n != seen:
            seen, progress = n, time.monotonic()
        elif time.monotonic() - progress > STALL_S:
            raise RuntimeError(f"stalled: {n} of {total} notifications arrived, none for {STALL_S}s\n{procs.tails()}")
        procs.check_alive()
        time.sleep(0.02)


def wait_recorded(db, count: int, procs: Processes, timeout_s: float = 60) -> dict[str, int]:
    """Wait until the workers recorded an outcome for every notification (none queued/sending)."""
    from sqlalchemy import func, select

    from notifications.models import Notification

    deadline = time.monotonic() + timeout_s
    while True:
        with db.session() as s:
            by_status = dict(s.execute(select(Notification.status, func.count()).group_by(Notification.status)).all())
        if sum(by_status.values()) >= count and not by_status.get("queued") and not by_status.get("sending"):
            return by_status
        if time.monotonic() > deadline:
            return by_status
        procs.check_alive()
        time.sleep(0.1)


# -- RQ's own timestamps, for the breakdown ----------------------------------------------------------

def _ts(d: datetime | None) -> float | None:
    if d is None:
        return None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


def rq_times(redis_conn) -> tuple[dict[str, tuple[float | None, float | None, float | None]], int]:
    """notification id → (enqueued_at, started_at, ended_at) of its finished RQ job; and how many
    finished jobs there were."""
    from rq import Queue
    from rq.job import Job

    q = Queue("notify", connection=redis_conn)
    ids = q.finished_job_registry.get_job_ids()
    out: dict[str, tuple[float | None, float | None, float | None]] = {}
    for i in range(0, len(ids), 500):
        for job in Job.fetch_many(ids[i:i + 500], connection=redis_conn):
            if job is None or len(job.args) < 2:
                continue
            for payload in job.args[1].get("batch") or [job.args[1]]:  # a job carries one notice or a batch
                nid = payload.get("notification_id")
                if nid:
                    out[nid] = (_ts(job.enqueued_at), _ts(job.started_at), _ts(job.ended_at))
    return out, len(ids)


# -- one run ---------------------------------------------------------------------------------------

def run(args: argparse.Namespace, workers: int, mode: str, notify_batch: int, fake: FakeProvider, auth_token: str,
        work_dir: Path, name: str) -> dict[str, Any]:
    import redis
    from rq import Queue
    from sqlalchemy import func, select

    from engine.models import OutboxEntry
    from notifications.models import NotificationEvent

    log.info("-- %d %s worker(s), %d notices a job: re-create %s, flush %s", workers, mode, notify_batch,
             args.database_url, args.redis_url)
    recreate_database(args.database_url, migrate=True)
    rconn = redis.Redis.from_url(args.redis_url)
    rconn.flushdb()
    fake.take()  # forget anything of an earlier run
    log_dir = work_dir / name
    log_dir.mkdir()
    procs = Processes(log_dir, log)
    producer = Producer(args.database_url)
    try:
        env = process_env(args.database_url, args.redis_url, fake.url, auth_token)
        env["GRIDLOOP_WORKER_MODE"] = mode
        env["GRIDLOOP_NOTIFY_BATCH"] = str(notify_batch)
        procs.start("scheduler", gridloop_argv("scheduler"), env)
        for i in range(workers):
            procs.start(f"worker{i}", gridloop_argv("worker", "notify"), env)
        wait_workers(rconn, workers, procs)

        t = time.monotonic()
        producer.batch(WARMUP, wake=True)  # woken: the scheduler may have gone to sleep for 30 s already
        wait_arrivals(fake, WARMUP, procs)
        log.info("warm-up: %d notices in %.2fs", WARMUP, time.monotonic() - t)
        total = WARMUP

        burst: list[str] = []
        while len(burst) < args.notices:
            burst += producer.batch(min(args.batch, args.notices - len(burst)))
        total += len(burst)
        queued_s = time.time() - producer.commits[burst[0]]
        done_at = wait_arrivals(fake, total, procs)
        approx_rate = len(burst) / (done_at - producer.commits[burst[0]])
        log.info("burst: %d notices queued in %.2fs, delivered at ~%.1f/s", len(burst), queued_s, approx_rate)

        rate = max(1.0, approx_rate * args.paced_load)
        paced: dict[str, list[str]] = {}
        for variant, wake in (("as_is", False), ("woken", True)):
            ids: list[str] = []
            start = time.monotonic()
            for i in range(args.paced):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ids += producer.batch(1, wake=wake)
            total += len(ids)
            wait_arrivals(fake, total, procs)
            paced[variant] = ids
            log.info("paced (%s): %d notices at %.1f/s offered, all arrived %.1fs after the last commit", variant,
                     len(ids), rate, time.time() - producer.commits[ids[-1]])

        by_status = wait_recorded(producer.db, total, procs)
        time.sleep(args.grace)  # a duplicate would arrive after the first send
        procs.check_alive()
        taken = fake.take()
        with producer.db.session() as s:
            outbox_open = s.scalar(select(func.count()).select_from(OutboxEntry).where(OutboxEntry.done_at.is_(None)))
            outbox_rows = s.scalar(select(func.count()).select_from(OutboxEntry))
            sends = s.scalar(select(func.count()).select_from(NotificationEvent)
                             .where(NotificationEvent.status == "sending"))
        times, rq_jobs = rq_times(rconn)
        failed_jobs = Queue("notify", connection=rconn).failed_job_registry.count
    finally:
        procs.stop()
        producer.db.dispose()

    arrivals: dict[str, list[float]] = taken["arrivals"]
    commits = producer.commits
    duplicates = sum(len(v) - 1 for v in arrivals.values())
    lost = sum(1 for nid in commits if nid not in arrivals)
    unknown = sum(1 for nid in arrivals if nid not in commits) + taken["other"]

    def lags(ids: list[str]) -> list[float]:
        return [(min(arrivals[n]) - commits[n]) * 1000 for n in ids if n in arrivals]

    burst_arrived = sorted(min(arrivals[n]) for n in burst if n in arrivals)
    drain = burst_arrived[-1] - burst_arrived[0]
    wall = burst_arrived[-1] - commits[burst[0]]

    def d(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else (b - a) * 1000

    def breakdown(ids: list[str]) -> dict[str, float | None]:
        """p50 of each leg: commit → RQ enqueued → RQ started → provider → RQ ended."""
        legs: dict[str, list[float]] = {"relay": [], "queue_wait": [], "send": [], "record": []}
        for n in ids:
            enq, started, ended = times.get(n, (None, None, None))
            arrived = min(arrivals[n]) if n in arrivals else None
            for leg, x in (("relay", d(commits[n], enq)), ("queue_wait", d(enq, started)),
                           ("send", d(started, arrived)), ("record", d(arrived, ended))):
                if x is not None:
                    legs[leg].append(x)
        return {leg: rnd(pct(xs, 0.5), 2) for leg, xs in legs.items()}

    def lag(ids: list[str]) -> dict[str, Any]:
        xs = [(min(arrivals[n]) - commits[n]) * 1000 for n in ids if n in arrivals]
        return {"p50": rnd(pct(xs, 0.5), 1), "p99": rnd(pct(xs, 0.99), 1), "max": rnd(max(xs, default=None), 1),
                "n": len(xs),
                "breakdown_ms_p50": breakdown(ids)}

    lag_as_is, lag_woken, lag_burst = lag(paced["as_is"]), lag(paced["woken"]), lag(burst)
    result = {
        "workers": workers, "worker_mode": mode, "notify_batch": notify_batch,
        "rq_jobs": rq_jobs,
        "notices_per_s": round((len(burst_arrived) - 1) / drain, 2) if drain > 0 else None,
        "notices_per_s_from_first_commit": round(len(burst_arrived) / wall, 2),
        "burst_wall_s": round(wall, 2), "burst_first_arrival_s": round(burst_arrived[0] - commits[burst[0]], 2),
        "burst_queue_s": round(queued_s, 2),
        "lag_ms_p50": lag_as_is["p50"], "lag_ms_p99": lag_as_is["p99"],
        "lag_ms_p50_woken": lag_woken["p50"], "lag_ms_p99_woken": lag_woken["p99"],
        "lag_paced_as_is": lag_as_is, "lag_paced_woken": lag_woken, "lag_burst": lag_burst,
        "paced_offered_per_s": round(rate, 2),
        "notifications": len(commits), "by_status": by_status,
        "not_sent": len(commits) - by_status.get("sent", 0),
        "duplicates": duplicates, "lost": lost, "unknown_requests": unknown,
        "send_attempts": sends, "provider_requests": taken["requests"],
        "outbox_rows": outbox_rows, "outbox_not_done": outbox_open, "rq_failed_jobs": failed_jobs,
    }
    log.info("%d worker(s): %s", workers, json.dumps({k: result[k] for k in (
        "notices_per_s", "lag_ms_p50", "lag_ms_p99", "lag_ms_p50_woken", "lag_ms_p99_woken", "duplicates", "lost",
        "not_sent")}))
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__.split("\n")[0])
    ap.add_argument("--notices", type=int, default=None, help="burst notices per worker count (default 2000; "
                                                              "quick 200)")
    ap.add_argument("--batch", type=int, default=50, help="notices per transaction in the burst (default 50)")
    ap.add_argument("--paced", type=int, default=None, help="paced notices per variant, one per "
                                                            "transaction (default notices/4, at most 100)")
    ap.add_argument("--paced-load", type=float, default=0.5, help="paced rate as a fraction of the burst's")
    ap.add_argument("--workers", default="1,2", help="RQ worker counts to run (default 1,2)")
    ap.add_argument("--worker-modes", default="simple", help="GRIDLOOP_WORKER_MODE of the workers, one run each "
                                                             "(default simple; simple,fork compares them)")
    ap.add_argument("--notify-batch", default="10", help="GRIDLOOP_NOTIFY_BATCH, notices one delivery job carries; "
                                                         "one run each (default 10; 1,10 compares them)")
    ap.add_argument("--grace", type=float, default=1.0, help="seconds to wait for late duplicates (default 1)")
    ap.add_argument("--quick", action="store_true", help="200 notices")
    add_scratch_options(ap, "GRIDLOOP_BENCH_NOTIFY", DEFAULT_URL, DEFAULT_REDIS)
    args = ap.parse_args(argv)
    if args.notices is None:
        args.notices = 200 if args.quick else 2000
    if args.paced is None:
        args.paced = max(20, min(100, args.notices // 4))
    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    modes = [m.strip() for m in args.worker_modes.split(",") if m.strip()]
    if not modes or any(m not in ("simple", "fork") for m in modes):
        ap.error("--worker-modes: a comma-separated list of simple and fork")
    try:
        notify_batches = [int(x) for x in args.notify_batch.split(",") if x.strip()]
    except ValueError:
        ap.error("--notify-batch: a comma-separated list of whole numbers")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    log.setLevel(logging.INFO)
    interrupt_on_sigterm()

    started = time.monotonic()
    load_start = os.getloadavg()
    work_dir = Path(tempfile.mkdtemp(prefix="gridloop-bench-notify-"))
    auth_token = secrets.token_hex(16)
    fake = FakeProvider(ACCOUNT_SID, auth_token)
    runs: dict[str, dict[str, Any]] = {}
    try:
        log.info("fake Twilio on %s; logs in %s", fake.url, work_dir)
        for mode in modes:
            for size in notify_batches:
                for k in worker_counts:
                    name = f"{mode}_{k}w" if len(notify_batches) == 1 else f"{mode}_b{size}_{k}w"
                    runs[name] = run(args, k, mode, size, fake, auth_token, work_dir, name)
    finally:
        fake.close()

    result: dict[str, Any] = {"benchmark": "notify.outbox_rq_twilio"}
    for key, r in runs.items():
        result[f"notices_per_s_{key}"] = r["notices_per_s"]
    for key, r in runs.items():
        result[f"lag_ms_p50_{key}"] = r["lag_ms_p50"]
        result[f"lag_ms_p99_{key}"] = r["lag_ms_p99"]
    for key, r in runs.items():
        result[f"lag_ms_p50_woken_{key}"] = r["lag_ms_p50_woken"]
        result[f"lag_ms_p99_woken_{key}"] = r["lag_ms_p99_woken"]
    result.update({
        "duplicates": sum(r["duplicates"] for r in runs.values()),
        "lost": sum(r["lost"] for r in runs.values()),
        "not_sent": sum(r["not_sent"] for r in runs.values()),
        "notices": args.notices, "batch": args.batch, "notify_batch": notify_batches, "paced": args.paced,
        "warmup": WARMUP,
        "runs": runs,
        "total_s": round(time.monotonic() - started, 1),
        "loadavg_1m": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
        "python": platform.python_version(),
        "rq": importlib_metadata.version("rq"), "twilio": importlib_metadata.version("twilio"),
        "cpu_count": os.cpu_count(),
        "notes": NOTES,
    })
    print(json.dumps(result, ensure_ascii=False), flush=True)
    ok = result["duplicates"] == 0 and result["lost"] == 0 and result["not_sent"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
