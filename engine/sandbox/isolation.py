"""Evaluation in pre-started child processes with rlimits (worker.py): the strongest setting
(GRIDLOOP_SANDBOX_ISOLATION=subprocess). The in-process budgets still apply inside the child; the
rlimits catch whatever they miss, and an escape would find itself in a process that holds no
database connection and no secret. The price is a round trip per evaluation (bench/sandbox.py)."""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import pickle
import queue
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .limits import SandboxError, SandboxLimitError
from .worker import decode_value, read_frame, write_frame

_ROOT = Path(__file__).resolve().parent.parent.parent
# The child gets no secret and no database URL from the parent's environment.
_CHILD_ENV = {"PYTHONPATH": str(_ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}


class _Child:
    def __init__(self, memory_mb: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "engine.sandbox.worker", str(memory_mb)], cwd=_ROOT,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_CHILD_ENV)

    def ask(self, request: tuple[Any, ...]) -> dict[str, Any] | None:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None  # both are pipes (__init__)
        try:
            write_frame(stdin, pickle.dumps(request))
        except (BrokenPipeError, OSError):
            return None
        body = read_frame(stdout)
        return None if body is None else json.loads(body, object_hook=decode_value)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            assert stream is not None  # both are pipes (__init__)
            with contextlib.suppress(OSError):  # a request still buffered for a child that is gone
                stream.close()


class IsolatedEvaluator:
    """A pool of child evaluators: a thread takes an idle one (or starts one), asks, puts it back.
    A child that died (its CPU or memory limit) is replaced; the evaluation fails with the limit's name.
    A forked process (gunicorn workers, fork-mode jobs) does not share its parent's children: it
    starts its own on first use. A child ends when its parent does (its request pipe closes)."""

    def __init__(self, memory_mb: int = 512, prestart: int = 1) -> None:
        self.memory_mb = memory_mb
        self._pid = os.getpid()
        self._idle: queue.LifoQueue[_Child] = queue.LifoQueue()
        self._all: list[_Child] = []
        for _ in range(prestart):
            self._idle.put(self._spawn())

    def _spawn(self) -> _Child:
        child = _Child(self.memory_mb)
        self._all.append(child)
        return child

    def run(self, op: str, source: str, context: dict[str, Any], external: dict[str, Any] | None) -> Any:
        if os.getpid() != self._pid:  # forked: the children belong to the parent
            self._pid, self._idle, self._all = os.getpid(), queue.LifoQueue(), []
        try:
            child = self._idle.get_nowait()
        except queue.Empty:
            child = self._spawn()
        reply = child.ask((op, source, context, external))
        if reply is None:
            child.stop()
            self._all.remove(child)
            raise SandboxLimitError(self._death(child.process.returncode))
        self._idle.put(child)
        return _result(reply)

    def _death(self, code: int | None) -> str:
        if code == -signal.SIGXCPU:
            return "ran out of CPU time: the isolated evaluator's limit (RLIMIT_CPU) ended it"
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return f"the isolated evaluator ended ({how}; its memory limit is {self.memory_mb} MB, RLIMIT_AS)"

    def close(self) -> None:
        for child in self._all:
            child.stop()
        self._all.clear()


def _result(reply: dict[str, Any]) -> Any:
    if "ok" in reply:
        return reply["ok"]
    if "limit" in reply:
        raise SandboxLimitError(reply["limit"])
    if "refused" in reply:
        raise SandboxError(*reply["refused"])
    name, message, attr = reply["error"]
    kind = getattr(builtins, name, RuntimeError)
    exc = kind(message) if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError(message)
    if attr is not None and isinstance(exc, (NameError, AttributeError)):
        exc.name = attr
    raise exc
