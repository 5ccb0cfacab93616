"""Plumbing of `python -m bench.chaos`: a private PostgreSQL cluster and a private Redis that may be
restarted without hurting anyone else, server processes that may be SIGKILLed and started again, a
client that retries as a mobile app does, and an enforcement system that counts every push."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench._common import ROOT, free_port, tail
from bench._loop_support import JsonReplies

log = logging.getLogger("bench.chaos")


def _pg_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions:
        raise SystemExit("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return versions[-1].parent


def _as_postgres(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` account then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class PrivatePostgres:
    """A PostgreSQL cluster of our own in `base`/pg on a free loopback port (fsync on, as deployed)."""

    def __init__(self, base: Path) -> None:
        self.bin = _pg_bin()
        self.dir = base / "pg"
        self.port = free_port()
        self.restarts = 0

    def start(self) -> None:
        self.dir.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.dir.parent, "postgres")
            shutil.chown(self.dir, "postgres")
        subprocess.run(_as_postgres([str(self.bin / "initdb"), "-D", str(self.dir), "-U", "postgres", "-A", "trust",
                                     "-E", "UTF8", "--no-instructions"]), check=True, capture_output=True)
        with open(self.dir / "postgresql.conf", "a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                       "max_connections = 200\nshared_buffers = 64MB\n")
        self._ctl("start")

    def _ctl(self, *args: str) -> None:
        subprocess.run(_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "60",
                                     "-l", str(self.dir / "server.log"), *args]), check=True, capture_output=True)

    def restart(self) -> None:
        """An immediate stop (no checkpoint, as a crash: recovery replays the WAL), then a start."""
        self._ctl("-m", "immediate", "restart")
        self.restarts += 1

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._ctl("-m", "immediate", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"


class PrivateRedis:
    """A redis-server of our own on a free loopback port, without persistence: a restart loses every
    queued job, which the outbox's lease sweep must make good."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "redis"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        self.dir.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        import redis

        conn = redis.Redis(port=self.port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                conn.ping()
                return
            time.sleep(0.05)
        raise RuntimeError("the private redis-server did not start")

    def restart(self) -> None:
        self.stop()
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Servers:
    """The gridloop processes by name, each in its own process group; `kill` is SIGKILL to the group
    (gunicorn's workers, RQ's work horse go with it), `ensure` starts whatever is not running."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.argv: dict[str, list[str]] = {}
        self.procs: dict[str, subprocess.Popen] = {}
        self.kills: Counter = Counter()
        self.unexpected_exits: Counter = Counter()
        self.lock = threading.Lock()

    def add(self, name: str, argv: list[str]) -> None:
        self.argv[name] = argv
        self._start(name)

    def _start(self, name: str) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen(self.argv[name], env=self.env, cwd=ROOT, stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str) -> None:
        with self.lock:
            proc = self.procs[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            self.kills[name] += 1
            self._start(name)

    def ensure(self) -> None:
        """Start again any process that exited on its own (counted: a crash the chaos did not cause)."""
        with self.lock:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    log.warning("%s exited with %s; starting it again\n%s", name, proc.returncode,
                                tail(self.log_dir / f"{name}.log", 5))
                    self.unexpected_exits[name] += 1
                    self._start(name)

    def stop(self) -> None:
        with self.lock:
            for proc in self.procs.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in self.procs.values():
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)


# -- the client ------------------------------------------------------------------------------------

RETRY_CODES = {"in_progress"}  # a 409 that means "your earlier attempt is still running"


class Refused(RuntimeError):
    """A 4xx answer (not one a client retries)."""

    def __init__(self, status: int, body: Any, retried: bool) -> None:
        super().__init__(f"{status} {str(body)[:300]}")
        self.status, self.body, self.retried = status, body, retried


class RetryingClient:
    """One caller that retries as a mobile app does: the same Idempotency-Key for every attempt of a
    POST, again after a connection error or an answer cut short, a timeout, a 5xx, a 429 or a 409
    `in_progress`, with backoff, until `patience_s`. `retries` counts the attempts that were repeated."""

    def __init__(self, base: str, headers: dict[str, str], name: str, patience_s: float) -> None:
        import requests

        self.base, self.name, self.patience_s = base, name, patience_s
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.retries = 0

    def call(self, method: str, path: str, *, idempotent: bool = True, **kw) -> Any:
        import requests

        headers = dict(kw.pop("headers", {}))
        if method == "POST" and idempotent:
            headers.setdefault("Idempotency-Key", uuid.uuid4().hex)
        deadline, delay, attempts = time.monotonic() + self.patience_s, 0.2, 0
        while True:
            attempts += 1
            try:
                r = self.session.request(method, self.base + path, headers=headers, timeout=30, **kw)
                body = r.json() if r.content and r.headers.get("Content-Type", "").startswith("application/json") \
                    else r.text
                if r.status_code < 400:
                    return body
                error = body.get("error") if isinstance(body, dict) else None
                code = error.get("code") if isinstance(error, dict) else None
                if r.status_code < 500 and r.status_code != 429 and code not in RETRY_CODES:
                    raise Refused(r.status_code, body, attempts > 1)
                problem = f"{r.status_code} {code or ''}"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
                problem = type(exc).__name__  # ChunkedEncodingError: the answer was cut short (its web process killed)
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"{method} {path} as {self.name}: gave up after {attempts} attempts ({problem})")
            self.retries += 1
            time.sleep(delay)
            delay = min(2.0, delay * 1.6)
            for f in kw.get("files", {}).values():  # a file object is read by the first attempt
                if len(f) > 1 and hasattr(f[1], "seek"):
                    f[1].seek(0)

    def close(self) -> None:
        self.session.close()


def login(base: str, username: str, password: str, patience_s: float) -> RetryingClient:
    anon = RetryingClient(base, {}, "anonymous", patience_s)
    token = anon.call("POST", "/api/v1/auth/token", idempotent=False,
                      json={"username": username, "password": password})
    anon.close()
    return RetryingClient(base, {"Authorization": f"Bearer {token['access_token']}"}, username, patience_s)


# -- the enforcement system ------------------------------------------------------------------------

class CountingEnforcement:
    """A fake enforcement system on loopback (the push protocol of integrations/enforcement.py) that
    keeps every push: by case, the deliveries and the distinct Idempotency-Keys (a second key for a
    case is a second enforcement ticket: a duplicated push)."""

    def __init__(self, secret: str) -> None:
        from integrations.enforcement import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

        self.deliveries: Counter = Counter()
        self.keys: dict[str, set[str]] = defaultdict(set)
        self.tickets: dict[str, str] = {}
        self.bad_signatures = 0
        self._cond = threading.Condition()
        outer = self

        class Handler(JsonReplies):

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = self.headers.get(IDEMPOTENCY_HEADER, "")
                if not verify(secret, key, self.headers.get(TIMESTAMP_HEADER, ""),
                              self.headers.get(SIGNATURE_HEADER, ""), body):
                    outer.bad_signatures += 1
                    return self._send(401, {"error": "bad signature"})
                case_id = json.loads(body)["case_id"]
                with outer._cond:
                    outer.deliveries[case_id] += 1
                    outer.keys[case_id].add(key)
                    ticket = outer.tickets.setdefault(key, f"ZF-{len(outer.tickets) + 1:06d}")
                    outer._cond.notify_all()
                self._send(200, {"ticket": ticket})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/cases"
        threading.Thread(target=self.server.serve_forever, name="enforcement", daemon=True).start()

    def wait_for(self, case_id: str, timeout_s: float) -> str | None:
        """The ticket of `case_id`'s first push, or None after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self.keys.get(case_id):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 1.0))
            return self.tickets[next(iter(self.keys[case_id]))]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
