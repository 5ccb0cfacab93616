"""What typed forms cost: checking a completion against its form, resolving a reference in the
database, and a whole durable completion with and without a checked reference.

    python -m bench.forms [--n N] [--database-url URL]

Prints ONE JSON line on stdout:

* `validate_us`: Form.validate of env_case's review and handle forms in memory (µs per call, p50/p99),
  and `jsonschema_us`: building the review form's JSON Schema;
* `reference_us`: resolving a `user` reference (one indexed query on PostgreSQL) and a `grid` one;
* `dispatch_ms`: a durable completion of env_case's `dispatch` on PostgreSQL (lock, load, check the form,
  run, save, read models, audit, commit) with `inspector` named (the reference is checked) and
  empty (nothing to resolve) — the form's share of a real completion;
* `raw_spiff_complete_us`: the same `dispatch` completed in memory by SpiffWorkflow alone (the ceiling).

The database (default `gridloop_bench_forms`) is dropped and re-created, migrated and seeded with the
demo city."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import add_scratch_options, rnd, scratch_database, summary

MODEL = Path(__file__).resolve().parent.parent / "bpmn" / "env_case.bpmn"


def micro(fn, n: int) -> dict:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e6)
    s = summary(times)
    return {"p50_us": s["p50_ms"], "p99_us": s["p99_ms"], "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="measured calls/completions each (default 300)")
    add_scratch_options(ap, "GRIDLOOP_BENCH", "")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from api import accounts, database
    from engine import definitions, instances, tasks
    from engine.clock import ManualClock
    from engine.db import Database
    from engine.parsing import parse_model
    from engine.runtime import Runtime
    from engine.spiff_specs import find_task
    from integrations.enforcement import EnforcementClient
    from workflows.cases import Alarm, file_alarm
    from workflows.demo_seed import seed_demo
    from workflows.grids import GridIndex, point_inside
    from workflows.install import install
    from workflows.working_time import CalendarService, seed_from_package

    url = args.database_url or scratch_database("gridloop_bench_forms")
    db = Database(url)
    database.upgrade(db)
    clock = ManualClock()
    clock.set(datetime(2026, 9, 29, 1, 0, tzinfo=UTC))
    seed_from_package(db, clock.now(), years=[2026])
    seed_demo(db, clock.now() - timedelta(hours=1))
    rt = Runtime(db=db, clock=clock)
    install(rt, calendar=CalendarService(db).calendar, enforcement=EnforcementClient("", ""))
    definitions.deploy(rt, MODEL.read_bytes(), "bench")
    model = parse_model(MODEL.read_bytes(), require_lint=False)
    index = GridIndex.load(db, "320700")
    unit = sorted(c for c, g in index.grids.items() if g.level == "unit")[3]
    lon, lat = point_inside(db, unit)
    inspector = f"insp-{unit}"
    accounts.create_user(db, clock.now(), username=inspector, password="bench-password", roles=["inspector"],
                         scope=unit, hash_method="pbkdf2:sha256:1000")

    def none(_f, value, _v):
        return value

    review, handle = model.forms["review"], model.forms["handle"]
    held = {"case_id": "C-1", "grid": unit}
    validate = {
        "review": micro(lambda: review.validate({"review_result": "valid"}, held, resolve=none), args.n * 10),
        "handle": micro(lambda: handle.validate({"handle_result": "done", "finding_kind": "violation",
                                                 "findings": "治污设施停运"}, held, resolve=none), args.n * 10),
    }
    jsonschema = micro(review.json_schema, args.n * 10)

    dispatch_form = model.forms["dispatch"]
    grid_field = model.forms["review"].get("transfer_grid")
    with db.begin() as conn:
        resolve = rt.references.resolve(conn, None)
        reference = {
            "user": micro(lambda: resolve(dispatch_form.get("inspector"), inspector, held), args.n),
            "grid": micro(lambda: resolve(grid_field, unit, held), args.n),
        }

    def filed(i: int) -> str:
        case = file_alarm(rt, index, Alarm(tenant="320700", source="monitoring", external_id=f"B-{i}",
                                           category="air.exceedance", occurred_at=clock.now(),
                                           source_ref=f"MN-{i}", lon=lon, lat=lat), "bench").case
        (review_task,) = instances.open_tasks(rt, case.instance_id)
        tasks.complete(rt, review_task.id, "sup", {"review_result": "valid"})
        return case.instance_id

    dispatch = {}
    for label, variables in (("named", {"inspector": inspector}), ("empty", {})):
        times = []
        for i in range(args.n):
            iid = filed(hash(label) % 1000 * 100_000 + i)
            (task,) = instances.open_tasks(rt, iid)
            t0 = time.perf_counter()
            tasks.complete(rt, task.id, "sup", variables)
            times.append((time.perf_counter() - t0) * 1000)
        dispatch[label] = summary(times)

    # the ceiling: SpiffWorkflow alone completing the same dispatch task in memory
    iid = filed(999_999)
    row = instances.get(rt, iid)
    spec = rt.specs.get(db, row.definition_id)
    state = row.state
    raw = []
    from engine.change import Change
    from engine.environment import attach

    for _ in range(args.n):
        wf = rt.serializer.loads(state, spec.spec, spec.subprocess_specs)
        with db.begin() as conn:  # the operations want a change to call through; nothing is written
            attach(wf, Change(rt=rt, conn=conn, instance=row, workflow=wf, actor="bench", now=clock.now()))
            (task_row,) = instances.open_tasks(rt, iid)
            task = find_task(wf, task_row.id)
            t0 = time.perf_counter()
            task.data.update({"inspector": inspector})
            task.run()
            wf.do_engine_steps()
            raw.append((time.perf_counter() - t0) * 1e6)
            conn.rollback()
    raw_summary = summary(raw)
    print(json.dumps({
        "validate_us": validate, "jsonschema_us": jsonschema, "reference_us": reference,
        "dispatch_ms": dispatch,
        "raw_spiff_complete_us": {"p50_us": raw_summary["p50_ms"], "p99_us": raw_summary["p99_ms"], "n": len(raw)},
        "form_share_of_dispatch": rnd((validate["review"]["p50_us"] + reference["user"]["p50_us"]) / 1000
                                      / dispatch["named"]["p50_ms"], 3),
    }))
    db.dispose()


if __name__ == "__main__":
    main()
