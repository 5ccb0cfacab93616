"""The attacks on the audit trail that someone who can write to the database and read the source can
make, each detected by name: cutting the system chain's tail; cutting an instance chain's tail and
moving its recorded head back; editing a row and recomputing every later hash; deleting an instance
together with its whole chain. Plus the checkpoints themselves, key rotation and legacy rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update

from api.schema_registry import metadata
from engine import audit
from engine.audit.keys import event_hash
from engine.models import AuditChainHead, AuditCheckpoint, AuditEvent, ProcessInstance
from tests.engine.support import start_reference
from tests.engine.test_audit import _full_loop


def _verify(rt, keys: audit.AuditKeys | None = None) -> audit.ChainReport:
    with rt.db.session() as s:
        return audit.verify(s, keys or rt.audit_keys)


def _kinds(report: audit.ChainReport) -> set[str]:
    return {f.kind for f in report.findings}


def _checkpoint(rt) -> AuditCheckpoint:
    taken = audit.take_checkpoint(rt.db, rt.audit_keys, "auditor", rt.clock.now())
    assert taken is not None
    return taken


def _chain(rt, chain: str) -> list[int]:
    with rt.db.session() as s:
        return list(s.scalars(select(AuditEvent.id).where(AuditEvent.chain == chain).order_by(AuditEvent.id)))


def _system_events(rt, n: int) -> None:
    with rt.db.transaction() as s:
        audit.append_system(rt, s, [audit.AuditDraft(action=f"user.changed.{i}", actor="admin", at=rt.clock.now(),
                                                     details={"n": i}) for i in range(n)])


def _rehash(rt, chain: str, *, key: bytes | None = None, legacy: bool = False,
            edit: dict[int, dict[str, Any]] | None = None) -> str:
    """What an attacker without the key does: edit rows, then recompute every hash of the chain from the
    first edited one on (with `key`, plain SHA-256 when None; all of them when nothing is edited), so
    that each link matches again; answers the new head."""
    edit = edit or {}
    since = min(edit, default=0)
    with rt.db.transaction() as s:
        prev = audit.GENESIS
        for e in s.scalars(select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.id)):
            if e.id < since:
                prev = e.hash
                continue
            for name, value in edit.get(e.id, {}).items():
                setattr(e, name, value)
            e.prev_hash = prev
            e.hash = prev = event_hash(key, prev, e.chain, e.at, e.actor, e.action, e.instance_id, e.task_id,
                                       e.element_id, e.details)
            if legacy:
                e.key_id = None
        if chain in ("system", "anchor"):
            s.execute(update(AuditChainHead).where(AuditChainHead.chain == chain).values(hash=prev))
        else:
            s.execute(update(ProcessInstance).where(ProcessInstance.id == chain).values(audit_head=prev))
    return prev


# -- checkpoints --------------------------------------------------------------------------------

def test_a_checkpoint_signs_the_heads_that_moved_since_the_last_one(rt):
    iid = _full_loop(rt)
    first = _checkpoint(rt)
    assert first.seq == 1 and set(first.heads) == {"system", "anchor", iid}
    assert first.heads[iid] == [_chain(rt, iid)[-1], _head(rt, iid)]
    assert audit.take_checkpoint(rt.db, rt.audit_keys, "auditor", rt.clock.now()) is None  # nothing moved
    _system_events(rt, 1)
    second = _checkpoint(rt)
    assert (second.seq, set(second.heads), second.prev_signature) == (2, {"system"}, first.signature)
    report = _verify(rt)
    assert report.ok and report.checkpoints == 2 and report.last_checkpoint["seq"] == 2, report.findings


def _head(rt, iid: str) -> str:
    with rt.db.session() as s:
        return s.get(ProcessInstance, iid).audit_head


def test_removing_or_editing_a_checkpoint_is_detected(rt):
    _full_loop(rt)
    _checkpoint(rt)
    _system_events(rt, 1)
    _checkpoint(rt)
    _system_events(rt, 1)
    _checkpoint(rt)
    with rt.db.transaction() as s:
        s.execute(update(AuditCheckpoint).where(AuditCheckpoint.seq == 3).values(heads={}))
    assert _kinds(_verify(rt)) == {"checkpoint_forged"}
    with rt.db.transaction() as s:
        s.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq.in_([2, 3])))
    assert _verify(rt).ok  # the newest checkpoints cut off: seen only against a copy kept elsewhere (the log)
    _system_events(rt, 1)
    _checkpoint(rt)  # seq 2 again, chained to seq 1
    _system_events(rt, 1)
    _checkpoint(rt)
    with rt.db.transaction() as s:
        s.execute(delete(AuditCheckpoint).where(AuditCheckpoint.seq == 2))
    assert "checkpoint_removed" in _kinds(_verify(rt))


# -- (a) the system chain's tail ----------------------------------------------------------------

def test_a_cutting_the_tail_of_the_system_chain_is_detected(rt):
    _full_loop(rt)
    _system_events(rt, 3)
    ids = _chain(rt, "system")
    with rt.db.transaction() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids[-2:])))
    report = _verify(rt)
    assert report.ok is False and _kinds(report) == {"tail_cut"}
    assert report.findings[0].chain == "system" and "end" in report.reason


def test_a_cutting_the_system_chain_and_moving_its_head_back_is_detected_after_a_checkpoint(rt):
    _full_loop(rt)
    _system_events(rt, 3)
    _checkpoint(rt)
    ids = _chain(rt, "system")
    with rt.db.transaction() as s:
        kept = s.get(AuditEvent, ids[-3])
        s.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids[-2:])))
        s.execute(update(AuditChainHead).where(AuditChainHead.chain == "system").values(hash=kept.hash))
    report = _verify(rt)
    assert _kinds(report) == {"truncated_after_checkpoint"}
    assert (report.findings[0].chain, report.findings[0].event_id) == ("system", ids[-1])


# -- (b) an instance chain's tail and its recorded head -------------------------------------------

def test_b_cutting_an_instance_chain_and_moving_its_head_back_is_detected_after_a_checkpoint(rt):
    iid = _full_loop(rt)
    _checkpoint(rt)
    ids = _chain(rt, iid)
    with rt.db.transaction() as s:
        kept = s.get(AuditEvent, ids[-3])
        s.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids[-2:])))
        s.execute(update(ProcessInstance).where(ProcessInstance.id == iid).values(audit_head=kept.hash))
    report = _verify(rt)
    assert report.ok is False and _kinds(report) == {"truncated_after_checkpoint"}
    assert (report.findings[0].chain, report.findings[0].event_id) == (iid, ids[-1])
    assert iid in report.reason


# -- (c) an edited row with every later hash recomputed --------------------------------------------

def test_c_editing_a_row_and_recomputing_every_later_hash_is_detected(rt):
    iid = _full_loop(rt)
    ids = _chain(rt, iid)
    target = ids[2]
    _rehash(rt, iid, edit={target: {"actor": "someone-else"}})  # links and recorded head all match again
    report = _verify(rt)
    assert report.ok is False and report.first_broken_id == target
    assert {(f.kind, f.chain) for f in report.findings} == {("edited", iid)}
    assert [f.event_id for f in report.findings] == ids[2:]  # every recomputed row, none of the others


def test_c_a_guessed_key_does_not_help(rt):
    iid = _full_loop(rt)
    _rehash(rt, iid, key=b"g" * 64, edit={_chain(rt, iid)[1]: {"details": {"forged": True}}})
    assert _kinds(_verify(rt)) == {"edited"}


def test_c_an_edited_row_passed_off_as_legacy_is_detected(rt):
    iid = _full_loop(rt)
    _checkpoint(rt)  # seals the legacy rows there were (none)
    target = _chain(rt, iid)[2]
    _rehash(rt, iid, legacy=True, edit={target: {"actor": "someone-else"}})
    report = _verify(rt)
    assert _kinds(report) == {"unkeyed_after_seal"} and report.first_broken_id == target


def test_c_the_whole_trail_passed_off_as_legacy_without_checkpoints_is_detected(rt):
    iid = _full_loop(rt)
    for chain in ("system", "anchor", iid):
        _rehash(rt, chain, legacy=True)
    assert _kinds(_verify(rt)) == {"legacy_unsealed"}


# -- (d) an instance deleted together with its whole chain ------------------------------------------

def _delete_instance(rt, iid: str) -> None:
    with rt.db.transaction() as s:
        for table in reversed(metadata.sorted_tables):
            if "instance_id" in table.c and table.name != "audit_event":
                s.execute(delete(table).where(table.c.instance_id == iid))
        s.execute(delete(AuditEvent).where(AuditEvent.chain == iid))
        s.execute(delete(ProcessInstance).where(ProcessInstance.id == iid))


def test_d_deleting_an_instance_with_its_whole_chain_is_detected(rt):
    iid = _full_loop(rt)
    other = start_reference(rt, "C-2")
    _delete_instance(rt, iid)
    report = _verify(rt)
    assert report.ok is False and _kinds(report) == {"instance_deleted"}
    assert report.findings[0].chain == iid and other not in report.reason


def test_d_deleting_its_anchor_too_is_detected_after_a_checkpoint(rt):
    _full_loop(rt)
    last = start_reference(rt, "C-2")  # its anchor event is the anchor chain's last
    _checkpoint(rt)
    _delete_instance(rt, last)
    anchors = _chain(rt, "anchor")
    with rt.db.transaction() as s:
        kept = s.get(AuditEvent, anchors[-2])
        s.execute(delete(AuditEvent).where(AuditEvent.id == anchors[-1]))
        s.execute(update(AuditChainHead).where(AuditChainHead.chain == "anchor").values(hash=kept.hash))
    report = _verify(rt)
    assert _kinds(report) == {"truncated_after_checkpoint"}
    assert {f.chain for f in report.findings} == {"anchor", last}


# -- keys and legacy rows --------------------------------------------------------------------------

def test_after_a_rotation_old_and_new_events_verify_with_the_retired_key_listed(rt):
    old = rt.audit_keys
    iid = start_reference(rt, "C-0")
    _checkpoint(rt)
    rt.audit_keys = audit.AuditKeys(b"n" * 64, retired=(old.current,))
    _full_loop_rest = _full_loop(rt)  # a second instance, and more system events, with the new key
    _checkpoint(rt)
    report = _verify(rt)
    assert report.ok, report.findings
    assert set(report.key_ids) == {old.current_id, rt.audit_keys.current_id} and _full_loop_rest != iid
    without_old = _verify(rt, audit.AuditKeys(b"n" * 64))
    assert _kinds(without_old) == {"unknown_key"}
    assert {f.event_id for f in without_old.findings if f.event_id} <= set(_chain(rt, iid)) | set(
        _chain(rt, "system")) | set(_chain(rt, "anchor"))


def test_legacy_rows_verify_once_sealed_and_chains_continue_keyed(rt):
    iid = _full_loop(rt)
    with rt.db.transaction() as s:  # the trail as an older GridLoop left it: plain SHA-256, no anchor
        s.execute(delete(AuditEvent).where(AuditEvent.chain == "anchor"))
        s.execute(delete(AuditChainHead))
    for chain in ("system", iid):
        _rehash(rt, chain, legacy=True)
    report = _verify(rt)
    assert _kinds(report) == {"legacy_unsealed"} and report.legacy_events == report.events
    _checkpoint(rt)  # what the first start of this version does
    assert _verify(rt).ok
    _system_events(rt, 2)
    start_reference(rt, "C-2")
    report = _verify(rt)
    assert report.ok and 0 < report.legacy_events < report.events, report.findings
