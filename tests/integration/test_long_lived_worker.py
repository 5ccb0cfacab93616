"""`gridloop worker` in simple mode (jobs in a long-lived process, no fork per job) keeps what the fork
gave: a hanging job is stopped and the next one runs, a failing job leaves the worker working, and
the process makes way for a fresh one after N jobs or past its memory limit without losing or
repeating a job. Real `gridloop worker` processes on the test Redis; jobs from tests/integration/worker_jobs.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from engine.rq_worker import LongLivedWorker, Recycle, Watchdog, hard_deadline_s
from tests.conftest import REDIS_URL
from tests.integration.test_notice_delivery_faults import GRIDLOOP, free_port, kill_tree, start_redis
from tests.integration.test_rq_and_scheduler import redis_conn, wait_for  # noqa: F401  (fixture)

QUEUE = "worker-test"
ROOT = Path(__file__).resolve().parents[2]  # so that the worker can import the test jobs
JOBS = "tests.integration.worker_jobs."


@pytest.fixture
def start_worker(pg, redis_conn, tmp_path):  # noqa: F811
    """Start `gridloop worker worker-test` (simple mode) with extra GRIDLOOP_* settings; every one
    started is killed with its children afterwards."""
    started: list[subprocess.Popen] = []

    def start(**settings: str) -> subprocess.Popen:
        env = {**os.environ, "GRIDLOOP_DATABASE_URL": pg.url, "GRIDLOOP_REDIS_URL": REDIS_URL,
               "GRIDLOOP_SECRET_KEY": "x", "GRIDLOOP_WORKER_MODE": "simple", "PYTHONPATH": str(ROOT),
               **{f"GRIDLOOP_{k.upper()}": v for k, v in settings.items()}}
        log = (tmp_path / f"worker{len(started)}.log").open("w")
        started.append(subprocess.Popen([str(GRIDLOOP), "worker", QUEUE], env=env, start_new_session=True,
                                        stdout=log, stderr=subprocess.STDOUT))
        return started[-1]

    yield start
    for p in started:
        kill_tree(p.pid)
        p.wait(10)


@pytest.fixture
def out(tmp_path) -> str:
    return str(tmp_path / "ran.txt")


def lines(out: str) -> list[tuple[str, str, int]]:
    """(tag, event, pid) of every line the jobs wrote."""
    try:
        text = Path(out).read_text()
    except FileNotFoundError:
        return []
    return [(tag, event, int(pid)) for tag, event, pid in (line.split() for line in text.splitlines())]


def pid_of(out: str, tag: str, event: str = "ran") -> int:
    (pid,) = [p for t, e, p in lines(out) if (t, e) == (tag, event)]
    return pid


def ran(out: str, *tags: str) -> bool:
    done = {t for t, e, _ in lines(out) if e == "ran"}
    return all(t in done for t in tags)


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


def test_a_hanging_job_is_stopped_by_its_timeout_and_the_next_job_runs(start_worker, redis_conn, out):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    hung = q.enqueue(JOBS + "hang", out, "hung", job_timeout=1)
    q.enqueue(JOBS + "record", out, "next")
    worker = start_worker()
    wait_for(lambda: ran(out, "next"), timeout=60)
    assert hung.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in hung.latest_result().exc_string
    assert pid_of(out, "next") != pid_of(out, "hung", "started")  # the interrupted process made way
    assert gone(pid_of(out, "hung", "started"))
    assert worker.poll() is None


def test_a_job_that_catches_its_timeout_and_returns_still_gets_a_fresh_process(
        start_worker, redis_conn, out):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    catching = q.enqueue(JOBS + "catch_the_timeout", out, "catching", job_timeout=1)
    q.enqueue(JOBS + "record", out, "next")
    worker = start_worker()
    wait_for(lambda: ran(out, "next"), timeout=60)
    assert catching.get_status(refresh=True) == JobStatus.FINISHED  # as far as RQ knows, it went well
    assert pid_of(out, "catching", "caught") == pid_of(out, "catching", "started") != pid_of(out, "next")
    assert worker.poll() is None


def test_a_job_that_swallows_the_timeout_is_ended_by_the_watchdog(start_worker, redis_conn, out):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    stubborn = q.enqueue(JOBS + "hang_and_swallow_the_timeout", out, "stubborn", job_timeout=1)
    q.enqueue(JOBS + "record", out, "next")
    worker = start_worker()
    wait_for(lambda: ran(out, "next"), timeout=60)
    hung_pid = pid_of(out, "stubborn", "started")
    assert gone(hung_pid) and pid_of(out, "next") != hung_pid
    assert [t for t, e, _ in lines(out) if e == "started"] == ["stubborn"]  # not re-run by RQ: the lease does that
    assert stubborn.get_status(refresh=True) != JobStatus.FINISHED
    assert worker.poll() is None


def test_a_failing_job_leaves_the_worker_process_working(start_worker, redis_conn, out):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    failing = q.enqueue(JOBS + "fail", out, "failing")
    q.enqueue(JOBS + "record", out, "next")
    worker = start_worker()
    wait_for(lambda: ran(out, "next"), timeout=60)
    assert failing.get_status(refresh=True) == JobStatus.FAILED
    assert "this job fails" in failing.latest_result().exc_string
    assert pid_of(out, "next") == pid_of(out, "failing", "started")  # the same process went on
    assert worker.poll() is None


def test_the_process_is_replaced_after_max_jobs_and_no_job_is_lost_or_run_twice(start_worker, redis_conn,  # noqa: F811
                                                                                 out):
    q = Queue(QUEUE, connection=redis_conn)
    tags = [f"job{i}" for i in range(10)]
    jobs = [q.enqueue(JOBS + "record", out, tag) for tag in tags]
    worker = start_worker(worker_max_jobs="3")
    wait_for(lambda: ran(out, *tags), timeout=90)
    wait_for(lambda: q.count == 0 and StartedJobRegistry(QUEUE, connection=redis_conn).count == 0)
    assert [t for t, _, _ in lines(out)] == tags  # each once, in order
    assert sorted(Counter(p for _, _, p in lines(out)).values()) == [1, 3, 3, 3]
    assert all(j.get_status(refresh=True) == JobStatus.FINISHED for j in jobs)
    assert worker.poll() is None


def test_the_process_is_replaced_past_its_memory_limit(start_worker, redis_conn, out):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    for tag in ("a", "b", "c"):
        q.enqueue(JOBS + "record", out, tag)
    worker = start_worker(worker_max_rss_mb="1")  # every process is past 1 MB after its first job
    wait_for(lambda: ran(out, "a", "b", "c"), timeout=90)
    assert len({p for _, _, p in lines(out)}) == 3
    assert worker.poll() is None


@pytest.mark.parametrize("mode", ["simple", "fork"])
def test_sigterm_lets_the_job_in_hand_finish_and_stops_the_worker(start_worker, redis_conn, out, mode):  # noqa: F811
    q = Queue(QUEUE, connection=redis_conn)
    q.enqueue(JOBS + "slow", out, "slow", 2)
    q.enqueue(JOBS + "record", out, "later")
    worker = start_worker(worker_mode=mode)
    wait_for(lambda: lines(out), timeout=60)  # the slow job has started
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert ran(out, "slow") and not ran(out, "later")
    assert gone(pid_of(out, "slow")) and q.count == 1  # the later job waits for the next worker


def test_recycle_reasons():
    limits = Recycle(max_jobs=3, max_rss_mb=100)
    assert limits.reason(2, 99 * 1024 * 1024) is None
    assert "3 jobs" in limits.reason(3, None)
    assert "101 MB" in limits.reason(1, 101 * 1024 * 1024)
    assert Recycle(max_jobs=3, max_rss_mb=0).reason(1, 10**12) is None
    assert hard_deadline_s(1) == 2 and hard_deadline_s(300) == 450  # inside a lease of twice the timeout


def test_the_watchdog_calls_out_an_overrun_and_not_a_disarmed_job():
    overran: list[str] = []
    called = threading.Event()
    dog = Watchdog(on_overrun=lambda job_id: (overran.append(job_id), called.set()))
    dog.start()
    try:
        dog.arm("done-in-time", 60)
        dog.disarm()
        dog.arm("late", 0.05)
        assert called.wait(10)
        assert overran == ["late"]
    finally:
        dog.stop()


@pytest.mark.parametrize("spiff_level", [None, "info"])
def test_the_worker_process_keeps_spiffworkflow_task_records_out_of_its_log_by_default(
        start_worker, redis_conn, out, tmp_path, spiff_level):  # noqa: F811
    """Each task state change calls SpiffWorkflow's loggers at INFO with the task's data (here a
    phone number); `gridloop worker` configures them like every entry point, so at the defaults
    none is written — GRIDLOOP_LOG_LEVEL_SPIFF=info turns them back on, phone and all. RQ names the
    job by id only: its arguments (here the phone) are not logged either."""
    phone = "13800138000"
    Queue(QUEUE, connection=redis_conn).enqueue(JOBS + "run_a_workflow", out, "spiff", phone)
    worker = start_worker(**({"log_level_spiff": spiff_level} if spiff_level else {}))
    wait_for(lambda: ran(out, "spiff"), timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    log = (tmp_path / "worker0.log").read_text()
    spiff_lines = [line for line in log.splitlines() if '"logger": "spiff.' in line]
    if spiff_level is None:
        assert spiff_lines == [] and phone not in log
    else:
        assert any("State changed" in line for line in spiff_lines) and phone in log


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_the_worker_outlives_a_redis_restart(start_worker, out, tmp_path):
    """Redis killed under an idle worker: RQ's loop retries its connection; jobs run again once Redis
    is back."""
    port = free_port()
    server = start_redis(port)
    try:
        conn = Redis(port=port)
        worker = start_worker(redis_url=f"redis://127.0.0.1:{port}/0")
        Queue(QUEUE, connection=conn).enqueue(JOBS + "record", out, "before")
        wait_for(lambda: ran(out, "before"), timeout=60)
        server.kill()
        server.wait(10)
        log = tmp_path / "worker0.log"
        wait_for(lambda: "could not connect to Redis" in log.read_text(), timeout=60)
        server = start_redis(port)
        Queue(QUEUE, connection=conn).enqueue(JOBS + "record", out, "after")
        wait_for(lambda: ran(out, "after"), timeout=90)
        assert worker.poll() is None
    finally:
        server.kill()
        server.wait(10)


def test_the_exit_code_tells_the_supervisor_whether_to_back_off(redis_conn):  # noqa: F811
    worker = LongLivedWorker([QUEUE], connection=redis_conn, recycle=Recycle())
    assert worker.exit_code == 1  # RQ's loop ended on its own (Redis lost, an error of its own)
    worker.recycle_reason = "3 jobs done"
    assert worker.exit_code == 0
    worker = LongLivedWorker([QUEUE], connection=redis_conn, recycle=Recycle())
    worker.handle_warm_shutdown_request()  # what RQ calls on SIGTERM/SIGINT
    assert worker.exit_code == 0


def test_a_plain_heartbeat_right_after_another_is_left_out_but_never_one_with_a_job_ttl(redis_conn):  # noqa: F811
    worker = LongLivedWorker([QUEUE], connection=redis_conn, recycle=Recycle())
    worker.heartbeat()
    assert redis_conn.ttl(worker.key) > 400  # worker_ttl + 60
    redis_conn.hset(worker.key, "last_heartbeat", "marker")
    worker.heartbeat()  # within a second of the last plain one: left out
    assert redis_conn.hget(worker.key, "last_heartbeat") == b"marker"
    with redis_conn.pipeline() as pipeline:  # what RQ does as a job starts: the job's TTL
        worker.heartbeat(70, pipeline=pipeline)
        pipeline.execute()
    assert redis_conn.ttl(worker.key) <= 70
    worker.heartbeat()  # after a job's TTL a plain one is sent again, however soon
    assert redis_conn.ttl(worker.key) > 400


def test_the_same_state_is_not_written_twice_in_a_row(redis_conn):  # noqa: F811
    worker = LongLivedWorker([QUEUE], connection=redis_conn, recycle=Recycle())
    worker.set_state("idle")
    redis_conn.hset(worker.key, "state", "marker")
    worker.set_state("idle")
    assert redis_conn.hget(worker.key, "state") == b"marker"
    with redis_conn.pipeline() as pipeline:
        worker.set_state("busy", pipeline=pipeline)
        pipeline.execute()
    worker.set_state("idle")
    assert redis_conn.hget(worker.key, "state") == b"idle"
