"""An export of the trail with its checkpoints verifies offline (no database) with the key file, and
an edited, cut or re-ordered export is detected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import audit
from engine.audit.export import ExportError, export, verify_export
from tests.engine.support import start_reference
from tests.engine.test_audit import _full_loop


def _export(rt, tmp_path: Path) -> Path:
    audit.take_checkpoint(rt.db, rt.audit_keys, "auditor", rt.clock.now())
    path = tmp_path / "trail.jsonl"
    export(rt.db, path, rt.clock.now())
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, lines: list[dict]) -> None:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


def test_an_export_verifies_offline_like_the_database(rt, tmp_path):
    iid = _full_loop(rt)
    start_reference(rt, "C-2")
    path = _export(rt, tmp_path)
    with rt.db.session() as s:
        online = audit.verify(s, rt.audit_keys)
    offline = verify_export(path, audit.AuditKeys(rt.audit_keys.current))
    assert offline.ok and online.ok, offline.findings
    assert (offline.events, offline.checkpoints, offline.key_ids) == (online.events, 1, online.key_ids)
    kinds = {next(iter(line)) for line in _lines(path)[1:]}
    assert kinds == {"checkpoint", "event", "instance", "chainHead"}
    assert {line["instance"]["id"] for line in _lines(path) if "instance" in line} >= {iid}


def test_an_edited_export_is_detected_at_the_edited_event(rt, tmp_path):
    iid = _full_loop(rt)
    path = _export(rt, tmp_path)
    lines = _lines(path)
    target = next(line["event"] for line in lines if "event" in line and line["event"]["chain"] == iid
                  and line["event"]["action"] == "task.completed")
    target["actor"] = "someone-else"
    _write(path, lines)
    report = verify_export(path, rt.audit_keys)
    assert report.ok is False and report.first_broken_id == target["id"]
    assert {f.kind for f in report.findings} == {"edited"}


def test_an_export_without_an_instances_last_events_or_without_the_instance_is_detected(rt, tmp_path):
    iid = _full_loop(rt)
    path = _export(rt, tmp_path)
    lines = _lines(path)
    mine = [i for i, line in enumerate(lines) if line.get("event", {}).get("chain") == iid]
    _write(path, [line for i, line in enumerate(lines) if i not in mine[-2:]])
    assert {f.kind for f in verify_export(path, rt.audit_keys).findings} == {"tail_cut", "truncated_after_checkpoint"}
    gone = [line for line in lines if line.get("event", {}).get("chain") != iid
            and line.get("instance", {}).get("id") != iid]
    _write(path, gone)
    report = verify_export(path, rt.audit_keys)
    assert {f.kind for f in report.findings} == {"instance_deleted", "truncated_after_checkpoint"}


def test_the_wrong_key_file_verifies_nothing(rt, tmp_path):
    _full_loop(rt)
    path = _export(rt, tmp_path)
    report = verify_export(path, audit.AuditKeys(b"w" * 64))
    assert report.ok is False and {f.kind for f in report.findings} == {"unknown_key"}


def test_a_file_that_is_not_an_export_is_refused(rt, tmp_path):
    _full_loop(rt)
    path = _export(rt, tmp_path)
    lines = _lines(path)
    events = [i for i, line in enumerate(lines) if "event" in line]
    lines[events[0]], lines[events[1]] = lines[events[1]], lines[events[0]]
    _write(path, lines)
    with pytest.raises(ExportError, match="ascending id order"):
        verify_export(path, rt.audit_keys)
    other = tmp_path / "other.jsonl"
    other.write_text('{"format": "something-else"}\n')
    with pytest.raises(ExportError, match="not a gridloop-audit-export"):
        verify_export(other, rt.audit_keys)
    other.write_text(json.dumps({"format": "gridloop-audit-export", "version": 1}) + "\n{broken\n")
    with pytest.raises(ExportError, match="line 2"):
        verify_export(other, rt.audit_keys)


@pytest.mark.parametrize(("record", "said"), [
    ({"instance": 5}, "'instance' record is not a JSON object"),
    ({"instance": {"audit_head": "ab"}}, "'id'"),  # names no instance: it would check nothing
    ({"instance": {"id": "", "audit_head": "ab"}}, "'id'"),
    ({"instance": {"id": "i-1", "audit_head": 7}}, "'audit_head'"),
    ({"chainHead": {"chain": "system"}}, "'hash'"),
    ({"chainHead": ["system", "ab"]}, "'chainHead' record is not a JSON object"),
])
def test_a_malformed_instance_or_chain_head_record_is_refused_by_its_line(rt, tmp_path, record, said):
    _full_loop(rt)
    path = _export(rt, tmp_path)
    lines = _lines(path)
    _write(path, [*lines, record])
    with pytest.raises(ExportError, match=f"line {len(lines) + 1}.*{said}"):
        verify_export(path, rt.audit_keys)
