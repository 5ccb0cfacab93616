"""The audit trail as operators and auditors use it: GET /audit/verify names what it finds,
POST /audit/checkpoint signs the heads, and `gridloop audit export` / `verify-export` hand an auditor
a file they verify with one command and the key file, without the database."""

from __future__ import annotations

import json
import logging

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from api.cli import main
from engine import audit
from engine.models import AuditEvent, ProcessInstance
from tests.engine.test_audit import _full_loop


def test_verify_names_an_instance_chain_cut_after_a_checkpoint(rt, users):
    iid = _full_loop(rt)
    assert users["leader"].post("/api/v1/audit/checkpoint").status_code == 403
    r = users["admin"].post("/api/v1/audit/checkpoint")
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert (first["seq"], first["created"], first["takenBy"], first["chains"]) == (1, True, "admin", 3)
    again = users["admin"].post("/api/v1/audit/checkpoint")
    assert again.status_code == 200 and again.get_json() == {**first, "created": False}
    body = users["leader"].get("/api/v1/audit/verify").get_json()
    assert body["ok"] is True and body["findings"] == [] and body["checkpoints"] == 1
    assert body["lastCheckpoint"]["seq"] == 1 and body["keyIds"] == [rt.audit_keys.current_id]
    with rt.db.transaction() as s:  # cut the instance's last events and move its recorded head back
        ids = list(s.scalars(select(AuditEvent.id).where(AuditEvent.chain == iid).order_by(AuditEvent.id)))
        kept = s.get(AuditEvent, ids[-2])
        s.execute(delete(AuditEvent).where(AuditEvent.id == ids[-1]))
        s.execute(update(ProcessInstance).where(ProcessInstance.id == iid).values(audit_head=kept.hash))
    body = users["admin"].get("/api/v1/audit/verify").get_json()
    assert body["ok"] is False and body["firstBrokenId"] == ids[-1] and iid in body["reason"]
    assert [(f["kind"], f["chain"], f["eventId"]) for f in body["findings"]] == [
        ("truncated_after_checkpoint", iid, ids[-1])]


@pytest.fixture
def cli(rt, tmp_path, monkeypatch):
    """`gridloop …` against the test database with a key file, as an operator would run it; the
    runtime writes with the same key. The root logger is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "audit.key"
    key_file.write_text("k" * 64 + "\n")
    rt.audit_keys = audit.AuditKeys.from_file(key_file)
    env = {"GRIDLOOP_DATABASE_URL": rt.db.url, "GRIDLOOP_SECRET_KEY": "test", "USER": "ops",
           "GRIDLOOP_LOG_LEVEL": "WARNING", "GRIDLOOP_AUDIT_KEY_FILE": str(key_file)}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env)

    yield run, key_file
    root.handlers[:], root.level = handlers, level


def test_an_auditor_verifies_an_export_offline_with_one_command(rt, cli, tmp_path):
    run, key_file = cli
    iid = _full_loop(rt)
    checked = run("audit", "verify")
    assert checked.exit_code == 0 and json.loads(checked.output)["ok"] is True, checked.output
    file = tmp_path / "trail.jsonl"
    done = run("audit", "export", str(file))
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output)
    assert summary["instances"] == 1 and summary["checkpoints"] == 1 and summary["last_checkpoint_seq"] == 1
    offline = run("audit", "verify-export", str(file), "--key-file", str(key_file))
    assert offline.exit_code == 0 and json.loads(offline.output)["events"] == summary["events"], offline.output
    lines = file.read_text().splitlines()
    edited = [json.loads(line) for line in lines]
    target = next(x["event"] for x in edited if "event" in x and x["event"]["chain"] == iid)
    target["details"] = {"forged": True}
    file.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in edited))
    offline = run("audit", "verify-export", str(file), "--key-file", str(key_file))
    report = json.loads(offline.output)
    assert offline.exit_code == 1 and report["first_broken_id"] == target["id"]
    assert {f["kind"] for f in report["findings"]} == {"edited"}


def test_verify_export_refuses_a_bad_key_file_or_a_file_that_is_not_an_export(cli, tmp_path):
    run, key_file = cli
    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    not_export = tmp_path / "not.jsonl"
    not_export.write_text("hello\n")
    refused = run("audit", "verify-export", str(not_export), "--key-file", str(short))
    assert refused.exit_code == 2 and "at least 32 characters" in refused.output
    refused = run("audit", "verify-export", str(not_export), "--key-file", str(key_file))
    assert refused.exit_code == 2 and "line 1 is not JSON" in refused.output
