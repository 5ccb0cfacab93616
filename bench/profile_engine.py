"""Profile one durable worker on the reference loop with cProfile.

    python -m bench.profile_engine [--loops 200] [--out /tmp/gridloop_engine.prof]
    py-spy record -f raw -o /tmp/spy.txt -- python -m bench.profile_engine --no-cprofile --loops 600

Re-creates the benchmark database (as bench.engine), runs a short warm-up, then `--loops` loops in
this process under cProfile. Writes the raw stats to `--out` (open with `python -m pstats FILE` or
snakeviz) and prints a summary to stdout: time by package (self time), the top functions by
cumulative time inside engine/ and SQLAlchemy, and the top functions by self time.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import sys
import time
import uuid
from collections import defaultdict

from bench.engine import DEFAULT_URL, Driver, _sa_url, make_runtime, recreate_database

PACKAGES = (
    ("SpiffWorkflow", "/SpiffWorkflow/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("psycopg", "/psycopg"),
    ("RestrictedPython", "/RestrictedPython/"),
    ("engine", "/engine/"),
    ("bench", "/bench/"),
    ("json", "/json/"),
    ("uuid", "/uuid.py"),
    ("datetime/_strptime", "datetime"),
    ("logging", "/logging/"),
    ("copy", "/copy.py"),
)


def package_of(filename: str) -> str:
    for name, needle in PACKAGES:
        if needle in filename:
            return name
    if filename.startswith("~") or filename == "~":
        return "builtins (C)"
    return "other stdlib/python"


def fmt(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    for marker in ("/site-packages/", "/work/main/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})" if line else name


def summarize(stats: pstats.Stats, total_s: float, loops: int, top: int, out) -> None:
    raw = stats.stats  # {func: (cc, nc, tt, ct, callers)}
    by_pkg: dict[str, float] = defaultdict(float)
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        by_pkg[package_of(func[0])] += tt
    profiled = sum(by_pkg.values())
    print(f"profiled {loops} loops in {total_s:.2f}s wall ({1000 * total_s / loops:.1f} ms/loop under "
          f"cProfile); self time {profiled:.2f}s", file=out)
    print("\n== self time by package ==", file=out)
    for name, tt in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"  {name:24s} {tt:7.2f}s  {100 * tt / profiled:5.1f}%  {1000 * tt / loops:6.2f} ms/loop", file=out)

    def table(title: str, keep, key) -> None:
        print(f"\n== {title} ==", file=out)
        print(f"  {'cum s':>7} {'cum%':>6} {'self s':>7} {'calls/loop':>10}  function", file=out)
        rows = [(func, v) for func, v in raw.items() if keep(func)]
        rows.sort(key=lambda fv: -key(fv[1]))
        for func, (_cc, nc, tt, ct, _callers) in rows[:top]:
            print(f"  {ct:7.2f} {100 * ct / profiled:5.1f}% {tt:7.2f} {nc / loops:10.1f}  {fmt(func)}", file=out)

    table("cumulative time, engine/ functions", lambda f: "/engine/" in f[0] and "/bench/" not in f[0],
          key=lambda v: v[3])
    table("cumulative time, SQLAlchemy functions", lambda f: "/sqlalchemy/" in f[0], key=lambda v: v[3])
    table("cumulative time, SpiffWorkflow functions", lambda f: "/SpiffWorkflow/" in f[0], key=lambda v: v[3])
    table("self time, all functions", lambda f: True, key=lambda v: v[2])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile_engine", description=__doc__.split("\n")[0])
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default="/tmp/gridloop_engine.prof")
    ap.add_argument("--database-url", default=os.environ.get("GRIDLOOP_BENCH_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--no-cprofile", action="store_true",
                    help="run the loops without cProfile (to attach a sampling profiler such as py-spy)")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    url = _sa_url(args.database_url)
    recreate_database(url)
    rt = make_runtime(url)
    tag = uuid.uuid4().hex[:8]
    warm = Driver(rt, f"{tag}-warm")
    for i in range(args.warmup):
        warm.loop(i)
    drv = Driver(rt, tag)
    if args.no_cprofile:
        t0 = time.perf_counter()
        for i in range(args.loops):
            drv.loop(i)
        total = time.perf_counter() - t0
        rt.db.dispose()
        print(f"{args.loops} loops in {total:.2f}s ({1000 * total / args.loops:.1f} ms/loop)")
        return 0
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for i in range(args.loops):
        drv.loop(i)
    prof.disable()
    total = time.perf_counter() - t0
    rt.db.dispose()
    prof.dump_stats(args.out)
    stats = pstats.Stats(args.out)
    summarize(stats, total, args.loops, args.top, sys.stdout)
    print(f"\nraw stats: {args.out}", file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
