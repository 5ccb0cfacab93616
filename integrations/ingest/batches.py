"""The batch writer of the listener: accepted packets leave the queue for the sink in batches, and
are acknowledged once it returned; a failed batch is retried source by source."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from integrations.hj212 import Packet

from .config import IngestConfig, Metrics, Sink
from .connection import Connection, Pending

log = logging.getLogger("gridloop.ingest")


class BatchWriter:
    """Part of `IngestServer` (which sets these attributes up and provides `_ack`)."""

    config: IngestConfig
    _sink: Sink
    _m: Metrics
    _queue: asyncio.Queue[Pending]
    _conns: set[Connection]
    _wake: asyncio.Event
    _full: asyncio.Event
    _draining: bool
    _throttle: Callable[[str], int | None]
    _ack: Callable[[Connection, Packet], None]

    async def _write_batches(self) -> None:
        cfg = self.config
        queue = self._queue
        while True:
            if queue.empty():
                if self._draining:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if (queue.qsize() < min(cfg.batch_size, max(1, len(self._conns))) and not self._draining
                    and cfg.batch_interval_s > 0):
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(cfg.batch_interval_s):
                        await self._full.wait()
            batch = [queue.get_nowait() for _ in range(min(cfg.batch_size, queue.qsize()))]
            try:
                await self._flush(batch)
            except Exception:  # a bug here must not stop every later batch
                log.exception("ingest batch failed", extra={"packets": len(batch)})

    async def _flush(self, batch: list[Pending]) -> None:
        self._m.batches += 1
        failed: list[Pending]
        try:
            stored, failed = await self._store(batch), []
        except Exception as exc:
            self._store_failed(exc, len(batch))
            stored, failed = await self._by_source(batch)
        self._m.packets_stored += len(stored)
        self._m.packets_unstored += len(failed)
        for item in stored:
            for packet in item.acks:
                self._ack(item.conn, packet)

    async def _store(self, batch: list[Pending]) -> list[Pending]:
        answer = await asyncio.to_thread(self._sink, [item.packet for item in batch])
        if isinstance(answer, int) and not isinstance(answer, bool):
            self._m.readings_stored += answer
        return batch

    async def _by_source(self, batch: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """After a failed batch: store each source's packets on their own, so that one source whose
        data the store refuses does not hold up the others."""
        groups: dict[str, list[Pending]] = {}
        for item in batch:
            groups.setdefault(item.packet.mn, []).append(item)
        if len(groups) == 1:
            return [], batch
        stored: list[Pending] = []
        failed: list[Pending] = []
        failures = 0
        for items in groups.values():
            if not stored and failures >= 3:  # the first three sources failed alone too: the store is down
                failed += items
                continue
            try:
                stored += await self._store(items)
            except Exception as exc:
                failures += 1
                self._store_failed(exc, len(items), items[0].packet)
                failed += items
        return stored, failed

    def _store_failed(self, exc: Exception, packets: int, packet: Packet | None = None) -> None:
        self._m.store_failures += 1
        left_out = self._throttle("store")
        if left_out is not None:
            extra: dict[str, Any] = {"packets": packets, "error": repr(exc)[:500], "similar_not_logged": left_out}
            if packet is not None:
                extra.update(mn=packet.mn, qn=packet.qn, cn=packet.cn)
            log.error("storing readings failed; not acknowledged", extra=extra)
