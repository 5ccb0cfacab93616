"""Notices survive the failures of real processes: an RQ worker (long-lived or forking) killed with
SIGKILL while the provider holds its request, and a Redis server stopped (losing the jobs it held) and restarted."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select

from engine import outbox
from engine import worker as engine_worker
from engine.clock import SystemClock
from engine.queues import RQJobQueue
from engine.rq_worker import LongLivedWorker, Recycle
from engine.runtime import Runtime
from notifications.delivery import DeliveryPolicy
from notifications.install import install
from notifications.models import Notification
from notifications.providers.wechat_work import WeChatWork
from notifications.queueing import NoticeRequest, queue_notices
from notifications.quiet_hours import QuietHours
from tests.conftest import REDIS_URL
from tests.integration.test_rq_and_scheduler import redis_conn, wait_for  # noqa: F401  (fixture)
from tests.notifications.fakes import FakeWeChatWork

GRIDLOOP = Path(sys.executable).with_name("gridloop")
NO_QUIET = QuietHours(None)


def notice(key: str, userid: str = "wx-1") -> NoticeRequest:
    return NoticeRequest(key=key, kind="dispatch", recipient="insp-1", channels=[("wechat_work", userid)],
                         data={"case_no": key, "category": "废气超标", "address": "海州区"}, urgent=True)


def queue(rt: Runtime, *keys: str) -> list[str]:
    with rt.db.transaction() as s:
        return queue_notices(s, rt.clock.now(), [notice(k) for k in keys], NO_QUIET)


def status(rt: Runtime, notification_id: str) -> str:
    with rt.db.session() as s:
        return s.scalar(select(Notification.status).where(Notification.id == notification_id))


def worker_env(pg, lease: timedelta, fake: FakeWeChatWork, **extra: str) -> dict[str, str]:
    """The environment of a `gridloop worker notify` sending WeChat Work messages to `fake`."""
    return {**os.environ, "GRIDLOOP_DATABASE_URL": pg.url, "GRIDLOOP_REDIS_URL": REDIS_URL,
            "GRIDLOOP_SECRET_KEY": "x", "GRIDLOOP_JOB_LEASE": str(int(lease.total_seconds())),
            "GRIDLOOP_NOTIFY_WECOM_CORP_ID": "corp", "GRIDLOOP_NOTIFY_WECOM_SECRET": "secret",
            "GRIDLOOP_NOTIFY_WECOM_AGENT_ID": "1000002", "GRIDLOOP_NOTIFY_WECOM_BASE_URL": fake.url, **extra}


@contextlib.contextmanager
def notify_workers(env: dict[str, str], release: threading.Event) -> Iterator[Callable[[], subprocess.Popen]]:
    """Start notify workers with the function yielded; on the way out the provider's held answer is
    released and every worker started is SIGKILLed."""
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        workers.append(subprocess.Popen([str(GRIDLOOP), "worker", "notify"], env=env, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return workers[-1]

    try:
        yield start
    finally:
        release.set()
        for w in workers:
            kill_tree(w.pid)
            w.wait(10)


@pytest.mark.parametrize("worker_mode", ["simple", "fork"])
def test_a_worker_killed_mid_send_is_replaced_and_the_notice_arrives_once(pg, redis_conn, worker_mode):  # noqa: F811
    lease = timedelta(seconds=3)
    rt = Runtime(db=pg, clock=SystemClock(), job_lease=lease)
    with FakeWeChatWork("corp", "secret", users={"wx-1"}) as fake:
        (nid,) = queue(rt, "kill-1")
        env = worker_env(pg, lease, fake, GRIDLOOP_WORKER_MODE=worker_mode)

        def delivered() -> bool:  # what the scheduler does: re-relay jobs whose lease ran out
            outbox.sweep_expired_leases(rt, lease)
            outbox.relay(rt, RQJobQueue(redis_conn))
            return status(rt, nid) == "sent"

        release = fake.hold_next()
        with notify_workers(env, release) as start_worker:
            first = start_worker()
            assert outbox.relay(rt, RQJobQueue(redis_conn)) == 1
            assert fake.held.wait(60), "the first worker never reached the provider"
            kill_tree(first.pid)  # the worker and its child (simple) or work horse (fork), mid-request
            first.wait(10)
            release.set()
            assert status(rt, nid) == "sending" and len(fake.messages) == 1
            start_worker()
            wait_for(delivered, timeout=60, interval=0.5)
        sends = [r for r in fake.received if r.path == "/cgi-bin/message/send"]
        assert len(sends) == 2 and len(fake.delivered_to("wx-1")) == 1  # sent twice, shown once (duplicate check)


def test_a_worker_killed_mid_batch_leaves_every_notice_of_it_to_the_lease_and_each_arrives_once(
        pg, redis_conn):  # noqa: F811
    lease = timedelta(seconds=3)
    rt = Runtime(db=pg, clock=SystemClock(), job_lease=lease)
    with FakeWeChatWork("corp", "secret", users={"wx-1", "wx-2", "wx-3"}) as fake:
        # the relay gathers batches by the handler it knows, as `gridloop scheduler` does
        install(rt, {"wechat_work": WeChatWork("corp", "secret", 1000002, base_url=fake.url)},
                DeliveryPolicy(quiet=NO_QUIET))
        with rt.db.transaction() as s:
            ids = queue_notices(s, rt.clock.now(), [notice(f"batch-{u}", u) for u in ("wx-1", "wx-2", "wx-3")],
                                NO_QUIET)
        def delivered() -> bool:
            outbox.sweep_expired_leases(rt, lease)
            outbox.relay(rt, RQJobQueue(redis_conn))
            return [status(rt, i) for i in ids] == ["sent"] * 3

        release = fake.hold_next(after=1)  # the first notice goes through; the second's answer waits
        with notify_workers(worker_env(pg, lease, fake), release) as start_worker:
            first = start_worker()
            assert outbox.relay(rt, RQJobQueue(redis_conn)) == 3  # one job carrying the three
            assert fake.held.wait(60), "the first worker never reached the second notice"
            kill_tree(first.pid)  # mid-batch: one notice sent, one at the provider, one not yet sent
            first.wait(10)
            release.set()
            assert [status(rt, i) for i in ids] == ["sending"] * 3  # the batch recorded nothing
            start_worker()
            wait_for(delivered, timeout=60, interval=0.5)
        sends = [r.json["touser"] for r in fake.received if r.path == "/cgi-bin/message/send"]
        # The lease hands the three out again, each a job of its own: the two that reached the provider
        # before the worker died go twice (at least once, as the outbox promises); WeChat Work's
        # duplicate check on the notification id shows each person one message.
        assert sorted(sends) == ["wx-1", "wx-1", "wx-2", "wx-2", "wx-3"]
        assert [len(fake.delivered_to(u)) for u in ("wx-1", "wx-2", "wx-3")] == [1, 1, 1]


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants (no chance to clean up)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for child in children:
        kill_tree(int(child))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    conn = Redis(port=port, socket_connect_timeout=0.5)
    wait_for(lambda: _pings(conn), timeout=10)
    return server


def _pings(conn: Redis) -> bool:
    try:
        return bool(conn.ping())
    except RedisConnectionError:
        return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_redis_stopped_and_restarted_loses_no_notice(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    with FakeWeChatWork("corp", "secret", users={"wx-1"}) as fake:
        install(rt, {"wechat_work": WeChatWork("corp", "secret", 1000002, base_url=fake.url)},
                DeliveryPolicy(quiet=NO_QUIET))
        port = free_port()
        server = start_redis(port)
        conn = Redis(port=port, socket_connect_timeout=0.5)
        try:
            (held,) = queue(rt, "in-redis")
            assert outbox.relay(rt, RQJobQueue(conn)) == 1  # handed to Redis, not yet run
            server.kill()  # no persistence: the job in Redis is gone
            server.wait(10)
            (waiting,) = queue(rt, "while-down")
            with pytest.raises(RedisConnectionError):
                outbox.relay(rt, RQJobQueue(conn))
            server = start_redis(port)
            clock.advance(rt.job_lease + timedelta(seconds=1))
            assert outbox.sweep_expired_leases(rt, rt.job_lease) == 1  # the one Redis lost, handed out again
            assert outbox.relay(rt, RQJobQueue(conn)) == 2  # with the one made while Redis was down
            engine_worker.bind(rt)
            LongLivedWorker(["notify"], connection=conn, recycle=Recycle()).work(burst=True)  # as `gridloop worker`
        finally:
            server.kill()
            server.wait(10)
        assert (status(rt, held), status(rt, waiting)) == ("sent", "sent")
        assert len(fake.delivered_to("wx-1")) == 2
