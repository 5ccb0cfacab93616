"""The listener's settings, its counters and what the device check answers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from integrations.hj212 import Packet

# what `authenticate(mn, pw)` answers (True / False are accepted too: ACCEPTED / REFUSED)
ACCEPTED, UNKNOWN_MN, INACTIVE, BAD_PASSWORD, REFUSED = "ok", "unknown_mn", "inactive", "bad_password", "refused"
QN_RTN = {UNKNOWN_MN: "4", BAD_PASSWORD: "3", INACTIVE: "2", REFUSED: "2"}  # HJ 212 QnRtn codes

Authenticate = Callable[[str, str], "str | bool"]
Sink = Callable[[Sequence[Packet]], Any]


@dataclass(frozen=True)
class IngestConfig:
    host: str = "127.0.0.1"
    port: int = 9212
    idle_timeout_s: float = 300.0  # no byte from a connection this long → closed
    max_connections: int = 2000  # one more is closed at once
    max_length: int = 4096  # most bytes of a data segment (the standard says 1024; loggers send more)
    batch_size: int = 500  # packets per sink call
    batch_interval_s: float = 0.1  # the longest a packet waits for its batch to fill
    queue_size: int = 10_000  # packets waiting for the sink; beyond, reading pauses
    auth_cache_s: float = 30.0  # how long an answer of `authenticate` is reused (a new source waits this long)
    max_refusals: int = 20  # refused packets (unknown MN, wrong PW) before a connection is closed
    max_consecutive_errors: int = 16  # refused frames (garbage, CRC, too long) in a row before closing
    max_pending_splits: int = 16  # incomplete split uploads held per connection
    max_write_buffer: int = 256 * 1024  # a peer that reads none of its answers is closed
    read_size: int = 64 * 1024
    backlog: int = 1024
    drain_timeout_s: float = 30.0  # on stop, the longest to wait for the queued packets to be stored
    metrics_interval_s: float = 60.0  # metrics logged this often (0: never)
    log_interval_s: float = 10.0  # at most one log line per kind of refusal this often
    lenient: bool = True  # take what deployed loggers send beyond the standard (no CRLF, times with ms)
    crlf_grace_s: float = 0.5  # lenient: a frame whole but for its CRLF is taken after this long


@dataclass
class Metrics:
    """Counters since start (`connections_active` is a gauge)."""

    connections_accepted: int = 0
    connections_active: int = 0
    connections_rejected: int = 0  # beyond max_connections
    closed_idle: int = 0
    closed_garbage: int = 0
    closed_refusals: int = 0
    closed_slow_reader: int = 0
    bytes_received: int = 0
    packets_received: int = 0  # well-formed packets
    packet_errors: dict[str, int] = field(default_factory=dict)  # PacketError.reason → count
    refused: dict[str, int] = field(default_factory=dict)  # unknown_mn / bad_password / inactive → count
    auth_lookups: int = 0
    auth_errors: int = 0  # `authenticate` raised: the packet is dropped unanswered
    heartbeats: int = 0
    split_parts: int = 0
    splits_completed: int = 0
    splits_evicted: int = 0
    answers_ignored: int = 0
    unsupported: int = 0
    packets_queued: int = 0
    queue_full_waits: int = 0
    batches: int = 0
    packets_stored: int = 0
    packets_unstored: int = 0  # the sink failed: not acknowledged
    store_failures: int = 0  # failed sink calls
    readings_stored: int = 0  # what the sink answered, when it answers a number
    acks_sent: int = 0  # 9014
    acks_lost: int = 0  # the connection was gone when the store finished
    answers_sent: int = 0  # 9011 refusals and 9013 heartbeat answers
    # accepted packets that deviated from the standard: MN → deviation (no_crlf, time_millis) → count
    deviations: dict[str, dict[str, int]] = field(default_factory=dict)

    def snapshot(self) -> Metrics:
        return Metrics(**{**asdict(self), "packet_errors": dict(self.packet_errors), "refused": dict(self.refused),
                          "deviations": {mn: dict(kinds) for mn, kinds in self.deviations.items()}})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

