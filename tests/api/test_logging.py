"""The default log level keeps SpiffWorkflow's per-task records (with the task's data: citizens'
phone numbers) out of the log; GRIDLOOP_LOG_LEVEL_SPIFF turns them back up."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

from api.logs import SPIFF_LOGGER, configure_logging
from api.settings import Settings

PHONE = "13800138000"


class Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def configured() -> Iterator[callable]:
    """configure_logging as an entry point calls it, with a handler that keeps every record; the
    process's logging is put back afterwards."""
    root, spiff = logging.getLogger(), logging.getLogger(SPIFF_LOGGER)
    saved = root.handlers[:], root.level, spiff.level
    kept = Kept()

    def configure(settings: Settings) -> Kept:
        configure_logging(settings.log_level, settings.log_json, settings.log_level_spiff)
        root.addHandler(kept)
        return kept

    yield configure
    root.handlers[:], _, _ = saved
    root.setLevel(saved[1])
    spiff.setLevel(saved[2])


def run_a_process(users, reference_xml, clock) -> None:
    assert users["admin"].post("/api/v1/process-definition", data=reference_xml,
                               headers={"Content-Type": "application/xml"}).status_code == 201
    due = (clock.now() + timedelta(hours=4)).isoformat()
    r = users["sup"].post("/api/v1/process-definition/key/reference_loop/start", json={"variables": {
        "case_id": "C-1", "value": 1, "grid": "320706001", "handle_due": due, "reporter_phone": PHONE}})
    assert r.status_code == 201, r.get_json()
    task = users["sup"].get(f"/api/v1/task?processInstanceId={r.get_json()['id']}").get_json()["items"][0]
    assert users["sup"].post(f"/api/v1/task/{task['id']}/complete", json={}).status_code == 200


def spiff_records(kept: Kept) -> list[logging.LogRecord]:
    return [r for r in kept.records if r.name == SPIFF_LOGGER or r.name.startswith(SPIFF_LOGGER + ".")]


def test_the_default_level_logs_requests_but_no_spiffworkflow_task_records(configured, users, reference_xml,
                                                                         clock):
    kept = configured(Settings())  # the defaults: GRIDLOOP_LOG_LEVEL=INFO
    run_a_process(users, reference_xml, clock)
    assert [r for r in spiff_records(kept) if r.levelno < logging.WARNING] == []
    assert any(r.name == "gridloop.http" and r.levelno == logging.INFO for r in kept.records)
    assert not any(PHONE in str(r.__dict__) for r in kept.records)


def test_gridloop_log_level_spiff_turns_them_up(configured, users, reference_xml, clock, monkeypatch):
    monkeypatch.setenv("GRIDLOOP_SECRET_KEY", "s")
    monkeypatch.setenv("GRIDLOOP_LOG_LEVEL_SPIFF", "info")
    settings = Settings.from_env()
    assert settings.log_level_spiff == "INFO"
    kept = configured(settings)
    run_a_process(users, reference_xml, clock)
    turned_up = [r for r in spiff_records(kept) if r.levelno == logging.INFO]
    assert turned_up and any(PHONE in str(r.__dict__) for r in turned_up)  # what the default keeps out



def test_a_cli_command_logs_no_alembic_plugin_announcements(tmp_path):
    """In a fresh process, as an operator runs it (alembic sets its plugins up once per process)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "GRIDLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.db'}", "GRIDLOOP_LOG_LEVEL": "INFO"}
    def gridloop(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", "from api.cli import main; main()", *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr

    assert "Running upgrade" in gridloop("db", "upgrade")  # the upgrade itself is still told
    logged = gridloop("audit", "verify")  # checks the schema first, which loads alembic's plugins
    assert "alembic" not in logged and "setup plugin" not in logged
