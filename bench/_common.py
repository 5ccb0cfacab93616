"""Helpers shared by the benchmarks: percentiles, scratch PostgreSQL databases, ports and the
`gridloop` subprocesses they start."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("GRIDLOOP_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


# -- statistics ------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float | None:
    """The `q` quantile (0..1) of `values`, interpolated linearly; None if there are none."""
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rnd(x: float | None, digits: int = 2) -> float | None:
    """`x` rounded to `digits`; None stays None."""
    return None if x is None else round(x, digits)


def summary(values: list[float]) -> dict[str, Any]:
    """p50 and p99 (ms, 2 decimals) and the count of `values`."""
    return {"p50_ms": rnd(pct(values, 0.50)), "p99_ms": rnd(pct(values, 0.99)), "n": len(values)}


# -- command line --------------------------------------------------------------------------------

def add_scratch_options(ap: argparse.ArgumentParser, env: str, database_url: str, redis_url: str | None = None) -> None:
    """--database-url (dropped and re-created) and, given a default, --redis-url (flushed); defaults
    from the environment variables `<env>_DATABASE_URL` and `<env>_REDIS_URL`."""
    ap.add_argument("--database-url", default=os.environ.get(f"{env}_DATABASE_URL", database_url),
                    help=f"benchmark database (dropped and re-created!); env {env}_DATABASE_URL")
    if redis_url is not None:
        ap.add_argument("--redis-url", default=os.environ.get(f"{env}_REDIS_URL", redis_url),
                        help=f"a Redis database of its own (flushed!); env {env}_REDIS_URL")


def interrupt_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt, so that `finally` blocks stop the subprocesses."""
    def handler(*_args: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


# -- databases -------------------------------------------------------------------------------------

def scratch_database(name: str, admin_url: str = PG_ADMIN) -> str:
    """Drop and create the database `name` through `admin_url` (a psycopg URL); its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing database name {name!r}")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False)


def recreate_database(url: str, *, migrate: bool = False) -> None:
    """Drop and re-create the database of SQLAlchemy `url` (through `postgres` on the same server);
    `migrate`: bring it to the current schema (api.database.upgrade)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    admin = u.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    scratch_database(u.database or "", admin)
    if migrate:
        from api import database
        from engine.db import Database

        db = Database(url)
        try:
            database.upgrade(db)
        finally:
            db.dispose()


# -- ports -----------------------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- processes -------------------------------------------------------------------------------------

def gridloop_argv(*args: str) -> list[str]:
    """The `gridloop` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "gridloop"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())", *args]


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of the log at `path`."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Processes:
    """Subprocesses started by a benchmark, each in its own session and process group (so that
    gunicorn's and RQ's children go with it) with its output in `<log_dir>/<name>.log`; stopped by
    their own ids: SIGTERM, then SIGKILL."""

    def __init__(self, log_dir: Path, log: logging.Logger) -> None:
        self.log_dir = log_dir
        self.log = log
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        path = self.log_dir / f"{name}.log"
        with open(path, "ab") as out:
            proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, path))
        self.log.info("started %s (pid %d, log %s)", name, proc.pid, path)
        return proc

    def check_alive(self) -> None:
        """Raise if any of them has exited, with the end of its log."""
        for name, proc, path in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; last log lines:\n{tail(path)}")

    def stop(self, timeout_s: float = 15) -> None:
        """SIGTERM to every group, SIGKILL to those still running after `timeout_s`, and to stragglers."""
        for _name, proc, _path in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the group this process leads: ours only
        deadline = time.monotonic() + timeout_s
        for name, proc, _path in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.warning("%s did not stop on SIGTERM; killing it", name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (a forked RQ work horse)
        self.procs.clear()

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{tail(path)}" for name, _proc, path in self.procs)


def wait_for_port(port: int, procs: Processes, timeout_s: float = 60, host: str = "127.0.0.1") -> None:
    """Wait until `host:port` accepts connections; raise if one of `procs` exits or after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            procs.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on {host}:{port} after {timeout_s}s\n{procs.tails()}") from None
            time.sleep(0.1)
