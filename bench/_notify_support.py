"""Plumbing of `python -m bench.notify`: percentiles, the subprocesses it starts, and the fake Twilio
server (tests/notifications/fakes.py) run in a process of its own that records when each
notification's send request arrived."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.notify")

ROOT = Path(__file__).resolve().parent.parent


# -- statistics ------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float | None:
    s = sorted(values)
    if not s:
        return None
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rnd(x: float | None, digits: int = 1) -> float | None:
    return None if x is None else round(x, digits)


# -- processes -------------------------------------------------------------------------------------

class Processes:
    """Subprocesses started by the benchmark, each in its own process group (so that RQ's work
    horses go with their worker), stopped by their own ids: SIGTERM, then SIGKILL."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        path = self.log_dir / f"{name}.log"
        with open(path, "ab") as out:
            proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, proc, path))
        log.info("started %s (pid %d, log %s)", name, proc.pid, path)
        return proc

    def check_alive(self) -> None:
        for name, proc, path in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; last log lines:\n{tail(path)}")

    def stop(self) -> None:
        for _name, proc, _path in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)  # the group this process leads: ours only
        deadline = time.monotonic() + 15
        for name, proc, _path in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on SIGTERM; killing it", name)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (a forked work horse)
        self.procs.clear()

    def tails(self) -> str:
        return "\n".join(f"--- {name} ---\n{tail(path)}" for name, _proc, path in self.procs)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def gridloop_argv(*args: str) -> list[str]:
    """The `gridloop` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "gridloop"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from api.cli import main; sys.exit(main())", *args]


# -- the fake provider -----------------------------------------------------------------------------

def _fake_main(conn, account_sid: str, auth_token: str) -> None:
    """The child: FakeTwilio on loopback; every accepted message is recorded with time.time() at
    its arrival under the notification id taken from its StatusCallback URL."""
    from urllib.parse import parse_qsl, urlsplit

    from tests.notifications.fakes import FakeTwilio

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; ^C goes to the whole group

    class Recording(FakeTwilio):
        def __init__(self) -> None:
            super().__init__(account_sid, auth_token)
            self.arrivals: dict[str, list[float]] = {}
            self.other = 0

        def handle(self, request):  # called under self.lock, after the body was read
            at = time.time()
            reply = super().handle(request)
            if reply.status == 201:
                callback = request.form.get("StatusCallback", "")
                nid = dict(parse_qsl(urlsplit(callback).query)).get("notification_id")
                if nid:
                    self.arrivals.setdefault(nid, []).append(at)
                else:
                    self.other += 1
            return reply

    with Recording() as fake:
        conn.send(fake.url)
        while True:
            cmd = conn.recv()
            if cmd == "distinct":
                with fake.lock:
                    conn.send(len(fake.arrivals))
            elif cmd == "take":
                with fake.lock:
                    conn.send({"arrivals": fake.arrivals, "other": fake.other, "requests": len(fake.received)})
                    fake.arrivals, fake.other = {}, 0
                    fake.received.clear()
                    fake.messages.clear()
            else:
                conn.send(None)
                return


class FakeProvider:
    """The fake Twilio in a child process (its HTTP threads do not share our GIL)."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_fake_main, args=(child, account_sid, auth_token), name="fake-twilio",
                                 daemon=True)
        self._proc.start()
        if not self._conn.poll(30):
            self.close()
            raise RuntimeError("the fake Twilio server did not start")
        self.url: str = self._conn.recv()

    def _ask(self, cmd: str) -> Any:
        self._conn.send(cmd)
        if not self._conn.poll(30):
            raise RuntimeError(f"the fake Twilio server did not answer {cmd!r}")
        return self._conn.recv()

    def distinct(self) -> int:
        """How many notifications have arrived at least once."""
        return self._ask("distinct")

    def take(self) -> dict[str, Any]:
        """Arrivals by notification id (and requests without one) since the last take; resets."""
        return self._ask("take")

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(Exception):
                self._conn.send("stop")
                self._conn.poll(5)
            self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
