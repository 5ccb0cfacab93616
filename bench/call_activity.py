"""Call-activity overhead per child: what calling a process as a durable child instance costs over
doing the same work in the caller itself, next to SpiffWorkflow's own in-memory call activity.

    python -m bench.call_activity [--loops 300] [--warmup 30] [--database-url URL]

Prints ONE JSON line. A loop of the *call* model: start `caller` (its call activity starts `leaf` in
the same transaction) → complete the leaf's `work` task → relay the outbox and run the `call_return`
job in-process (the caller's call activity completes) → the caller waits at `after`. A loop of the
*flat* model does the same user task inside the caller: start → complete `work` → at `after`. The
overhead per child is the difference of the mean loop times. The raw figure runs both models in
memory with SpiffWorkflow's own parser and call activity (a subworkflow in the caller's state).

The database (default `gridloop_bench_calls` on 127.0.0.1) is dropped and re-created first."""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from itertools import pairwise
from typing import Any

from bench import _common
from bench._common import add_scratch_options, rnd

log = logging.getLogger("bench.call_activity")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_calls"
HEAD = ('<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'id="d_{key}" targetNamespace="t">')


def _process(key: str, body: str, flows: list[str]) -> str:
    seq = "".join(f'<bpmn:sequenceFlow id="f{n}" sourceRef="{a}" targetRef="{b}"/>'
                  for n, (a, b) in enumerate(pairwise(flows)))
    return (HEAD.format(key=key) + f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="s"/>'
            + body + f'<bpmn:endEvent id="e"/>{seq}</bpmn:process></bpmn:definitions>')


LEAF = _process("leaf", '<bpmn:userTask id="work"/><bpmn:scriptTask id="mark"><bpmn:script>done = True'
                        "</bpmn:script></bpmn:scriptTask>", ["s", "work", "mark", "e"])
CALLER = _process("caller", '<bpmn:callActivity id="call" calledElement="leaf"/><bpmn:userTask id="after"/>',
                  ["s", "call", "after", "e"])
FLAT = _process("flat", '<bpmn:userTask id="work"/><bpmn:scriptTask id="mark"><bpmn:script>done = True'
                        '</bpmn:script></bpmn:scriptTask><bpmn:userTask id="after"/>',
                ["s", "work", "mark", "after", "e"])


def durable(url: str, loops: int, warmup: int) -> dict[str, Any]:
    from engine import definitions, instances, outbox, tasks
    from engine.db import Database
    from engine.models import ProcessInstance
    from engine.queues import ManualJobQueue
    from engine.runtime import Runtime

    _common.recreate_database(url, migrate=True)
    db = Database(url)
    rt = Runtime(db=db)
    for xml in (LEAF, CALLER, FLAT):
        definitions.deploy(rt, xml, "bench")
    jobs = ManualJobQueue(rt)

    def open_task(instance_id: str, element: str):
        return next(t for t in instances.open_tasks(rt, instance_id) if t.element_id == element)

    def call_loop() -> None:
        parent = instances.start(rt, actor="bench", key="caller").instance.id
        with rt.db.session() as s:
            child = s.query(ProcessInstance.id).filter(ProcessInstance.parent_instance_id == parent).scalar()
        tasks.complete(rt, open_task(child, "work").id, "bench", {})
        outbox.relay(rt, jobs)
        jobs.run_all()
        open_task(parent, "after")  # raises if the call did not complete

    def flat_loop() -> None:
        iid = instances.start(rt, actor="bench", key="flat").instance.id
        tasks.complete(rt, open_task(iid, "work").id, "bench", {})
        open_task(iid, "after")

    try:
        figures = {"call": _timed(call_loop, loops, warmup), "flat": _timed(flat_loop, loops, warmup)}
    finally:
        db.dispose()
    return figures


def raw(loops: int, warmup: int) -> dict[str, Any]:
    """Both models in memory with SpiffWorkflow's own parser: its call activity runs `leaf` as a
    subworkflow inside the caller's state."""
    from lxml import etree
    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
    from SpiffWorkflow.util.task import TaskState

    parser = SpiffBpmnParser()
    for xml in (LEAF, CALLER, FLAT):
        parser.add_bpmn_xml(etree.fromstring(xml.encode()), filename="bench.bpmn")
    specs = {key: (parser.get_spec(key), parser.get_subprocess_specs(key)) for key in ("caller", "flat")}

    def run(key: str) -> None:
        wf = BpmnWorkflow(*specs[key])
        wf.do_engine_steps()
        for _ in range(2):  # work, then after
            (task,) = wf.get_tasks(state=TaskState.READY, manual=True)
            task.run()
            wf.do_engine_steps()
        assert wf.is_completed()

    return {"call": _timed(lambda: run("caller"), loops, warmup), "flat": _timed(lambda: run("flat"), loops, warmup)}


def _timed(fn, loops: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(loops):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"mean_ms": rnd(statistics.fmean(times), 3), "p50_ms": rnd(statistics.median(times), 3), "n": loops}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=30)
    add_scratch_options(ap, "GRIDLOOP_BENCH_CALLS", DEFAULT_URL)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    d = durable(args.database_url, args.loops, args.warmup)
    r = raw(args.loops * 10, args.warmup)
    print(json.dumps({
        "benchmark": "call_activity",
        "database": args.database_url.split("@")[-1],
        "durable": d,
        "durable_overhead_per_child_ms": rnd(d["call"]["mean_ms"] - d["flat"]["mean_ms"], 3),
        "raw_spiffworkflow": r,
        "raw_overhead_per_child_ms": rnd(r["call"]["mean_ms"] - r["flat"]["mean_ms"], 3),
        "notes": "durable: the child is an instance of its own (row, lock, audit chain), started in the caller's "
                 "transaction; its return is an outbox row whose job completes the caller's call activity in a "
                 "second transaction. Loop times include the driver's task look-ups.",
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
