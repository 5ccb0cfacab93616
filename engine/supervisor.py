"""A tiny parent loop that keeps one child process running: `gridloop worker` in simple mode is this
loop around a long-lived worker, so a worker that makes way for a fresh one (after N jobs, past its
memory limit, after a timed-out job) or is ended by its watchdog is replaced at once, without
relying on an outside supervisor. SIGTERM/SIGINT are passed on to the child (RQ's warm shutdown:
the job in hand finishes) and nothing new is started."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STEADY_S = 60.0  # a child that ran this long resets the back-off
MAX_BACKOFF_S = 30.0


def supervise(child: Callable[[], int], *, respawn_at_once: frozenset[int] = frozenset({0})) -> int:
    """Run `child()` in a forked process, again and again, until this process is told to stop; answer
    0 then. A child that exits with a code in `respawn_at_once` (a clean recycle) is replaced at once;
    one that fails is replaced after a back-off doubling from 1 s to 30 s, so a worker that cannot
    start (database down, bad configuration) does not spin."""
    stopping = False
    current: int | None = None

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        if current is not None:
            _signal(current, signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    failures = 0
    parent = os.getpid()
    while not stopping:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _run_child(child, parent)
        current = pid
        if stopping:  # the signal came between the fork and `current`
            _signal(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        current = None
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            break
        if code in respawn_at_once:
            log.info("worker process %d exited (%d): starting a fresh one", pid, code)
            failures = 0
            continue
        failures = 0 if time.monotonic() - started >= STEADY_S else failures + 1
        delay = min(MAX_BACKOFF_S, 2.0 ** max(0, failures - 1)) if failures else 0.0
        log.error("worker process %d exited with %d: starting another in %.0f s", pid, code, delay,
                  extra={"exit_code": code})
        deadline = time.monotonic() + delay
        while not stopping and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def _run_child(child: Callable[[], int], parent: int) -> None:
    """The forked child: default signal handling (the child's own code installs its handlers), gone
    with its parent, and never returning into the parent's stack."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(0)
        code = child()
    except SystemExit as exc:  # RQ's cold shutdown (a second SIGTERM)
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        log.exception("worker process failed")
    finally:
        logging.shutdown()  # flush the log before leaving without the interpreter's clean-up
        os._exit(code)


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the supervisor dies (even by SIGKILL), so no orphaned worker
    goes on taking jobs beside the one a restarted supervisor starts. Elsewhere: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
