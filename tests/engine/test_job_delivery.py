"""Jobs delivered more than once, refused for good, or lost with their workers (review C2, C3)."""

import threading
from datetime import timedelta

from sqlalchemy import func, select, text, update

from engine import definitions, incidents, instances, outbox, tasks
from engine.models import Incident, OutboxEntry
from engine.operations import PermanentFailure
from engine.queues import ManualJobQueue, run_job
from engine.runtime import Runtime
from tests.conftest import reference_operations


def to_push(rt, reference_xml, key="C-1") -> str:
    definitions.deploy(rt, reference_xml, "admin")
    due = (rt.clock.now() + timedelta(hours=4)).isoformat()
    iid = instances.start(rt, actor="u", key="reference_loop", business_key=key,
                          variables={"case_id": key, "value": 1, "grid": "g", "handle_due": due}).instance.id
    for variables in ({"approved": True}, {"violation": True}):
        (task,) = instances.open_tasks(rt, iid)
        tasks.complete(rt, task.id, "u", variables)
    return iid


def runtime_with(db, clock, handler) -> Runtime:
    rt = Runtime(db=db, clock=clock)
    rt.registry.register("ref.classify", lambda p, c: {"level": "low"})
    rt.registry.register("ref.push", handler, is_async=True, max_attempts=3)
    return rt


def count(rt, model, *where) -> int:
    with rt.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_refusal_raises_an_incident_at_once(db, clock, reference_xml):
    def refuse(_p, _c):
        raise PermanentFailure("the other side said no")

    rt = runtime_with(db, clock, refuse)
    to_push(rt, reference_xml)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    jobs.run_all()
    (incident,) = incidents.query(rt)[0]
    assert incident.attempts == 1 and "refused" in incident.message
    assert count(rt, OutboxEntry, OutboxEntry.done_at.is_(None)) == 0


def test_the_same_failing_job_delivered_twice_schedules_one_retry(db, clock, reference_xml):
    def fail(_p, _c):
        raise ConnectionError("down")

    rt = runtime_with(db, clock, fail)
    to_push(rt, reference_xml)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    (_queue, job, payload), = jobs.pending
    run_job(rt, job, payload)
    run_job(rt, job, payload)  # RQ handed the same row out again
    assert count(rt, OutboxEntry) == 2  # the original and exactly one retry


def test_a_job_for_an_ended_instance_is_marked_done_and_never_delivered_again(db, clock, reference_xml):
    rt = Runtime(db=db, clock=clock)
    reference_operations(rt)
    iid = to_push(rt, reference_xml)
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    instances.cancel(rt, iid, "admin")
    jobs.run_all()
    assert count(rt, OutboxEntry, OutboxEntry.done_at.is_(None)) == 0


def test_a_job_that_keeps_killing_its_worker_ends_in_an_incident(db, clock, reference_xml):
    rt = Runtime(db=db, clock=clock)
    reference_operations(rt)
    to_push(rt, reference_xml)
    with rt.db.transaction() as s:  # as if delivered MAX_RELAYS times and never finished
        s.execute(update(OutboxEntry).values(relays=outbox.MAX_RELAYS, relayed_at=clock.now()))
    clock.advance(rt.job_lease + timedelta(seconds=1))
    assert outbox.sweep_expired_leases(rt, rt.job_lease) == 0
    (incident,) = incidents.query(rt)[0]
    assert incident.kind == "job_lost" and count(rt, Incident) == 1


def test_a_lost_job_that_is_not_a_service_call_is_retried_as_the_same_job_on_its_queue(db, clock):
    rt = Runtime(db=db, clock=clock)
    ran = []
    rt.add_job("test.deliver", lambda _rt, payload: ran.append(payload["what"]))
    with rt.db.transaction() as s:
        outbox.add(s, clock.now(), queue="notify", job="test.deliver", payload={"what": "notice-1"})
    with rt.db.transaction() as s:  # handed out MAX_RELAYS times, its worker killed each time
        s.execute(update(OutboxEntry).values(relays=outbox.MAX_RELAYS, relayed_at=clock.now()))
    clock.advance(rt.job_lease + timedelta(seconds=1))
    outbox.sweep_expired_leases(rt, rt.job_lease)
    (incident,) = incidents.query(rt)[0]
    assert (incident.kind, incident.operation) == ("job_lost", "test.deliver")
    incidents.retry(rt, incident.id, "operator")
    jobs = ManualJobQueue(rt)
    outbox.relay(rt, jobs)
    assert [(q, job) for q, job, _payload in jobs.pending] == [("notify", "test.deliver")]
    jobs.run_all()
    assert ran == ["notice-1"]


def test_the_lease_sweeper_skips_a_row_a_job_holds_and_never_waits_for_it(pg, clock):
    """A batch marks many rows done in one transaction; a sweeper that waited on one of them while
    holding others could deadlock with it. It locks in id order and skips what a job holds."""
    rt = Runtime(db=pg, clock=clock)
    rt.add_job("test.deliver", lambda _rt, _payload: None)
    with rt.db.transaction() as s:
        for what in ("a", "b", "c"):
            outbox.add(s, clock.now(), queue="notify", job="test.deliver", payload={"what": what})
    outbox.relay(rt, ManualJobQueue(rt))  # handed out, never reported back
    clock.advance(rt.job_lease + timedelta(seconds=1))
    with pg.engine.connect() as job:  # a job recording its outcome holds the second row
        tx = job.begin()
        job.execute(text("SELECT id FROM outbox WHERE id = (SELECT id FROM outbox ORDER BY id OFFSET 1 LIMIT 1)"
                         " FOR UPDATE"))
        swept: list[int] = []
        sweeper = threading.Thread(target=lambda: swept.append(outbox.sweep_expired_leases(rt, rt.job_lease)))
        sweeper.start()
        sweeper.join(60)
        held = sweeper.is_alive()
        tx.rollback()
        sweeper.join(60)
    assert not held and swept == [2]
    assert count(rt, OutboxEntry, OutboxEntry.relayed_at.is_(None)) == 2
    assert outbox.sweep_expired_leases(rt, rt.job_lease) == 1  # the job never finished it: swept next time
