"""The ceilings bench.engine measures the engine against: the same process in memory with SpiffWorkflow
alone, and the database's own rate for the writes a loop commits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._engine_driver import FIXTURE

# -- the database's own rate ------------------------------------------------------------------------

def run_db_floor(url: str, commits_per_loop: int, state_bytes: int, min_seconds: float) -> dict[str, Any]:
    """The database's ceiling for this loop: `commits_per_loop` transactions back to back on one
    connection, each locking and rewriting one state row of `state_bytes` and appending one audit row
    (what every step of a loop writes at the least), with no engine at all."""
    from sqlalchemy import text

    from engine.db import Database

    db = Database(url)
    state = "x" * state_bytes
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor (id int PRIMARY KEY, state text, rev int)"))
            conn.execute(text("CREATE TABLE IF NOT EXISTS bench_floor_log (id bigserial PRIMARY KEY, at timestamptz,"
                              " details text)"))
            conn.execute(text("INSERT INTO bench_floor VALUES (1, '', 0) ON CONFLICT (id) DO NOTHING"))
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            n, t0 = 0, time.perf_counter()
            while True:
                for _ in range(commits_per_loop):
                    cur.execute("SELECT rev FROM bench_floor WHERE id = 1 FOR UPDATE")
                    cur.execute("UPDATE bench_floor SET state = %s, rev = rev + 1 WHERE id = 1", (state,))
                    cur.execute("INSERT INTO bench_floor_log (at, details) VALUES (now(), %s)", ("step",))
                    raw.commit()
                n += 1
                elapsed = time.perf_counter() - t0
                if elapsed >= min_seconds and n >= 20:
                    return {"loops": n, "wall_s": elapsed, "loops_per_s": n / elapsed}
        finally:
            raw.close()
    finally:
        db.dispose()


# -- raw in-memory SpiffWorkflow ------------------------------------------------------------------

def run_raw(min_seconds: float, min_loops: int, warmup: int) -> dict[str, Any]:
    from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
    from SpiffWorkflow.bpmn.util.event import BpmnEvent
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.util.task import TaskState

    from engine.parsing import parse_model
    from engine.readmodels import message_definition, waiting_message_tasks
    from engine.sandbox import SandboxEnvironment

    class RawEnvironment(SandboxEnvironment):
        def call_operation(self, my_task, name: str, params: dict[str, Any]) -> Any:
            if name == "ref.classify":
                return {"level": "high" if params["value"] > 100 else "low"}
            if name == "ref.push":
                return {"pushed": params["case_id"]}
            raise LookupError(name)

    model = parse_model(FIXTURE.read_text(), require_lint=False)
    script_engine = PythonScriptEngine(environment=RawEnvironment())

    def user_task(wf, spec_id: str, data: dict[str, Any]) -> None:
        (task,) = wf.get_tasks(state=TaskState.READY, manual=True)
        assert task.task_spec.bpmn_id == spec_id, task.task_spec.bpmn_id
        task.data.update(data)
        task.run()
        wf.do_engine_steps()

    def one(i: int) -> None:
        case = f"raw-{i}"
        due = (datetime.now(UTC) + timedelta(hours=4)).isoformat()
        wf = BpmnWorkflow(model.spec, model.subprocess_specs, script_engine=script_engine)
        wf.task_tree.data.update({"case_id": case, "value": 150, "grid": "g1", "handle_due": due})
        wf.do_engine_steps()
        user_task(wf, "review", {"approved": True})
        user_task(wf, "handle", {"violation": True})
        (task,) = waiting_message_tasks(wf)
        definition = message_definition(task)
        correlations = definition.calculate_correlations(script_engine, definition.process_correlations, task.data)
        payload = {"result": "ok"}
        for prop in definition.correlation_properties:
            for _key, props in correlations.items():
                if prop.name in props and prop.retrieval_expression.isidentifier():
                    payload.setdefault(prop.retrieval_expression, props[prop.name])
        wf.send_event(BpmnEvent(definition, payload, correlations))
        wf.do_engine_steps()
        user_task(wf, "verify", {"passed": True})
        if not wf.is_completed():
            raise RuntimeError("raw loop did not complete")

    for i in range(warmup):
        one(i)
    n = 0
    t0 = time.perf_counter()
    while True:
        one(n)
        n += 1
        elapsed = time.perf_counter() - t0
        if n >= min_loops and elapsed >= min_seconds:
            break
    return {"loops": n, "wall_s": elapsed, "loops_per_s": n / elapsed}
