"""A load driver for the ingest listener: N data loggers, each on its own connection, send real-time
data packets that ask for an ack (Flag A=1) and time each 9014. Client side only (real TCP, the
encoder of integrations.hj212); bench/ and the tests start the server themselves.

    result = asyncio.run(drive("127.0.0.1", 9212, [("MN0001", "123456"), ...], packets=200, window=1))
    result.as_dict()  # packets/s, ack latency p50/p99/max in ms, ...

`window` is how many packets a logger keeps unacknowledged: 1 is what real loggers do (stop and wait:
latency), more measures throughput."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from integrations.hj212 import CN_DATA_ACK, Flag, Framer, Packet, encode, format_qn


@dataclass
class LoadResult:
    connections: int
    packets_sent: int
    acks: int
    elapsed_s: float
    packets_per_s: float
    readings_per_s: float
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    failed_connections: int

    def as_dict(self) -> dict:
        return asdict(self)


def data_packets(mn: str, pw: str, count: int, *, readings: int = 7, start: datetime | None = None,
                 cn: str = "2011", ack: bool = True) -> list[tuple[str, bytes]]:
    """(QN, frame) of `count` packets of one logger, each with `readings` pollutants, one second apart."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    frames = []
    for i in range(count):
        at = start + timedelta(seconds=i)
        cp: dict = {"DataTime": at}
        for p in range(readings):
            cp[f"a{21000 + p:05d}-Rtd"] = Decimal(f"{(i * 7 + p) % 1000}.{p:02d}")
            cp[f"a{21000 + p:05d}-Flag"] = "N"
        qn = format_qn(start + timedelta(milliseconds=i))
        frames.append((qn, encode(st="22", cn=cn, pw=pw, mn=mn, qn=qn, flag=Flag(ack=ack), cp=cp)))
    return frames


async def drive(host: str, port: int, devices: Sequence[tuple[str, str]], *, packets: int = 100, readings: int = 7,
                window: int = 1, timeout_s: float = 120.0, start: datetime | None = None) -> LoadResult:
    """Every device connects at once and sends `packets` packets, at most `window` unacknowledged."""
    plans = [data_packets(mn, pw, packets, readings=readings, start=start) for mn, pw in devices]
    latencies: list[float] = []
    failures = 0

    async def one(plan: list[tuple[str, bytes]]) -> None:
        nonlocal failures
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            failures += 1
            return
        sent_at: dict[str, float] = {}
        credit = asyncio.Semaphore(window)
        framer = Framer()
        acked = 0

        async def read_acks() -> None:
            nonlocal acked
            while acked < len(plan):
                chunk = await reader.read(65536)
                if not chunk:
                    return
                for item in framer.feed(chunk):
                    if isinstance(item, Packet) and item.cn == CN_DATA_ACK and item.qn in sent_at:
                        latencies.append(time.perf_counter() - sent_at.pop(item.qn))
                        acked += 1
                        credit.release()

        acks = asyncio.create_task(read_acks())
        try:
            async with asyncio.timeout(timeout_s):
                for qn, frame in plan:
                    await credit.acquire()
                    if acks.done():
                        break
                    sent_at[qn] = time.perf_counter()
                    writer.write(frame)
                    await writer.drain()
                await acks
        except (TimeoutError, OSError):
            failures += 1
        finally:
            acks.cancel()
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one(plan) for plan in plans))
    elapsed = time.perf_counter() - began
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return round(latencies[min(n - 1, int(q * n))] * 1000, 2) if n else 0.0

    return LoadResult(connections=len(devices), packets_sent=packets * len(devices), acks=n,
                      elapsed_s=round(elapsed, 3), packets_per_s=round(n / elapsed, 1) if elapsed else 0.0,
                      readings_per_s=round(n * readings / elapsed, 1) if elapsed else 0.0,
                      ack_p50_ms=pct(0.50), ack_p99_ms=pct(0.99), ack_max_ms=pct(1.0),
                      failed_connections=failures)
