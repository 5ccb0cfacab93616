from datetime import timedelta

from engine import definitions, instances, outbox, tasks
from engine.queues import ManualJobQueue


def test_reference_loop_runs_to_the_end(rt, clock, reference_xml):
    definitions.deploy(rt, reference_xml, "admin")
    due = (clock.now() + timedelta(hours=4)).isoformat()
    started = instances.start(rt, actor="u", key="reference_loop", business_key="C-1",
                              variables={"case_id": "C-1", "value": 150, "grid": "g1", "handle_due": due})
    iid = started.instance.id
    (review,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, review.id, "sup", {"approved": True})
    (handle,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, handle.id, "insp", {"violation": True})
    jobs = ManualJobQueue(rt)
    assert outbox.relay(rt, jobs) == 1
    assert jobs.run_all() == 1
    from engine import messages
    assert messages.correlate(rt, name="feedback", message_id="m1", actor="enf", correlation_value="C-1",
                              payload={"result": "ok"}).status == "delivered"
    (verify,) = instances.open_tasks(rt, iid)
    tasks.complete(rt, verify.id, "sup", {"passed": True})
    assert instances.get(rt, iid).status == "completed"
