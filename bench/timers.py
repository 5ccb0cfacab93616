"""Timers fired by a scheduler in its own process while instances are being started (each start
NOTIFYs it): how many fired exactly once, and how late (audit time of the firing minus the deadline).

    python -m bench.timers [--instances 3000] [--spread 60] [--starters 2]

Each instance waits on one timer due 1 s + uniform(0, spread) after its own start. Prints JSON.
`--scheduler-module` runs another implementation of the same `Scheduler` interface (an older copy,
to compare); the default is engine.scheduler."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import _common

log = logging.getLogger("bench.timers")

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_timers"
MODEL = """<?xml version="1.0"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="t">
  <bpmn:process id="bench_timer" isExecutable="true">
    <bpmn:startEvent id="s"/><bpmn:sequenceFlow id="a" sourceRef="s" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>
      <bpmn:timeDate>due</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="b" sourceRef="wait" targetRef="e"/><bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


class Discard:
    """A job queue for a run that writes no outbox rows."""

    def enqueue(self, queue: str, job: str, payload: dict[str, Any], *, entry_id: int) -> None:
        pass


def run_scheduler(url: str, module: str) -> None:
    """The scheduler process: runs until SIGTERM."""
    from engine.db import Database
    from engine.runtime import Runtime

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    rt = Runtime(db=Database(url))
    sched = importlib.import_module(module).Scheduler(rt, Discard())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sched.start()
    stop.wait()
    sched.stop()


def start_all(url: str, n: int, spread: float, starters: int) -> float:
    """Start `n` instances from `starters` threads; returns the wall seconds it took."""
    from engine import instances
    from engine.db import Database
    from engine.runtime import Runtime

    rt = Runtime(db=Database(url))
    rng = random.Random(7)
    dues = [1.0 + rng.uniform(0, spread) for _ in range(n)]
    t0 = time.monotonic()

    def work(part: list[float]) -> None:
        for offset in part:
            due = (datetime.now(UTC) + timedelta(seconds=offset)).isoformat()
            instances.start(rt, actor="bench", key="bench_timer", variables={"due": due})

    threads = [threading.Thread(target=work, args=(dues[i::starters],)) for i in range(starters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rt.db.dispose()
    return time.monotonic() - t0


def outcome(url: str) -> dict[str, Any]:
    """Per instance: how many times its timer fired, and the lateness of the first firing."""
    from sqlalchemy import select

    from engine.db import Database
    from engine.models import AuditEvent, ProcessInstance

    db = Database(url)
    try:
        with db.session() as s:
            ids = list(s.scalars(select(ProcessInstance.id)))
            fired: dict[str, list[float]] = {i: [] for i in ids}
            for iid, at, details in s.execute(select(AuditEvent.instance_id, AuditEvent.at, AuditEvent.details)
                                              .where(AuditEvent.action == "timer.fired")):
                fired[iid].append((at - datetime.fromisoformat(details["deadline"])).total_seconds() * 1000)
    finally:
        db.dispose()
    late = [v[0] for v in fired.values() if v]
    return {"instances": len(ids), "fired_once": sum(len(v) == 1 for v in fired.values()),
            "never_fired": sum(not v for v in fired.values()),
            "fired_twice_or_more": sum(len(v) > 1 for v in fired.values()),
            "lateness_ms": {**_common.summary(late), "max_ms": _common.rnd(max(late, default=None))}}


def pending(url: str) -> int:
    from sqlalchemy import func, select

    from engine.db import Database
    from engine.models import ProcessInstance

    db = Database(url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).where(ProcessInstance.status == "running")) or 0
    finally:
        db.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__.split("\n")[0])
    ap.add_argument("--instances", type=int, default=3000)
    ap.add_argument("--spread", type=float, default=60.0, help="deadlines spread over this many seconds")
    ap.add_argument("--starters", type=int, default=2, help="threads starting instances")
    ap.add_argument("--scheduler-module", default="engine.scheduler")
    ap.add_argument("--run-scheduler", action="store_true", help=argparse.SUPPRESS)
    _common.add_scratch_options(ap, "GRIDLOOP_BENCH", DEFAULT_URL)
    args = ap.parse_args(argv)
    if args.run_scheduler:
        run_scheduler(args.database_url, args.scheduler_module)
        return 0
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(asctime)s %(message)s")
    log.setLevel(logging.INFO)  # the library logs every task state change at INFO
    _common.interrupt_on_sigterm()
    from engine import definitions
    from engine.db import Database
    from engine.runtime import Runtime

    _common.recreate_database(args.database_url, migrate=True)
    rt = Runtime(db=Database(args.database_url))
    definitions.deploy(rt, MODEL, "bench")
    rt.db.dispose()
    sched = subprocess.Popen([sys.executable, "-m", "bench.timers", "--run-scheduler", "--database-url",
                              args.database_url, "--scheduler-module", args.scheduler_module],
                             cwd=_common.ROOT, env=os.environ.copy(), start_new_session=True)
    try:
        time.sleep(2.0)  # let it take the lock
        log.info("starting %d instances, deadlines over %.0f s", args.instances, args.spread)
        start_s = time.monotonic()
        starting = start_all(args.database_url, args.instances, args.spread, args.starters)
        log.info("started in %.1f s; waiting for the timers", starting)
        deadline = start_s + starting + args.spread + 30.0
        while time.monotonic() < deadline and pending(args.database_url):
            time.sleep(1.0)
    finally:
        sched.send_signal(signal.SIGTERM)
        try:
            sched.wait(15)
        except subprocess.TimeoutExpired:
            sched.kill()
    result = {"scheduler": args.scheduler_module, "spread_s": args.spread, "starters": args.starters,
              "start_wall_s": round(starting, 1), "starts_per_s": round(args.instances / starting, 1),
              **outcome(args.database_url), "loadavg": os.getloadavg()}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
