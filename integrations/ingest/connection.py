"""Per-connection state of the listener, and its log throttle."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from integrations.hj212 import Packet, Reassembler


class Throttle:
    """At most one log line per key every `interval` seconds; says how many were left out."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._left_out: Counter[str] = Counter()

    def __call__(self, key: str) -> int | None:
        now = time.monotonic()
        if now - self._last.get(key, -1e18) < self.interval:
            self._left_out[key] += 1
            return None
        self._last[key] = now
        return self._left_out.pop(key, 0)


class Connection:
    __slots__ = ("errors_in_row", "peer", "reassembler", "refusals", "task", "writer")

    def __init__(self, writer: asyncio.StreamWriter, max_pending_splits: int) -> None:
        self.writer = writer
        self.peer = peer_of(writer)
        self.reassembler = Reassembler(max_pending=max_pending_splits)
        self.refusals = 0
        self.errors_in_row = 0
        self.task: asyncio.Task | None = None

    @property
    def open(self) -> bool:
        return not self.writer.is_closing()


@dataclass(slots=True)
class Pending:
    packet: Packet
    conn: Connection
    acks: tuple[Packet, ...]  # packets to acknowledge (9014) once stored


class Closing(Exception):
    """Raised inside a connection's loop to close it; `metric` names the counter."""

    def __init__(self, metric: str) -> None:
        self.metric = metric



def peer_of(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
