"""What bench.timers measures besides the schedulers themselves: the CPU of processes (schedulers and
their PostgreSQL backends), the outcome per instance read back from the audit trail, and the
ceilings of the same run (the database's own rate of a firing's writes; raw SpiffWorkflow)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench import _common

TICKS = os.sysconf("SC_CLK_TCK")
AUDIT_DETAILS = '{"elements": ["wait"], "deadline": "2026-01-01T00:00:00+00:00", "ran": ["wait", "e"]}'


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class CpuSampler:
    """Samples, twice a second, the CPU of the given processes and of the PostgreSQL backends whose
    application_name starts with `app_prefix`; keeps the last value seen per process, so a process
    killed midway still counts up to its last sample."""

    def __init__(self, url: str, pids: list[int], app_prefix: str) -> None:
        self.url, self.pids, self.app_prefix = url, pids, app_prefix
        self.seen: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def totals(self) -> dict[str, float]:
        out = {"scheduler": 0.0, "postgres": 0.0}
        for (kind, _pid), value in self.seen.items():
            out[kind] += value
        return out

    def sample(self) -> None:
        import psycopg

        for pid in self.pids:
            value = cpu_seconds(pid)
            if value is not None:
                self.seen[("scheduler", pid)] = value
        try:
            with psycopg.connect(_common_psycopg(self.url), autocommit=True) as conn:
                backends = [row[0] for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE %s",
                    (self.app_prefix + "%",))]
        except psycopg.Error:
            return
        for pid in backends:
            value = cpu_seconds(pid)
            if value is not None:
                self.seen[("postgres", pid)] = value

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()


def _common_psycopg(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def outcome(url: str, burst_ids: set[str]) -> dict[str, Any]:
    """Per instance: how often its timer fired and the lateness of the first firing (audit time
    minus deadline); the burst's drain rate (its instances over the time from its first deadline to
    its last firing)."""
    from sqlalchemy import select

    from engine.db import Database
    from engine.models import AuditEvent, ProcessInstance

    db = Database(url)
    try:
        with db.session() as s:
            fired: dict[str, list[tuple[datetime, float]]] = {i: [] for i in s.scalars(select(ProcessInstance.id))}
            for iid, at, details in s.execute(select(AuditEvent.instance_id, AuditEvent.at, AuditEvent.details)
                                              .where(AuditEvent.action == "timer.fired")):
                due = datetime.fromisoformat(details["deadline"])
                fired[iid].append((at, (at - due).total_seconds() * 1000, due))
    finally:
        db.dispose()
    late = [v[0][1] for v in fired.values() if v]
    burst = [fired[i][0] for i in burst_ids if fired.get(i)]
    burst_rate = None
    if burst:
        span = (max(at for at, _l, _d in burst) - min(due for _a, _l, due in burst)).total_seconds()
        burst_rate = round(len(burst) / span, 1) if span > 0 else None
    return {"instances": len(fired), "fired_once": sum(len(v) == 1 for v in fired.values()),
            "double_fires": sum(len(v) > 1 for v in fired.values()),
            "lost": sum(not v for v in fired.values()),
            "lateness_ms": {**_common.summary(late), "max_ms": _common.rnd(max(late, default=None))},
            "burst": {"instances": len(burst_ids), "fired": len(burst), "fires_per_s": burst_rate,
                      "lateness_ms": {**_common.summary([lt for _a, lt, _d in burst]),
                                      "max_ms": _common.rnd(max((lt for _a, lt, _d in burst), default=None))}}}


def db_ceiling(url: str, rows: int, batch: int) -> float:
    """The database's own rate of a firing's writes, in one process and batches like the scheduler's:
    lock the due rows (SKIP LOCKED), update each instance row with a state of the same size, append
    its audit event, one commit per batch. Runs on copies of the run's rows in a table of its own."""
    import psycopg

    with psycopg.connect(_common_psycopg(url)) as conn:
        conn.execute("CREATE TEMP TABLE ceiling_instance AS SELECT * FROM process_instance LIMIT %s", (rows,))
        conn.execute("UPDATE ceiling_instance SET next_wakeup_at = now() - interval '1 second', status = 'running'")
        conn.execute("ALTER TABLE ceiling_instance ADD PRIMARY KEY (id)")
        conn.execute("CREATE INDEX ON ceiling_instance (next_wakeup_at) WHERE status = 'running'")
        conn.execute("ANALYZE ceiling_instance")
        conn.execute("CREATE TEMP TABLE ceiling_audit (LIKE audit_event INCLUDING DEFAULTS)")
        conn.execute("CREATE INDEX ON ceiling_audit (chain, id)")
        conn.commit()
        state = conn.execute("SELECT state FROM ceiling_instance LIMIT 1").fetchone()[0]
        done, t0 = 0, time.perf_counter()
        while True:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM ceiling_instance WHERE status = 'running' AND next_wakeup_at < now() "
                "ORDER BY next_wakeup_at LIMIT %s FOR UPDATE SKIP LOCKED", (batch,))]
            if not ids:
                break
            now = datetime.now(UTC)
            with conn.cursor() as cur:
                cur.executemany("UPDATE ceiling_instance SET state = %s, status = 'completed', next_wakeup_at = NULL, "
                                "revision = revision + 1, updated_at = %s WHERE id = %s",
                                [(state, now, i) for i in ids])
                cur.executemany("INSERT INTO ceiling_audit (id, chain, at, actor, action, instance_id, details, "
                                "prev_hash, hash) VALUES (%s, %s, %s, 'scheduler', 'timer.fired', %s, %s, %s, %s)",
                                [(n, i, now, i, AUDIT_DETAILS, "0" * 64, uuid.uuid4().hex * 2)
                                 for n, i in enumerate(ids, done)])
            conn.commit()
            done += len(ids)
        return round(done / (time.perf_counter() - t0), 1)


def spiff_ceiling(url: str, rows: int) -> float:
    """Raw SpiffWorkflow on one core: load the state of an instance waiting on a timer now due,
    refresh its timers, run the engine steps, dump it; no database, no audit, no read models."""
    from datetime import timedelta

    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from sqlalchemy import select

    from engine.db import Database
    from engine.models import ProcessInstance
    from engine.runtime import Runtime

    rt = Runtime(db=Database(url))
    try:
        with rt.db.session() as s:
            definition_id = s.scalar(select(ProcessInstance.definition_id).limit(1))
        model = rt.specs.get(rt.db, definition_id)
    finally:
        rt.db.dispose()
    workflow = BpmnWorkflow(model.spec, model.subprocess_specs)
    workflow.task_tree.data["due"] = (datetime.now(UTC) + timedelta(milliseconds=200)).isoformat()
    workflow.do_engine_steps()
    state = rt.serializer.dumps(workflow)
    time.sleep(0.3)
    t0 = time.perf_counter()
    for _ in range(rows):
        wf = rt.serializer.loads(state, model.spec, model.subprocess_specs)
        wf.refresh_timers()
        wf.do_engine_steps()
        if not wf.is_completed():
            raise RuntimeError("the raw ceiling's timer did not fire")
        rt.serializer.dumps(wf)
    return round(rows / (time.perf_counter() - t0), 1)
