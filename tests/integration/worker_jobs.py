"""Jobs the worker tests enqueue by name: each writes a line "<tag> <event> <pid>" to a file, so a
test can tell which process ran what, and how often."""

from __future__ import annotations

import contextlib
import os
import time


def note(path: str, tag: str, event: str = "ran") -> None:
    with open(path, "a") as f:  # one short append per line: lines from processes do not interleave
        f.write(f"{tag} {event} {os.getpid()}\n")


def record(path: str, tag: str) -> None:
    note(path, tag)


def hang(path: str, tag: str) -> None:
    note(path, tag, "started")
    time.sleep(3600)


def hang_and_swallow_the_timeout(path: str, tag: str) -> None:
    """A job with a broad `except`: RQ's timeout exception never gets out of it."""
    note(path, tag, "started")
    while True:
        with contextlib.suppress(Exception):  # the point of this job
            time.sleep(3600)


def fail(path: str, tag: str) -> None:
    note(path, tag, "started")
    raise ValueError("this job fails")


def slow(path: str, tag: str, seconds: float) -> None:
    note(path, tag, "started")
    time.sleep(seconds)
    note(path, tag)
