"""The entry point RQ calls in a worker process. The worker command binds the process's runtime
once at start-up; RQ then calls `perform(job, payload)` for every job it takes."""

from __future__ import annotations

from typing import Any

from .queues import run_job
from .runtime import Runtime

_runtime: Runtime | None = None


def bind(rt: Runtime) -> None:
    global _runtime
    _runtime = rt


def perform(job: str, payload: dict[str, Any]) -> None:
    if _runtime is None:
        raise RuntimeError("worker runtime not bound: start workers with `gridloop worker`")
    run_job(_runtime, job, payload)
