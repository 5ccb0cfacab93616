"""The HJ 212 TCP ingest end to end (bench/ingest.py uses `measure`; run alone it prints JSON): a
real `gridloop ingest` process on PostgreSQL (a scratch database, or --database-url), N loggers
registered as monitoring sources, each on its own connection sending real-time packets that ask for
an ack (integrations.ingest.drive).

    .venv/bin/python -m bench._ingest_tcp --connections 50 --packets 200 --window 1 --window 16

window 1 is what data loggers do (stop and wait: the ack latency); a larger window measures
throughput. The server runs in its own process so that the load driver does not share its CPU time
(GIL) with it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._common import Processes, free_port, gridloop_argv, scratch_database, wait_for_port
from integrations.ingest import drive

log = logging.getLogger("bench.ingest")


def register(url: str, count: int, password: str = "123456") -> list[tuple[str, str]]:
    from api import database
    from engine.db import Database
    from workflows.sources import MonitoringSource

    db = Database(url)
    database.upgrade(db)
    now = datetime.now(UTC)
    devices = [(f"BENCH{i:019d}", password) for i in range(count)]
    with db.transaction() as s:
        for mn, pw in devices:
            if s.get(MonitoringSource, mn) is None:
                s.add(MonitoringSource(mn=mn, tenant="320700", kind="outlet", name=mn, password=pw, created_at=now))
    db.dispose()
    return devices


def measure(url: str, *, connections: int = 50, packets: int = 200, readings: int = 7,
            windows: tuple[int, ...] = (1,)) -> list[dict]:
    """Start `gridloop ingest` on `url`, run one load per window, stop it with SIGTERM; the results."""
    devices = register(url, connections)
    port = free_port()
    env = {**os.environ, "GRIDLOOP_DATABASE_URL": url, "GRIDLOOP_INGEST_PORT": str(port),
           "GRIDLOOP_SECRET_KEY": "bench", "GRIDLOOP_LOG_LEVEL": "WARNING", "GRIDLOOP_REDIS_URL": ""}
    log_dir = Path(tempfile.mkdtemp(prefix="gridloop-bench-ingest-tcp-"))
    procs = Processes(log_dir, log)
    ok = False
    try:
        procs.start("ingest", gridloop_argv("ingest"), env)
        wait_for_port(port, procs)
        results = []
        for n, window in enumerate(windows):
            start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n)  # new data times: nothing deduplicated
            result = asyncio.run(drive("127.0.0.1", port, devices, packets=packets, readings=readings,
                                       window=window, start=start))
            results.append({"window": window, **result.as_dict()})
        ok = True
        return results
    finally:
        procs.stop(timeout_s=60)
        if ok:
            shutil.rmtree(log_dir, ignore_errors=True)
        else:
            log.warning("gridloop ingest log kept in %s", log_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a scratch PostgreSQL database")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--packets", type=int, default=200, help="per connection")
    parser.add_argument("--readings", type=int, default=7, help="per packet")
    parser.add_argument("--window", type=int, action="append", help="unacknowledged packets per connection")
    a = parser.parse_args()
    url = a.database_url or scratch_database("gridloop_ingest_bench")
    for result in measure(url, connections=a.connections, packets=a.packets, readings=a.readings,
                          windows=tuple(a.window or [1])):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
