"""The isolated evaluator's child process (`python -m engine.sandbox.worker MEMORY_MB`): evaluates
what the parent sends, one request at a time, under rlimits on top of the in-process budgets.

RLIMIT_AS caps the address space for the child's whole life; RLIMIT_CPU is cumulative, so before
each request its soft limit is set to the CPU used so far plus MAX_SECONDS (and a second of slack):
an evaluation that outruns every estimate is ended by SIGXCPU, and the parent starts a new child.
Requests arrive pickled (the parent is trusted); replies go back as JSON (the child is not: a
pickle from it could run code in the parent)."""

from __future__ import annotations

import builtins
import json
import math
import os
import pickle
import resource
import struct
import sys
from datetime import date, datetime, timedelta
from typing import IO, Any

from . import limits
from .environment import SandboxEnvironment
from .json_budget import OverBudget, json_size
from .limits import SandboxError, SandboxLimitError

FRAME = struct.Struct(">Q")


def read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(FRAME.size)
    if len(head) < FRAME.size:
        return None
    size = FRAME.unpack(head)[0]
    body = stream.read(size)
    return body if len(body) == size else None


def write_frame(stream: IO[bytes], body: bytes) -> None:
    stream.write(FRAME.pack(len(body)) + body)
    stream.flush()


def encode_value(value: Any) -> Any:
    """JSON's `default`: the few non-JSON values expressions return (dates, durations, sets)."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def decode_value(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        (key, value), = obj.items()
        if key == "$datetime":
            return datetime.fromisoformat(value)
        if key == "$date":
            return date.fromisoformat(value)
        if key == "$timedelta":
            return timedelta(seconds=value)
    return obj


def _reply(request: tuple[str, str, dict[str, Any], dict[str, Any] | None], env: SandboxEnvironment) -> dict:
    op, source, context, external = request
    try:
        if op == "evaluate":
            result = env.evaluate(source, context, external)
        else:
            env.execute(source, context, external)
            result = context
        try:
            json_size(result, limits.MAX_DATA_BYTES, lenient=True)
        except OverBudget:
            raise SandboxLimitError(f"the result would take more than {limits.MAX_DATA_BYTES:,} bytes as JSON "
                                    "(the data budget)") from None
        return {"ok": result}
    except SandboxLimitError as exc:
        return {"limit": str(exc)}
    except SandboxError as exc:
        return {"refused": [exc.source_kind, exc.lineno, exc.reason]}
    except MemoryError:
        return {"limit": f"ran out of memory: the isolated evaluator may use {sys.argv[1]} MB (RLIMIT_AS)"}
    except Exception as exc:  # the script's own error, rebuilt by type name in the parent
        name = type(exc).__name__ if isinstance(getattr(builtins, type(exc).__name__, None), type) else "RuntimeError"
        return {"error": [name, str(exc), getattr(exc, "name", None)]}


def main() -> None:
    memory = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    env = SandboxEnvironment()
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the reply pipe
    while (frame := read_frame(requests)) is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = math.ceil(used.ru_utime + used.ru_stime + limits.MAX_SECONDS) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        reply = _reply(pickle.loads(frame), env)
        try:
            body = json.dumps(reply, default=encode_value).encode()
        except (TypeError, ValueError) as exc:
            body = json.dumps({"error": ["TypeError", f"the result is not data: {exc}", None]}).encode()
        write_frame(replies, body)
    os._exit(0)


if __name__ == "__main__":
    main()
