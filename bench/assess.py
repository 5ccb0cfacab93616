"""The monthly evaluation of a city (考核评价) on PostgreSQL: how long the indicators and the scored
evaluations of one month take with `--cases` cases over a year and `--inspectors` inspectors.

    python -m bench.assess [--cases 1000000] [--inspectors 400] [--database-url URL]

The city is bulk-loaded with COPY (a grid tree city → 6 districts → towns → one unit per inspector,
the people with departments, and the cases: finished ones as env_case + case_assessment rows, the
last fortnight's and a few stragglers open). Then, with `now` in mid-December 2026, it times the
finished month (November) and the running one (December, open cases counted live) grouped by
district, by inspector and by department, each the best of `--repeat` runs — first with the
period indexes of case_assessment dropped, then with them. Prints JSON."""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from bench import _common

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_assess"
TENANT = "320700"
NOW = datetime(2026, 12, 15, 4, 0, tzinfo=UTC)
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
INDEXES = {"ix_assessment_tenant_closed": "(tenant, closed_at)", "ix_assessment_tenant_due": "(tenant, due_at)",
           "ix_assessment_tenant_filed": "(tenant, filed_at)"}
LIMITS = ('{"assignees": ["insp-%d"], "limits": {"review": [30, "working"], "dispatch": [30, "working"], '
          '"sign_for": [120, "working"], "handle": [960, "working"], "feedback": [960, "working"], '
          '"verify": [480, "working"]}}')


def _copy(conn: Any, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    buf = io.StringIO()
    for row in rows:
        buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    buf.seek(0)
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := buf.read(1 << 20):
            copy.write(chunk)


def build(url: str, cases: int, inspectors: int, seed: int = 7) -> dict[str, Any]:
    """Load the city; answers what was loaded and how long it took."""
    import psycopg

    rnd = random.Random(seed)
    started = time.perf_counter()
    units = []
    grids: list[list[Any]] = [[TENANT, TENANT, "city", None]]
    for d in range(6):
        district = f"3207{d + 2:02d}"
        grids.append([district, district, "district", TENANT])
        for t in range(max(1, inspectors // 60)):
            town = f"{district}{t + 1:03d}"
            grids.append([town, town, "town", district])
    towns = [g[0] for g in grids if g[2] == "town"]
    for i in range(inspectors):
        unit = f"{towns[i % len(towns)]}{i + 1:03d}"
        grids.append([unit, unit, "unit", towns[i % len(towns)]])
        units.append(unit)
    pg = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(pg) as conn:
        stamp = "2025-01-01 00:00:00+00"
        _copy(conn, "grid", ["tenant", "code", "name", "level", "parent_code", "valid_from", "geometry", "min_lon",
                             "min_lat", "max_lon", "max_lat"],
              [[TENANT, code, name, level, parent, stamp, "{}", 0, 0, 0, 0] for code, name, level, parent in grids])
        _copy(conn, "department", ["code", "tenant", "name"], [[f"dept-{k}", TENANT, f"部门{k}"] for k in range(4)])
        _copy(conn, "person", ["tenant", "username", "name", "post", "grid_code", "department_code", "active"],
              [[TENANT, f"insp-{i}", f"网格员{i}", "inspector", units[i], f"dept-{i % 4}", True]
               for i in range(inspectors)] +
              [[TENANT, f"sup-{d}", f"值班长{d}", "supervisor", f"3207{d + 2:02d}", None, True] for d in range(6)])
        span = (NOW - YEAR_START).total_seconds()
        case_rows, record_rows = [], []
        for n in range(cases):
            filed = YEAR_START + timedelta(seconds=span * n / cases)
            i = rnd.randrange(inspectors)
            cid = f"C{n:08d}"
            due = filed + timedelta(hours=rnd.choice((8, 24, 48, 72)))
            recent = NOW - filed < timedelta(days=14)
            still_open = (recent and rnd.random() < 0.6) or rnd.random() < 0.003
            outcome = "closed" if rnd.random() < 0.95 else rnd.choice(("invalid", "merged"))
            closed = filed + timedelta(hours=rnd.expovariate(1 / 30))
            if not still_open and closed > NOW:
                closed = NOW - timedelta(minutes=1)
            base = [cid, TENANT, rnd.choice(("monitoring", "citizen", "petition", "device")), cid, "noise",
                    units[i], "bench", False, 1, filed, filed, '{}' if not still_open else LIMITS % i, filed]
            if still_open:
                case_rows.append([*base, "open", None, None])
                continue
            case_rows.append([*base, "closed", outcome, closed])
            on_time = closed <= due
            valid = outcome == "closed"
            record_rows.append([
                cid, TENANT, units[i], "noise", base[2], f"insp-{i}", outcome, False, filed, closed,
                round((closed - filed).total_seconds() / 3600, 3), rnd.random() < 0.97,
                (rnd.random() < 0.96) if valid else None, (rnd.random() < 0.93) if valid else None,
                on_time if valid else None, (rnd.random() < 0.95) if valid else None, on_time if valid else None,
                int(rnd.random() < 0.04), int(rnd.random() < 0.02), int(rnd.random() < 0.03), 0, 0, 0, 0, 1, 0, 0,
                '{}', due if valid else None, (closed - timedelta(hours=1)) if valid else None,
                f"sup-{rnd.randrange(6)}", f"sup-{rnd.randrange(6)}" if valid else None,
                f"sup-{rnd.randrange(6)}" if valid else None])
        built = time.perf_counter()
        _copy(conn, "env_case", ["id", "tenant", "source", "external_id", "category", "grid_code", "route_reason",
                                 "urgent", "occurrences", "first_seen", "last_seen", "details", "created_at",
                                 "status", "outcome", "closed_at"], case_rows)
        _copy(conn, "case_assessment", [
            "case_id", "tenant", "grid_code", "category", "source", "inspector", "outcome", "violation", "filed_at",
            "closed_at", "lead_hours", "reviewed_on_time", "dispatched_on_time", "signed_on_time", "handled_on_time",
            "verified_on_time", "closed_on_time", "reworks", "returns", "extensions", "escalations", "reminders",
            "urges", "transfers", "occurrences", "deferrals", "deferred_seconds", "details", "due_at", "handled_at",
            "reviewer", "dispatcher", "verifier"], record_rows)
        conn.commit()
        conn.execute("ANALYZE env_case")
        conn.execute("ANALYZE case_assessment")
        conn.commit()
    return {"cases": cases, "finished": len(record_rows), "open": cases - len(record_rows), "inspectors": inspectors,
            "grids": len(grids), "generate_s": round(built - started, 1),
            "copy_s": round(time.perf_counter() - built, 1)}


def timed(db: Any, calendar: Any, repeat: int) -> dict[str, Any]:
    from workflows.evaluations import evaluate, period_of

    out: dict[str, Any] = {}
    for label in ("2026-11", "2026-12"):
        for by in (("region:district",), ("post:inspector",), ("department",)):
            best, groups, due = None, 0, 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                body = evaluate(db, calendar, TENANT, period_of(label), by, NOW)
                took = time.perf_counter() - t0
                best = took if best is None else min(best, took)
                groups, due = len(body["groups"]), sum(g["counts"]["due"] for g in body["groups"])
            out[f"{label} by {by[0]}"] = {"seconds": round(best or 0, 3), "groups": groups, "due": due}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--inspectors", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    _common.add_scratch_options(ap, "GRIDLOOP_BENCH_ASSESS", DEFAULT_URL)
    args = ap.parse_args()
    from engine.db import Database
    from workflows.working_time import WorkCalendar

    _common.recreate_database(args.database_url, migrate=True)
    loaded = build(args.database_url, args.cases, args.inspectors)
    db = Database(args.database_url)
    calendar = WorkCalendar(known_years=frozenset({2026}))  # weekends only: this bench is about the queries
    try:
        with db.engine.begin() as conn:
            for name in INDEXES:
                conn.execute(text(f"DROP INDEX {name}"))
        without = timed(db, calendar, args.repeat)
        t0 = time.perf_counter()
        with db.engine.begin() as conn:
            for name, columns in INDEXES.items():
                conn.execute(text(f"CREATE INDEX {name} ON case_assessment {columns}"))
            conn.execute(text("ANALYZE case_assessment"))
        index_s = time.perf_counter() - t0
        with_indexes = timed(db, calendar, args.repeat)
    finally:
        db.dispose()
    print(json.dumps({"bench": "assess", "now": NOW.isoformat(), "loaded": loaded,
                      "index_build_s": round(index_s, 1), "without_period_indexes": without,
                      "with_period_indexes": with_indexes}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
