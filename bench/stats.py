"""Statistics queries (查询统计) on PostgreSQL: p50 and p99 of each query of the dashboard and the
statistics endpoint with `--cases` cases over 2026 and `--inspectors` inspectors.

    python -m bench.stats [--cases 1000000] [--inspectors 400] [--repeat 20] [--reuse]

The city is loaded by bench.assess's builder (COPY: a grid tree, people, finished cases with their
assessment records and the last fortnight's open ones); `--reuse` keeps a database already loaded
with as many cases. With `now` in mid-December 2026 it times a finished month, the running month and
the whole year under each grouping, as a leader, a district's supervisor and an inspector, through
the indexes the schema has (no pre-aggregated table). Prints JSON."""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from bench import _common
from bench.assess import NOW, TENANT, build

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridloop_bench_stats"
NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
DECEMBER = (date(2026, 12, 1), date(2026, 12, 31))
YEAR = (date(2026, 1, 1), date(2026, 12, 31))


def queries() -> list[tuple[str, str, tuple[date, date], dict[str, Any]]]:
    """(name, who, period, query fields)."""
    out: list[tuple[str, str, tuple[date, date], dict[str, Any]]] = []
    for by in ("category", "source", "inspector", "stage", "day"):
        out.append((f"month by {by}", "leader", NOVEMBER, {"by": by}))
    out += [("month by grid (city)", "leader", NOVEMBER, {"by": "grid"}),
            ("month by grid, parent=city", "leader", NOVEMBER, {"by": "grid", "parent": TENANT}),
            ("month by grid, parent=district", "leader", NOVEMBER, {"by": "grid", "parent": "320702"}),
            ("month by grid, parent=town", "leader", NOVEMBER, {"by": "grid", "parent": "320702001"}),
            ("month by category, grid=district", "leader", NOVEMBER, {"by": "category", "grid": "320702"}),
            ("running month by stage", "leader", DECEMBER, {"by": "stage"}),
            ("running month by grid, parent=city", "leader", DECEMBER, {"by": "grid", "parent": TENANT}),
            ("year by month", "leader", YEAR, {"by": "month"}),
            ("year by week", "leader", YEAR, {"by": "week"}),
            ("year by grid, parent=city", "leader", YEAR, {"by": "grid", "parent": TENANT}),
            ("supervisor: month by grid, parent=district", "supervisor", NOVEMBER, {"by": "grid",
                                                                                    "parent": "320702"}),
            ("inspector: year by month", "inspector", YEAR, {"by": "month"})]
    return out


def timed(db: Any, repeat: int) -> dict[str, Any]:
    from engine.visibility import Viewer
    from workflows.statistics import Query, statistics

    viewers = {"leader": Viewer("leader", frozenset({"leader"}), None, sees_all=True),
               "supervisor": Viewer("sup-0", frozenset({"supervisor"}), "320702", oversees=True),
               "inspector": Viewer("insp-7", frozenset({"inspector"}), None)}
    out: dict[str, Any] = {}
    for name, who, (first, last), fields in queries():
        q = Query(TENANT, first, last, **fields)
        times, body = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            body = statistics(db, q, viewers[who], NOW)
            times.append((time.perf_counter() - t0) * 1000)
        assert body is not None
        out[name] = {**_common.summary(times), "rows": len(body["rows"]), "filed": body["total"]["counts"]["filed"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1_000_000)
    ap.add_argument("--inspectors", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="keep the database when it holds --cases cases already")
    _common.add_scratch_options(ap, "GRIDLOOP_BENCH_STATS", DEFAULT_URL)
    args = ap.parse_args()
    from engine.db import Database

    loaded: dict[str, Any] = {"reused": True}
    have = None
    if args.reuse:
        db = Database(args.database_url)
        try:
            with db.engine.connect() as conn:
                have = conn.execute(text("SELECT count(*) FROM env_case")).scalar()
        except DBAPIError:  # no such database or table yet: load it
            have = None
        finally:
            db.dispose()
    if not args.reuse or have != args.cases:
        _common.recreate_database(args.database_url, migrate=True)
        loaded = build(args.database_url, args.cases, args.inspectors)
    db = Database(args.database_url)
    try:
        figures = timed(db, args.repeat)
    finally:
        db.dispose()
    print(json.dumps({"bench": "stats", "now": NOW.isoformat(), "loaded": loaded, "repeat": args.repeat,
                      "queries": figures}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
