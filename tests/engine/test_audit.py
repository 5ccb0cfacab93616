"""The audit trail is hash-chained (one chain per instance, one for the system): a full loop
verifies; editing, deleting or cutting off rows is detected at exactly that place."""

from __future__ import annotations

from itertools import pairwise

from sqlalchemy import delete, select, update

from engine import audit, messages, tasks
from engine.models import AuditEvent
from engine.runtime import Runtime
from tests.conftest import reference_operations
from tests.engine.support import complete, open_task, run_together, start_reference, to_feedback


def _full_loop(rt) -> str:
    iid = start_reference(rt)
    tasks.claim(rt, open_task(rt, iid, "review").id, "sup")
    to_feedback(rt, iid)
    messages.correlate(rt, name="feedback", message_id="m1", actor="enf", correlation_value="C-1",
                       payload={"result": "ok", "note": "现场已整改"})
    complete(rt, iid, "verify", "sup", {"passed": True})
    return iid


def _ids(rt) -> list[int]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent.id).order_by(AuditEvent.id)))


def _verify(rt) -> audit.ChainReport:
    with rt.db.session() as s:
        return audit.verify(s, rt.audit_keys)


def test_chain_of_a_full_loop_verifies(rt):
    iid = _full_loop(rt)
    ids = _ids(rt)
    report = _verify(rt)
    assert report.ok and report.checked == len(ids) and report.first_broken_id is None
    with rt.db.session() as s:
        events = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    by_chain: dict[str, list[AuditEvent]] = {}
    for e in events:
        by_chain.setdefault(e.chain, []).append(e)
    assert set(by_chain) == {"system", "anchor", iid}
    for chain in by_chain.values():
        assert chain[0].prev_hash == audit.GENESIS
        assert all(later.prev_hash == earlier.hash for earlier, later in pairwise(chain))
    assert {"definition.deployed", "instance.anchored", "instance.started", "task.claimed", "task.completed",
            "service.completed", "message.correlated", "instance.completed"} <= {e.action for e in events}


def test_small_batches_verify_the_same_chain(rt):
    _full_loop(rt)
    ids = _ids(rt)
    with rt.db.session() as s:
        assert audit.verify(s, rt.audit_keys, batch=2).checked == len(ids)


def test_editing_one_rows_details_is_reported_at_that_row(rt):
    _full_loop(rt)
    ids = _ids(rt)
    target = ids[len(ids) // 2]
    with rt.db.transaction() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == target).values(details={"forged": True}))
    report = _verify(rt)
    assert (report.ok, report.first_broken_id) == (False, target)
    assert report.checked == ids.index(target) and "edited" in report.reason


def test_editing_the_actor_is_reported_at_that_row(rt):
    _full_loop(rt)
    target = _ids(rt)[3]
    with rt.db.transaction() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == target).values(actor="someone-else"))
    assert _verify(rt).first_broken_id == target


def _instance_ids(rt, iid) -> list[int]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent.id).where(AuditEvent.chain == iid).order_by(AuditEvent.id)))


def test_deleting_a_middle_row_is_reported_at_the_next_row_of_its_chain(rt):
    iid = _full_loop(rt)
    ids = _instance_ids(rt, iid)
    gone, following = ids[3], ids[4]
    with rt.db.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id == gone))
    report = _verify(rt)
    assert (report.ok, report.first_broken_id) == (False, following)
    assert "removed" in report.reason


def test_cutting_off_the_last_events_of_an_instance_is_detected(rt):
    iid = _full_loop(rt)
    ids = _instance_ids(rt, iid)
    with rt.db.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids[-2:])))
    report = _verify(rt)
    assert report.ok is False and iid in report.reason and "end" in report.reason


def test_chain_stays_whole_under_concurrent_changes(pg, clock):
    rt = Runtime(db=pg, clock=clock)
    reference_operations(rt)
    ids = [start_reference(rt, f"C-{n}") for n in range(6)]
    reviews = [open_task(rt, iid, "review").id for iid in ids]
    results = run_together([(lambda t=t: tasks.complete(rt, t, "sup", {"approved": True})) for t in reviews]
                           + [(lambda t=t: tasks.claim(rt, t, "x")) for t in reviews[:2]], timeout=60)
    assert sum(kind == "ok" for kind, _ in results) >= 6
    report = _verify(rt)
    assert report.ok and report.checked == len(_ids(rt))
