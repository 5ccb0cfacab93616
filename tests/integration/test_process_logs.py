"""Every process configures SpiffWorkflow's loggers the same way (api.logs.configure_logging, called
by each `gridloop` command through `_settings()` and by wsgi.py): a real `gridloop scheduler` firing
a timer changes task states in its own process and writes no spiff.* record at the defaults."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
from pathlib import Path

from engine import definitions, instances
from engine.clock import SystemClock
from engine.runtime import Runtime
from tests.conftest import REDIS_URL
from tests.integration.test_notice_delivery_faults import GRIDLOOP, kill_tree
from tests.integration.test_rq_and_scheduler import TIMER_XML, redis_conn, wait_for  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]


def test_the_scheduler_fires_a_timer_without_writing_spiffworkflow_task_records(pg, redis_conn, tmp_path):  # noqa: F811
    rt = Runtime(db=pg, clock=SystemClock())
    definitions.deploy(rt, TIMER_XML, "admin")
    env = {**os.environ, "GRIDLOOP_DATABASE_URL": pg.url, "GRIDLOOP_REDIS_URL": REDIS_URL, "GRIDLOOP_SECRET_KEY": "x",
           "GRIDLOOP_LOG_LEVEL": "DEBUG"}  # everything of ours, still none of SpiffWorkflow's
    env.pop("GRIDLOOP_LOG_LEVEL_SPIFF", None)
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log:
        scheduler = subprocess.Popen([str(GRIDLOOP), "scheduler"], env=env, start_new_session=True, stdout=log,
                                     stderr=subprocess.STDOUT)
    try:
        iid = instances.start(rt, actor="t", key="short_timer").instance.id
        wait_for(lambda: instances.get(rt, iid).status == "completed", timeout=60)
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(30)
    finally:
        kill_tree(scheduler.pid)
        scheduler.wait(10)
    lines = log_path.read_text().splitlines()
    assert any('"logger": "engine.' in line for line in lines)  # it did log, at DEBUG
    assert [line for line in lines if '"logger": "spiff' in line] == []


def test_every_command_reads_its_settings_through_the_function_that_configures_logging():
    cli = ast.parse((ROOT / "api" / "cli.py").read_text())
    calls = [node for node in ast.walk(cli) if isinstance(node, ast.Call) and ast.unparse(node.func) in (
        "Settings.from_env", "configure_logging")]
    (settings_fn,) = [f for f in cli.body if isinstance(f, ast.FunctionDef) and f.name == "_settings"]
    assert calls and all(any(c is n for n in ast.walk(settings_fn)) for c in calls)
    assert "configure_logging(settings.log_level, settings.log_json, settings.log_level_spiff)" in (
        ROOT / "wsgi.py").read_text()
