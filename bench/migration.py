"""Migration throughput: instances moved to another version per second, each in its own locked
change, beside what the database itself does with the same rows (a locked read and an UPDATE per
row in its own transaction; one UPDATE of them all).

    python -m bench.migration [--instances 1000] [--database-url URL | --sqlite]

Every instance waits at a user task guarded by a boundary timer, each with its own deadline; the
target version renames the task and adds a step. The figures say whether every deadline was kept
to the microsecond. Prints JSON."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text

from bench import _common

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_migration"
HEAD = ('<?xml version="1.0" encoding="UTF-8"?><bpmn:definitions '
        'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">'
        '<bpmn:process id="bench_mig" isExecutable="true"><bpmn:laneSet id="ls"><bpmn:lane id="l" name="clerk">'
        "{lane}</bpmn:lane></bpmn:laneSet>")


def model(review: str, extra: bool) -> str:
    """start → `review` [→ extra] → end; a boundary timer (PT2H) on the review leads to esc."""
    lane = "".join(f"<bpmn:flowNodeRef>{e}</bpmn:flowNodeRef>" for e in [review, "esc"] + (["extra"] if extra else []))
    after = "extra" if extra else "end"
    body = (f'<bpmn:startEvent id="start"/><bpmn:userTask id="{review}"/><bpmn:userTask id="esc"/>'
            f'<bpmn:endEvent id="end"/><bpmn:endEvent id="end2"/>'
            f'<bpmn:boundaryEvent id="late" attachedToRef="{review}" cancelActivity="true">'
            '<bpmn:timerEventDefinition><bpmn:timeDuration>"PT2H"</bpmn:timeDuration>'
            "</bpmn:timerEventDefinition></bpmn:boundaryEvent>"
            f'<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="{review}"/>'
            f'<bpmn:sequenceFlow id="f2" sourceRef="{review}" targetRef="{after}"/>'
            '<bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="esc"/>'
            '<bpmn:sequenceFlow id="f4" sourceRef="esc" targetRef="end2"/>')
    if extra:
        body += '<bpmn:userTask id="extra"/><bpmn:sequenceFlow id="f5" sourceRef="extra" targetRef="end"/>'
    return HEAD.format(lane=lane) + body + "</bpmn:process></bpmn:definitions>"


def run(url: str, n: int) -> dict:
    from engine import definitions, instances, migration
    from engine.clock import ManualClock
    from engine.db import Database
    from engine.runtime import Runtime

    db = Database(url)
    try:
        rt = Runtime(db=db, clock=ManualClock())
        v1 = definitions.deploy(rt, model("review", False), "bench")[0].id
        v2 = definitions.deploy(rt, model("review2", True), "bench")[0].id
        t0 = time.perf_counter()
        for i in range(n):
            instances.start(rt, actor="bench", definition_id=v1, business_key=f"B-{i}")
            rt.clock.advance(timedelta(seconds=1, microseconds=337_000))
        started_s = time.perf_counter() - t0
        with db.read() as conn:
            before = dict(conn.execute(text("SELECT id, next_wakeup_at FROM process_instance")).all())
        t0 = time.perf_counter()
        plan, _, _ = migration.plan(rt, v1, v2, {"review": "review2"})
        plan_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        outcome = migration.execute(rt, v1, v2, "bench", {"review": "review2"})
        migrate_s = time.perf_counter() - t0
        with db.read() as conn:
            after = dict(conn.execute(text("SELECT id, next_wakeup_at FROM process_instance")).all())
        db_rate = _database_rate(db, list(before), v1)
        return {
            "database": db.engine.dialect.name, "instances": n, "plan_valid": plan.valid,
            "migrated": len(outcome.migrated), "failed": len(outcome.failed),
            "deadlines_kept": sum(1 for k, v in before.items() if after.get(k) == v),
            "start_per_s": round(n / started_s, 1), "plan_s": round(plan_s, 3),
            "migrate_s": round(migrate_s, 3), "migrate_per_s": round(len(outcome.migrated) / migrate_s, 1),
            **db_rate,
        }
    finally:
        db.dispose()


def _database_rate(db, ids: list[str], definition_id: int) -> dict:
    """The same rows moved back by the database alone: per row (lock, update, commit) and all at once."""
    t0 = time.perf_counter()
    for instance_id in ids:
        with db.engine.begin() as conn:
            lock = " FOR UPDATE" if db.is_postgres else ""
            conn.execute(text(f"SELECT state FROM process_instance WHERE id = :i{lock}"), {"i": instance_id})
            conn.execute(text("UPDATE process_instance SET definition_id = :d, revision = revision + 1, "
                              "state = state WHERE id = :i"), {"d": definition_id, "i": instance_id})
    per_row_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE process_instance SET definition_id = :d, revision = revision + 1"),
                     {"d": definition_id})
    bulk_s = time.perf_counter() - t0
    return {"db_update_per_row_tx_per_s": round(len(ids) / per_row_s, 1),
            "db_update_one_statement_per_s": round(len(ids) / bulk_s, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--sqlite", action="store_true", help="a scratch SQLite file instead of PostgreSQL")
    _common.add_scratch_options(ap, "GRIDLOOP_BENCH_MIGRATION", DEFAULT_URL)
    args = ap.parse_args()
    from api import database
    from engine.db import Database

    if args.sqlite:
        path = Path(tempfile.mkdtemp(prefix="gridloop-bench-")) / "migration.db"
        url = f"sqlite:///{path}"
    else:
        url = args.database_url
        _common.recreate_database(url)
    db = Database(url)
    try:
        database.upgrade(db)
    finally:
        db.dispose()
    print(json.dumps(run(url, args.instances), indent=2))
    if args.sqlite:
        os.unlink(path)


if __name__ == "__main__":
    main()
