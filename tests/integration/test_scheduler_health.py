"""/health and /metrics tell whether any scheduler works, from the database alone: how late the
oldest due timer and the oldest unrelayed outbox row are. A dead scheduler cannot report its own
death; a timer nobody fires can."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api import create_app
from api.settings import Settings
from engine import definitions, instances, outbox
from engine.queues import ManualJobQueue
from engine.scheduler import HEARTBEAT_KEY, STANDBY_FIRED_KEY, Scheduler
from tests.conftest import REDIS_URL, redis_or_skip
from tests.engine.test_scheduler_loop import TIMER_XML, wait_for, waiting


def client_for(rt):
    app = create_app(Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False), runtime=rt)
    return app.test_client()


def metric(client, name: str) -> float:
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_timer_nobody_fires_makes_health_degraded_until_a_tick_fires_it(rt, clock):
    definitions.deploy(rt, TIMER_XML, "admin")
    client = client_for(rt)
    iid = waiting(rt)
    assert client.get("/health").get_json()["status"] == "ok"
    clock.advance(timedelta(minutes=1, seconds=90))  # 90 s overdue: late, not yet alarming
    assert metric(client, "gridloop_scheduler_oldest_due_timer_seconds") == 90
    assert client.get("/health").get_json()["status"] == "ok"
    clock.advance(timedelta(seconds=60))
    r = client.get("/health")
    body = r.get_json()
    assert r.status_code == 200 and body["status"] == "degraded"  # still served: only dead dependencies are 503
    assert body["checks"]["scheduler"] == "late" and body["checks"]["overdue_timers"] is True
    assert body["scheduler"] == {"oldest_due_timer_s": 150, "outbox_oldest_pending_s": 0, "last_tick_age_s": None}
    assert body["reasons"] == ["a timer is 150 s overdue (over 120 s): no scheduler is firing timers; "
                               "is `gridloop scheduler` running?"]
    Scheduler(rt, ManualJobQueue(rt)).tick()
    assert instances.get(rt, iid).status == "completed"
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["checks"]["scheduler"] == "ok" and "reasons" not in body
    assert body["scheduler"]["oldest_due_timer_s"] == 0
    assert metric(client, "gridloop_scheduler_oldest_due_timer_seconds") == 0


def test_an_outbox_row_nobody_relays_makes_health_degraded_until_relayed(rt, clock):
    client = client_for(rt)
    with rt.db.transaction() as s:
        outbox.add(s, clock.now(), queue="notify", job="notify.deliver", payload={"notification_id": "n"})
        outbox.add(s, clock.now() + timedelta(hours=1), queue="notify", job="notify.deliver",
                   payload={"notification_id": "later"})  # a retry planned for later is not late
    assert metric(client, "gridloop_outbox_oldest_pending_seconds") == 0
    clock.advance(timedelta(minutes=5))
    assert metric(client, "gridloop_outbox_oldest_pending_seconds") == 300
    body = client.get("/health").get_json()
    assert body["status"] == "degraded" and body["checks"]["scheduler"] == "late"
    assert "a job has waited 300 s to be relayed" in body["reasons"][0]
    queue = ManualJobQueue(rt)
    Scheduler(rt, queue).tick()
    assert len(queue.pending) == 1
    assert metric(client, "gridloop_outbox_oldest_pending_seconds") == 0
    assert client.get("/health").get_json()["status"] == "ok"



@pytest.fixture
def redis_conn():
    yield from redis_or_skip(REDIS_URL)


def test_the_active_schedulers_heartbeat_shows_how_long_ago_it_last_ticked(rt, clock, redis_conn):
    client = create_app(Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False), runtime=rt,
                        redis=redis_conn).test_client()
    assert "gridloop_scheduler_last_tick_age_seconds" not in client.get("/metrics").get_data(as_text=True)

    def run_one_scheduler() -> None:
        sched = Scheduler(rt, ManualJobQueue(rt), max_sleep=timedelta(minutes=10),
                          heartbeat=lambda at: redis_conn.set(HEARTBEAT_KEY, at.timestamp()))
        sched.start()
        wait_for(lambda: sched.ticks >= 1)
        sched.stop()

    run_one_scheduler()
    assert metric(client, "gridloop_scheduler_last_tick_age_seconds") == 0
    clock.advance(timedelta(minutes=5))  # and no scheduler ticks meanwhile, though nothing is due
    body = client.get("/health").get_json()
    assert body["status"] == "degraded" and body["reasons"] == [
        "the active scheduler last completed a tick 300 s ago (over 120 s): it is stalled or gone"]
    assert body["scheduler"]["last_tick_age_s"] == 300
    run_one_scheduler()
    assert client.get("/health").get_json()["status"] == "ok"


def test_metrics_count_the_timers_standby_schedulers_fired(rt, redis_conn):
    """Each `gridloop scheduler` standing by adds what it fired to one Redis counter (the scheduler's
    side is tested in tests/engine/test_scheduler_loop.py); without Redis there is no count to show."""
    settings = Settings(database_url=rt.db.url, secret_key="s", deploy_bundled=False)
    client = create_app(settings, runtime=rt, redis=redis_conn).test_client()
    assert metric(client, "gridloop_scheduler_standby_fired_total") == 0
    redis_conn.incrby(STANDBY_FIRED_KEY, 2)
    redis_conn.incrby(STANDBY_FIRED_KEY, 5)
    assert metric(client, "gridloop_scheduler_standby_fired_total") == 7
    assert "standby_fired" not in client_for(rt).get("/metrics").get_data(as_text=True)
