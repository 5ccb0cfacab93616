"""Ingest benchmark: HJ 212 parsing and threshold rules, TCP ingest, and the storm replay.

    python -m bench.ingest [--quick] [--sources 2000] [--minutes 1440] [--skip-tcp]

Prints ONE JSON line on stdout (progress goes to stderr):

* `parse_packets_per_s`: one core parses minute packets (CN 2051, two pollutants) and runs the
  threshold rules on them in batches of 1,000 against PostgreSQL (rule state read and written as
  in production; readings not stored), the second pass over the same packets — a server's steady
  state, on prepared statements and their generic plans (the first pass: `…_first_pass`);
  `parse_only_packets_per_s` without the rules, and beside them the ceiling of the same run,
  `split_only_packets_per_s` (only cutting the same packets at `;` and `,`);
* `tcp_*`: a real `gridloop ingest` process, 50 concurrent logger connections sending real-time
  packets that ask for a 9014 ack — stop-and-wait as loggers do (ack latency p50/p99) and with 16
  unacknowledged packets per connection (throughput); the packets are stored and the rules run;
* the storm replay: one day of minute data for `--sources` sources (2,000 × 1,440 = 2.88 million
  packets) through the real path — parse (two processes), store (COPY) and rules in one
  transaction per chunk, then the `alarm.file` jobs filing cases through env_case — with a few hundred
  exceedance and device-fault episodes planted; `storm_cases_opened` must equal
  `storm_cases_expected` (one case per source, pollutant and alarm type; later episodes of the same
  open case are occurrences, `storm_occurrences` = episodes). The packets are encoded beforehand,
  outside the timed replay (`storm_encode_s`): that is the loggers' work. Beside it, the database's own rate
  for readings in the same run (`db_insert_rows_per_s`: stored readings copied server side into a
  table with the same indexes) and what storing alone would take at that rate (`storm_store_floor_s`).

The databases `gridloop_bench_ingest` (and `_parse`, `_tcp`; `--db-name`) on 127.0.0.1 are dropped and
re-created, migrated, seeded with the demo city and the bundled models deployed.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import pickle
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench._common import scratch_database

log = logging.getLogger("bench.ingest")

DB_NAME = "gridloop_bench_ingest"
DAY = datetime(2026, 3, 2, tzinfo=UTC) - timedelta(hours=8)  # 2026-03-02 00:00 China time
LIMIT = Decimal("100")  # a21026 (SO2) minute-average limit, mg/m3, hysteresis 10 %: clear below 90
PW = "123456"
CHUNK_MINUTES = 60  # packets are generated, parsed and stored an hour of the day at a time


@dataclass(frozen=True)
class Plan:
    """Which sources misbehave when (minute of the day, length), fixed by the seed."""

    sources: int
    exceed: dict[int, list[tuple[int, int]]]  # source → exceedance episodes
    faults: dict[int, tuple[int, int]]  # source → one device-fault (D flag) episode

    @classmethod
    def make(cls, sources: int, minutes: int, seed: int = 212) -> Plan:
        rng = random.Random(seed)
        chosen = rng.sample(range(sources), k=min(sources, max(1, sources * 17 // 100)))
        n_exceed = len(chosen) * 15 // 17  # ~15 % of the sources exceed, ~2 % have a device fault
        exceed: dict[int, list[tuple[int, int]]] = {}
        for i, source in enumerate(chosen[:n_exceed]):
            start = rng.randrange(0, max(1, minutes - 240))
            episodes = [(start, rng.randint(5, 30))]
            if i % 5 == 0:  # a fifth exceed again later: an occurrence of the still open case
                episodes.append((start + 200, rng.randint(5, 30)))
            exceed[source] = [(s, n) for s, n in episodes if s + n < minutes]
        faults = {source: (rng.randrange(0, max(1, minutes - 20)), 10) for source in chosen[n_exceed:]}
        return cls(sources, exceed, faults)

    def value(self, source: int, minute: int) -> tuple[str, str]:
        """(a21026 minute average, its flag) of `source` at `minute`."""
        for start, length in self.exceed.get(source, ()):
            if start <= minute < start + length:
                # over the limit, hovering back to 95–99 on every third minute: still one episode
                return (f"{95 + (minute % 5)}.5" if (minute - start) % 3 == 2 else f"{130 + (minute % 50)}.0"), "N"
        fault = self.faults.get(source)
        if fault and fault[0] <= minute < fault[0] + fault[1]:
            return "0.0", "D"
        return f"{20 + (source * 7 + minute) % 40}.0", "N"

    @property
    def expected_cases(self) -> int:
        return sum(1 for e in self.exceed.values() if e) + len(self.faults)

    @property
    def expected_episodes(self) -> int:
        return sum(len(e) for e in self.exceed.values()) + len(self.faults)


def mn_of(source: int) -> str:
    return f"BENCHMN{source:017d}"


def packets_for(plan: Plan, minutes: range) -> list[bytes]:
    from integrations.hj212 import Flag, encode
    from integrations.hj212.times import format_qn

    frames = []
    for minute in minutes:
        at = DAY + timedelta(minutes=minute)
        qn = format_qn(at + timedelta(seconds=30))
        for source in range(plan.sources):
            value, flag = plan.value(source, minute)
            cp = {"DataTime": at, "a21026-Avg": value, "a21026-Flag": flag,
                  "a34013-Avg": f"{5 + source % 9}.1", "a34013-Flag": "N"}
            frames.append(encode(st="31", cn="2051", pw=PW, mn=mn_of(source), qn=qn, flag=Flag(), cp=cp))
    return frames


def encode_chunk(args: tuple[Plan, int, int, str]) -> str:
    """In a pool process, before the clock starts: the packets of minutes [lo, hi) as the loggers
    send them, written to `path` (encoding is the loggers' work, not the server's)."""
    plan, lo, hi, path = args
    with open(path, "wb") as f:
        pickle.dump(packets_for(plan, range(lo, hi)), f, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def parse_chunk(path: str) -> list[tuple]:
    """In a pool process: the packets of one encoded chunk, parsed as ingest would."""
    from integrations.hj212 import parse
    from integrations.ingest.records import readings_of

    with open(path, "rb") as f:
        frames = pickle.load(f)
    rows = []
    for frame in frames:
        for r in readings_of(parse(frame)):
            rows.append((r["mn"], r["pollutant"], r["cn"], r["kind"], str(r["value"]), r["flag"], r["data_time"]))
    return rows


def _bounded(pool, func, items: list, ahead: int):
    """`pool.imap(func, items)` with at most `ahead` results waiting: parsed chunks piling up in
    this process (millions of objects) would slow its garbage collector, which a server streaming
    its packets never meets."""
    pending = [pool.apply_async(func, (item,)) for item in items[:ahead]]
    for item in items[ahead:]:
        yield pending.pop(0).get()
        pending.append(pool.apply_async(func, (item,)))
    for result in pending:
        yield result.get()


def setup(url: str, sources: int):
    """Migrated database, demo city, bundled models, the sources with their SO2 limit; the runtime."""
    from api.settings import Settings
    from api.wiring import make_runtime, prepare_database
    from workflows.grids import Grid, point_inside
    from workflows.sources import MonitoringSource, PollutantLimit

    settings = Settings(database_url=url, secret_key="bench", seed_demo=True, storage_dir="/tmp/gridloop-bench")
    rt = make_runtime(settings)
    prepare_database(rt, settings)
    from sqlalchemy import select

    with rt.db.session() as s:
        units = list(s.scalars(select(Grid.code).where(Grid.level == "unit", Grid.valid_to.is_(None))
                               .order_by(Grid.code)))
    places = [point_inside(rt.db, u) for u in units]
    now = rt.clock.now()
    with rt.db.transaction() as s:
        for i in range(sources):
            lon, lat = places[i % len(places)]
            s.add(MonitoringSource(mn=mn_of(i), tenant="320700", kind="outlet", name=f"排口{i}", lon=lon, lat=lat,
                                   grid_code=units[i % len(units)], password=PW, offline_after_s=86400 * 365,
                                   created_at=now))
        s.flush()
        for i in range(sources):
            s.add(PollutantLimit(mn=mn_of(i), pollutant="a21026", data_kind="minute", limit_value=LIMIT,
                                 unit="mg/m3", hysteresis=0.1))
    return rt


def measure_parse(rt, packets: int) -> dict:
    """One core: parse (and the rules, against the database) of `packets` minute packets."""
    from integrations.hj212 import parse
    from integrations.ingest.records import readings_of
    from workflows.monitoring_rules import evaluate
    from workflows.readings import ReadingRow

    plan = Plan.make(min(2000, packets), 1)
    frames = packets_for(plan, range(max(1, packets // plan.sources)))
    t0 = time.perf_counter()
    for frame in frames:  # the ceiling: only cutting the same packets into their fields
        for item in frame[6:-6].split(b";"):
            item.split(b",")
    split_only = len(frames) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for frame in frames:
        readings_of(parse(frame))
    parse_only = len(frames) / (time.perf_counter() - t0)

    def with_rules() -> float:
        t0 = time.perf_counter()
        for i in range(0, len(frames), 1000):
            now = rt.clock.now()
            rows = [ReadingRow(received_at=now, **r) for f in frames[i:i + 1000] for r in readings_of(parse(f))]
            with rt.db.transaction() as s:
                evaluate(s, now, rows)
        return len(frames) / (time.perf_counter() - t0)

    # twice: a server runs all day on prepared statements and the generic plans PostgreSQL settles on
    # after a few runs of each, which the first pass (new statements, custom plans) does not see
    cold, steady = with_rules(), with_rules()
    return {"parse_only_packets_per_s": round(parse_only), "parse_packets_per_s": round(steady),
            "parse_packets_per_s_first_pass": round(cold), "parse_packets": len(frames),
            "split_only_packets_per_s": round(split_only)}


def db_insert_ceiling(rt, rows: int = 240_000) -> dict:
    """The database's own rate for readings in this run: `rows` stored readings copied, server side
    only, into a table like `reading` (same indexes) — what storing cannot beat."""
    from sqlalchemy import text

    with rt.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS reading_ceiling"))
        conn.execute(text("CREATE TABLE reading_ceiling (LIKE reading INCLUDING ALL)"))
        conn.execute(text("CREATE TEMPORARY TABLE ceiling_in ON COMMIT DROP AS SELECT mn, pollutant, cn, kind, "
                          "value, flag, data_time, received_at FROM reading ORDER BY id LIMIT :n"), {"n": rows})
        t0 = time.perf_counter()
        copied = conn.execute(text("INSERT INTO reading_ceiling (mn, pollutant, cn, kind, value, flag, data_time, "
                                   "received_at) SELECT * FROM ceiling_in ON CONFLICT DO NOTHING")).rowcount
        elapsed = time.perf_counter() - t0
        conn.execute(text("DROP TABLE reading_ceiling"))
    return {"db_insert_rows_per_s": round(copied / elapsed) if elapsed else None}


def storm(rt, sources: int, minutes: int, processes: int) -> dict:
    from sqlalchemy import func, select

    from engine import outbox
    from engine.queues import ManualJobQueue
    from workflows.cases import Case
    from workflows.readings import ReadingRow, intake_for

    plan = Plan.make(sources, minutes)
    intake = intake_for(rt.db, rt.clock)
    stored = 0
    with tempfile.TemporaryDirectory(prefix="gridloop-storm-") as scratch, \
            mp.get_context("spawn").Pool(processes) as pool:
        chunks = [(plan, lo, min(lo + CHUNK_MINUTES, minutes), os.path.join(scratch, f"{lo}.pickle"))
                  for lo in range(0, minutes, CHUNK_MINUTES)]
        e0 = time.perf_counter()
        paths = pool.map(encode_chunk, chunks)
        encode_s = time.perf_counter() - e0
        log.info("storm: %d packets encoded in %.1f s (not timed)", sources * minutes, encode_s)
        t0 = time.perf_counter()
        for n, rows in enumerate(_bounded(pool, parse_chunk, paths, ahead=processes), 1):
            now = rt.clock.now()
            stored += intake.accept([ReadingRow(mn=m, pollutant=p, cn=c, kind=k, value=Decimal(v), flag=f,
                                                data_time=t, received_at=now) for m, p, c, k, v, f, t in rows])
            log.info("storm: chunk %d/%d stored (%d readings so far)", n, len(chunks), stored)
        ingest_s = time.perf_counter() - t0
    jobs = ManualJobQueue(rt)
    alarms = 0
    while outbox.relay(rt, jobs, limit=500):
        alarms += jobs.run_all()
    total_s = time.perf_counter() - t0
    ours = Case.source_ref.like("BENCHMN%")  # not the demo city's own cases
    with rt.db.session() as s:
        opened = s.scalar(select(func.count()).where(ours))
        occurrences = s.scalar(select(func.coalesce(func.sum(Case.occurrences), 0)).where(ours))
    return {"storm_packets": sources * minutes, "storm_encode_s": round(encode_s, 1),
            "storm_readings": stored, "storm_ingest_s": round(ingest_s, 1),
            "storm_s": round(total_s, 1), "storm_packets_per_s": round(sources * minutes / ingest_s),
            "storm_jobs_run": alarms, "storm_cases_opened": opened, "storm_cases_expected": plan.expected_cases,
            "storm_occurrences": int(occurrences), "storm_episodes_expected": plan.expected_episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 sources, 6 hours, fewer TCP packets")
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--minutes", type=int, default=1440)
    parser.add_argument("--processes", type=int, default=2, help="parsing processes of the storm replay")
    parser.add_argument("--skip-tcp", action="store_true")
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--db-name", default=DB_NAME, help="scratch databases <name>, <name>_parse, <name>_tcp "
                        "(dropped and re-created)")
    a = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    sources, minutes = (200, 360) if a.quick else (a.sources, a.minutes)
    out: dict = {"sources": sources, "minutes": minutes, "cpus": mp.cpu_count()}
    log.info("parse + rules on one core (a database of its own: its rule state and alarms stay there)")
    parse_rt = setup(scratch_database(a.db_name + "_parse", a.pg_admin), 2000)
    out.update(measure_parse(parse_rt, 5_000 if a.quick else 20_000))
    parse_rt.db.dispose()
    rt = setup(scratch_database(a.db_name, a.pg_admin), sources)
    log.info("storm replay: %d packets", sources * minutes)
    out.update(storm(rt, sources, minutes, a.processes))
    out["storm_ok"] = out["storm_cases_opened"] == out["storm_cases_expected"]
    out.update(db_insert_ceiling(rt))
    if out["db_insert_rows_per_s"]:  # storing alone, at the database's own rate, would take this long
        out["storm_store_floor_s"] = round(out["storm_readings"] / out["db_insert_rows_per_s"], 1)
    if not a.skip_tcp:
        from bench._ingest_tcp import measure

        log.info("TCP ingest, 50 connections")
        tcp_url = scratch_database(a.db_name + "_tcp", a.pg_admin)
        for result in measure(tcp_url, connections=50, packets=40 if a.quick else 200, windows=(1, 16)):
            key = f"tcp_w{result['window']}"
            out[f"{key}_packets_per_s"] = result.get("packets_per_s")
            out[f"{key}_ack_ms_p50"] = result.get("ack_p50_ms")
            out[f"{key}_ack_ms_p99"] = result.get("ack_p99_ms")
            out[f"{key}_failed_connections"] = result.get("failed_connections")
    rt.db.dispose()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
