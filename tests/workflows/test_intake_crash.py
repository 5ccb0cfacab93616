"""Alarm intake killed at any point never leaves a case without its process: a child process files an
alarm and dies (os._exit, no clean-up) just before its N-th SQL statement, for every N the intake
sends; after each death the database holds either nothing or a case with its running process, and
filing the same alarm again converges on exactly one case with one process. PostgreSQL only (a real
server that sees the connection drop mid-transaction)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from engine import definitions
from engine.models import ProcessInstance
from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient
from workflows.cases import Case, file_alarm
from workflows.demo_seed import seed_demo
from workflows.grids import GridIndex, point_inside
from workflows.install import install
from workflows.working_time import CalendarService, seed_from_package

MODEL = Path(__file__).resolve().parents[2] / "bpmn" / "env_case.bpmn"
NOW = datetime(2026, 9, 29, 1, 0, tzinfo=UTC)

CHILD = r"""
import os, sys
from datetime import datetime
from sqlalchemy import event
from engine.clock import ManualClock
from engine.db import Database
from engine.runtime import Runtime
from integrations.enforcement import EnforcementClient
from workflows.cases import Alarm, file_alarm
from workflows.grids import GridIndex
from workflows.install import install
from workflows.working_time import CalendarService

url, die_at, lon, lat, now = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
db = Database(url)
clock = ManualClock()
clock.set(datetime.fromisoformat(now))
rt = Runtime(db=db, clock=clock)
install(rt, calendar=CalendarService(db).calendar, enforcement=EnforcementClient("", ""))
index = GridIndex.load(db, "320700")
seen = [0]

@event.listens_for(db.engine, "before_cursor_execute")
def die(*_args):
    seen[0] += 1
    if seen[0] == die_at:
        os._exit(9)

file_alarm(rt, index, Alarm(tenant="320700", source="monitoring", external_id="A-CRASH", category="air.exceedance",
                            occurred_at=clock.now(), source_ref="MN-CRASH", lon=lon, lat=lat), "system")
print(seen[0])
"""


def run_child(url: str, die_at: int, lon: float, lat: float) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", CHILD, url, str(die_at), str(lon), str(lat), NOW.isoformat()],
                          cwd=root, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})


def cases_and_processes(db) -> list[tuple[str, str | None, str | None]]:
    with db.session() as s:
        return list(s.execute(select(Case.id, Case.instance_id, ProcessInstance.status)
                              .outerjoin(ProcessInstance, ProcessInstance.id == Case.instance_id)).all())


def test_intake_killed_at_any_statement_leaves_no_case_without_its_process(pg, clock):
    clock.set(NOW)
    seed_from_package(pg, NOW, years=[2026])
    seed_demo(pg, NOW - timedelta(hours=1))
    rt = Runtime(db=pg, clock=clock)
    install(rt, calendar=CalendarService(pg).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "admin")
    index = GridIndex.load(pg, "320700")
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[3]
    lon, lat = point_inside(pg, unit)
    url = pg.engine.url.render_as_string(hide_password=False)

    whole = run_child(url, 10_000, lon, lat)  # never dies: how many statements one intake sends
    assert whole.returncode == 0, whole.stderr
    statements = int(whole.stdout.strip().splitlines()[-1])
    assert statements >= 5, statements
    with pg.begin() as conn:  # start again from an empty case table for the crashes
        for table in ("case_alarm", "human_task", "audit_event", "audit_chain_head", "outbox", "message_subscription"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
        conn.exec_driver_sql("DELETE FROM env_case")
        conn.exec_driver_sql("DELETE FROM process_instance")

    print(f"intake sends {statements} statements")
    for die_at in range(1, statements + 1):
        died = run_child(url, die_at, lon, lat)
        assert died.returncode == 9, (die_at, died.stderr[-2000:])
        for case_id, instance_id, status in cases_and_processes(pg):
            assert instance_id is not None and status == "running", (die_at, case_id)

    from workflows.cases import Alarm

    again = file_alarm(rt, index, Alarm(tenant="320700", source="monitoring", external_id="A-CRASH",
                                        category="air.exceedance", occurred_at=clock.now(), source_ref="MN-CRASH",
                                        lon=lon, lat=lat), "system")
    (only,) = cases_and_processes(pg)
    assert only[0] == again.case.id and only[2] == "running"
