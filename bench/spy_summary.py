"""Summarise a py-spy raw (collapsed-stack) profile of bench.profile_engine --no-cprofile.

    py-spy record -r 250 -f raw -o /tmp/spy.txt -- python -m bench.profile_engine --no-cprofile --loops 600
    python -m bench.spy_summary /tmp/spy.txt [--within Driver.loop] [--top 30]

Only samples whose stack contains `--within` count (default: the measured loops). Prints the share
of samples by package of the leaf frame (self time), and the inclusive share of the engine/,
SQLAlchemy and SpiffWorkflow functions on the stack.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")

PACKAGES = (
    ("SpiffWorkflow", "SpiffWorkflow/"),
    ("sqlalchemy", "sqlalchemy/"),
    ("psycopg", "psycopg"),
    ("RestrictedPython", "RestrictedPython/"),
    ("engine", "engine/"),
    ("bench", "bench/"),
    ("json", "json/"),
    ("uuid", "uuid.py"),
    ("logging", "logging/"),
)


def package_of(file: str) -> str:
    for name, needle in PACKAGES:
        if file.startswith(needle) or f"/{needle}" in file:
            return name
    return "other"


def parse(path: str):
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    for raw in lines:
        if not raw:
            continue
        stack, _, count = raw.rpartition(" ")
        frames = []
        for part in stack.split(";"):
            m = FRAME.match(part)
            frames.append((m.group("func"), m.group("file") or "", m.group("line")) if m else (part, "", None))
        yield frames, int(count)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--within", default="Driver.loop")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--leaves", type=int, default=0, help="also list the N functions with most self samples")
    args = ap.parse_args(argv)
    total = 0
    self_pkg: Counter[str] = Counter()
    self_func: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in parse(args.path):
        if not any(f[0] == args.within for f in frames):
            continue
        total += n
        self_pkg[package_of(frames[-1][1])] += n
        self_func[f"{frames[-1][0]} ({frames[-1][1]})"] += n
        seen = set()
        for func, file, _line in frames:
            key = f"{func} ({file})"
            if key not in seen:
                seen.add(key)
                inclusive[key] += n
    print(f"{total} samples within {args.within}")
    print("\n== self (leaf) samples by package ==")
    for name, n in self_pkg.most_common():
        print(f"  {name:18s} {100 * n / total:5.1f}%")
    if args.leaves:
        print("\n== self (leaf) samples by function ==")
        for key, n in self_func.most_common(args.leaves):
            print(f"  {100 * n / total:5.1f}%  {key}")
    for title, needle in (("engine/", "engine/"), ("SQLAlchemy", "sqlalchemy/"), ("SpiffWorkflow", "SpiffWorkflow/"),
                          ("psycopg", "psycopg/")):
        print(f"\n== inclusive share, {title} functions ==")
        rows = [(k, n) for k, n in inclusive.items() if f"({needle}" in k or f"/{needle}" in k]
        for k, n in sorted(rows, key=lambda kv: -kv[1])[: args.top]:
            print(f"  {100 * n / total:5.1f}%  {k}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
