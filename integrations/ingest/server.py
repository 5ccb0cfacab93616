"""The HJ 212 TCP listener: data loggers connect, send packets, get answers; accepted data goes to a
sink in batches. Translation only: which devices exist and what data means is the caller's business
(`authenticate` and `sink` are injected; nothing here imports workflows).

Per connection: one `Framer` (packets split across reads or glued together), one `Reassembler` for
split uploads (PNUM/PNO), an idle timeout, a cap on consecutive refusals of bytes.

Answers (decisions):

- **Data (CN 2xxx, 3020) with A=1 → 9014 only after the sink returned**, i.e. after the readings are
  committed. A data logger keeps a packet until it is acknowledged and sends it again otherwise, so
  an ack before the commit would turn a crash or a database failure into silent data loss; an ack
  after it costs the batching delay (≤ `batch_interval_s` + one commit, far inside the standard's
  10 s answer timeout). A packet whose store failed is not acknowledged. The store skips repeats, so
  a packet sent again after a lost ack is stored once.
- **Split uploads:** every part but the last is acknowledged on receipt (a stop-and-wait sender
  sends part n+1 only after the ack of part n, so holding those acks back would deadlock); the last
  part's ack waits for the store of the whole upload.
- **9015 heartbeat (HJ 212-2025) with A=1 → 9013 notice answer** with the heartbeat's QN (the 2025
  exchange: the field side sends 9015 and, when it asks for an answer, waits for a 9013); without A
  nothing is sent. Heartbeats are authenticated like data and counted.
- **Unknown MN or wrong PW → refused:** nothing stored, never a 9014; when the packet asked for an
  answer, a 9011 with the packet's QN and QnRtn 4 (MN error), 3 (PW error) or 2 (rejected: the
  source is deactivated) so that the installer on site sees why. Refusals are counted per reason; a
  connection is closed after `max_refusals` of them (password guessing, a misconfigured logger).
- Protocol answers from the field (9011–9014) are ignored; other commands are counted as
  unsupported and not answered.

Batching: accepted packets go through a bounded asyncio queue to one writer task that calls the
sink in a thread (`asyncio.to_thread`) with up to `batch_size` packets, waiting at most
`batch_interval_s` for a batch to fill — but not at all once every open connection has a packet
queued, since loggers wait for one ack before sending on — so the event loop never blocks on the
database. A full
queue stops reading from the connections that want to add to it (TCP backpressure). When a batch
fails, each source's packets in it are stored on their own, so that one source whose data the store
refuses (a failing rule, say) does not hold up the others; if the first three sources fail alone as
well, the store is taken to be down and the rest of the batch is left unacknowledged at once.

Shutdown (`stop`, SIGTERM in the CLI): stop accepting, stop reading, store what is queued and send
its acks, then close the connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from integrations.hj212 import (
    CN_HEARTBEAT,
    ST_SYSTEM,
    Flag,
    Framer,
    Packet,
    PacketError,
    Reassembler,
    data_ack,
    encode,
)

log = logging.getLogger("gridloop.ingest")

# what `authenticate(mn, pw)` answers (True / False are accepted too: ACCEPTED / REFUSED)
ACCEPTED, UNKNOWN_MN, INACTIVE, BAD_PASSWORD, REFUSED = "ok", "unknown_mn", "inactive", "bad_password", "refused"
QN_RTN = {UNKNOWN_MN: "4", BAD_PASSWORD: "3", INACTIVE: "2", REFUSED: "2"}  # HJ 212 QnRtn codes
CN_REQUEST_ANSWER, CN_NOTICE_ANSWER = "9011", "9013"
PROTOCOL_ANSWERS = frozenset({"9011", "9012", "9013", "9014"})
_UPLOAD = re.compile(r"2\d{3}|3020")  # data uploads (2011 real-time ... 2081) and 3020 device information

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


class _Throttle:
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


class _Connection:
    __slots__ = ("errors_in_row", "peer", "reassembler", "refusals", "task", "writer")

    def __init__(self, writer: asyncio.StreamWriter, max_pending_splits: int) -> None:
        self.writer = writer
        self.peer = _peer(writer)
        self.reassembler = Reassembler(max_pending=max_pending_splits)
        self.refusals = 0
        self.errors_in_row = 0
        self.task: asyncio.Task | None = None

    @property
    def open(self) -> bool:
        return not self.writer.is_closing()


@dataclass(slots=True)
class _Pending:
    packet: Packet
    conn: _Connection
    acks: tuple[Packet, ...]  # packets to acknowledge (9014) once stored


class _Closing(Exception):
    """Raised inside a connection's loop to close it; `metric` names the counter."""

    def __init__(self, metric: str) -> None:
        self.metric = metric


class IngestServer:
    """`await start()`, then `await stop()` (or `serve(stop_event)`); `metrics()` any time."""

    def __init__(self, config: IngestConfig, *, authenticate: Authenticate, sink: Sink) -> None:
        Framer(max_length=config.max_length)  # refuses a max_length the length field cannot carry
        self.config = config
        self._authenticate = authenticate
        self._sink = sink
        self._m = Metrics()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[_Connection] = set()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(config.queue_size)
        self._wake = asyncio.Event()  # something was queued, or stop
        self._full = asyncio.Event()  # a batch's worth is queued, or stop
        self._draining = False
        self._writer_task: asyncio.Task | None = None
        self._metrics_task: asyncio.Task | None = None
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._throttle = _Throttle(config.log_interval_s)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        self._server = await asyncio.start_server(self._on_connection, cfg.host, cfg.port, backlog=cfg.backlog,
                                                  limit=cfg.read_size)
        self._writer_task = asyncio.create_task(self._write_batches(), name="ingest-writer")
        if cfg.metrics_interval_s > 0:
            self._metrics_task = asyncio.create_task(self._log_metrics(), name="ingest-metrics")
        log.info("ingest listening", extra={"address": f"{self.host}:{self.port}",
                                            "max_connections": cfg.max_connections})

    @property
    def host(self) -> str:
        return self._sockname()[0]

    @property
    def port(self) -> int:
        """The bound port (the one the OS chose when the config said 0)."""
        return self._sockname()[1]

    def _sockname(self) -> tuple:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        return self._server.sockets[0].getsockname()

    async def serve(self, stop: asyncio.Event) -> None:
        """Start, run until `stop` is set, then stop gracefully."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        """Stop accepting and reading, store what is queued (acks sent), close every connection."""
        if self._server is None or self._draining:
            return
        self._draining = True
        self._server.close()
        readers = [c.task for c in self._conns if c.task is not None and c.task is not asyncio.current_task()]
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        self._wake.set()
        self._full.set()
        if self._writer_task is not None:
            try:
                await asyncio.wait_for(self._writer_task, self.config.drain_timeout_s)
            except TimeoutError:
                log.error("ingest stopped before the queue was stored",
                          extra={"left_unstored": self._queue.qsize()})
        for conn in list(self._conns):
            await self._close(conn)
        if self._metrics_task is not None:
            self._metrics_task.cancel()
            await asyncio.gather(self._metrics_task, return_exceptions=True)
        await self._server.wait_closed()
        log.info("ingest stopped", extra=self._m.as_dict())

    def metrics(self) -> Metrics:
        """A copy of the counters."""
        m = self._m.snapshot()
        m.connections_active = len(self._conns)
        return m

    # -- one connection ----------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cfg = self.config
        if self._draining or len(self._conns) >= cfg.max_connections:
            self._m.connections_rejected += 1
            if self._throttle("max_connections") is not None:
                log.warning("connection refused: too many connections",
                            extra={"peer": _peer(writer), "max_connections": cfg.max_connections})
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        conn = _Connection(writer, cfg.max_pending_splits)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        self._m.connections_accepted += 1
        framer = Framer(max_length=cfg.max_length, lenient=cfg.lenient)
        loop = asyncio.get_running_loop()
        try:
            last_read = loop.time()
            while True:
                # Lenient: a frame held whole but for its CRLF is taken after a short grace.
                idle_left = cfg.idle_timeout_s - (loop.time() - last_read)
                grace = cfg.lenient and framer.buffered > 0
                try:
                    async with asyncio.timeout(max(0.0, min(cfg.crlf_grace_s, idle_left) if grace else idle_left)):
                        chunk = await reader.read(cfg.read_size)
                except TimeoutError:
                    if grace and (held := framer.unterminated()):
                        await self._on_items(conn, held)
                        continue
                    if loop.time() - last_read >= cfg.idle_timeout_s:
                        raise _Closing("closed_idle") from None
                    continue
                if not chunk:
                    break
                last_read = loop.time()
                self._m.bytes_received += len(chunk)
                await self._on_items(conn, framer.feed(chunk))
            for item in framer.flush():
                if isinstance(item, PacketError):
                    self._frame_refused(conn, item, closing=True)
                else:
                    await self._on_packet(conn, item)
        except _Closing as closing:
            setattr(self._m, closing.metric, getattr(self._m, closing.metric) + 1)
            if self._throttle(closing.metric) is not None:
                log.info("connection closed", extra={"peer": conn.peer, "why": closing.metric})
        except asyncio.CancelledError:
            if not self._draining:
                raise
        except (ConnectionError, OSError) as exc:
            log.debug("connection error", extra={"peer": conn.peer, "error": str(exc)})
        except Exception:
            log.exception("connection failed", extra={"peer": conn.peer})
        finally:
            self._m.splits_evicted += conn.reassembler.evicted
            if not self._draining:  # when draining, `stop` closes it after the last acks
                await self._close(conn)

    async def _on_items(self, conn: _Connection, items: list[Packet | PacketError]) -> None:
        for item in items:
            if isinstance(item, PacketError):
                self._frame_refused(conn, item)
            else:
                conn.errors_in_row = 0
                await self._on_packet(conn, item)

    async def _close(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        conn.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await conn.writer.wait_closed()

    def _frame_refused(self, conn: _Connection, error: PacketError, closing: bool = False) -> None:
        self._m.packet_errors[error.reason] = self._m.packet_errors.get(error.reason, 0) + 1
        left_out = self._throttle(f"packet:{error.reason}")
        if left_out is not None:
            log.warning("packet refused", extra={"peer": conn.peer, "reason": error.reason, "error": error.message,
                                                 "similar_not_logged": left_out})
        conn.errors_in_row += 1
        if not closing and conn.errors_in_row > self.config.max_consecutive_errors:
            raise _Closing("closed_garbage")

    async def _on_packet(self, conn: _Connection, packet: Packet) -> None:
        self._m.packets_received += 1
        verdict = await self._check(packet.mn, packet.pw)
        if verdict is None:
            return  # the check itself failed: no answer, the logger sends again
        if verdict != ACCEPTED:
            self._refuse(conn, packet, verdict)
            return
        if packet.deviations:
            self._deviated(conn, packet)
        cn = packet.cn
        if cn == CN_HEARTBEAT:
            self._m.heartbeats += 1
            if packet.ack_wanted:
                self._answer(conn, _reply(packet, CN_NOTICE_ANSWER))
            return
        if cn in PROTOCOL_ANSWERS:
            self._m.answers_ignored += 1
            return
        if _UPLOAD.fullmatch(cn) is None:
            self._m.unsupported += 1
            left_out = self._throttle("unsupported_cn")
            if left_out is not None:
                log.info("command not supported", extra={"peer": conn.peer, "mn": packet.mn, "cn": cn[:8],
                                                         "similar_not_logged": left_out})
            return
        whole = packet
        if packet.is_split:
            self._m.split_parts += 1
            whole = conn.reassembler.add(packet)
            if whole is None:
                if packet.ack_wanted:  # held in memory: see the module docstring
                    self._ack(conn, packet)
                return
            self._m.splits_completed += 1
        if self._queue.full():
            self._m.queue_full_waits += 1
        await self._queue.put(_Pending(whole, conn, (packet,) if packet.ack_wanted else ()))
        self._m.packets_queued += 1
        self._wake.set()
        # Full, or every connection already has a packet waiting here: loggers send one packet and
        # wait for its ack, so lingering for more would only delay the acks.
        if self._queue.qsize() >= min(self.config.batch_size, max(1, len(self._conns))):
            self._full.set()

    def _deviated(self, conn: _Connection, packet: Packet) -> None:
        """Counted per source (only accepted ones, so the map is bounded by the register); the first
        of each kind per source is logged, so an operator learns which devices deviate."""
        kinds = self._m.deviations.setdefault(packet.mn, {})
        for deviation in packet.deviations:
            seen = kinds.get(deviation, 0)
            kinds[deviation] = seen + 1
            if not seen:
                log.info("source deviates from HJ 212, accepted leniently",
                         extra={"peer": conn.peer, "mn": packet.mn, "deviation": deviation})

    def _refuse(self, conn: _Connection, packet: Packet, verdict: str) -> None:
        self._m.refused[verdict] = self._m.refused.get(verdict, 0) + 1
        left_out = self._throttle(f"refused:{verdict}")
        if left_out is not None:
            log.warning("packet refused", extra={"peer": conn.peer, "mn": packet.mn[:64], "reason": verdict,
                                                 "similar_not_logged": left_out})
        if packet.ack_wanted:
            self._answer(conn, _reply(packet, CN_REQUEST_ANSWER, {"QnRtn": QN_RTN.get(verdict, "2")}))
        conn.refusals += 1
        if conn.refusals >= self.config.max_refusals:
            raise _Closing("closed_refusals")

    def _send(self, conn: _Connection, frame: bytes | None) -> bool:
        if frame is None or not conn.open:
            return False
        if conn.writer.transport.get_write_buffer_size() > self.config.max_write_buffer:
            self._m.closed_slow_reader += 1
            conn.writer.close()
            return False
        conn.writer.write(frame)
        return True

    def _answer(self, conn: _Connection, frame: bytes | None) -> None:
        if self._send(conn, frame):
            self._m.answers_sent += 1

    def _ack(self, conn: _Connection, packet: Packet) -> None:
        if self._send(conn, _encoded(data_ack, packet)):
            self._m.acks_sent += 1
        else:
            self._m.acks_lost += 1

    # -- device check ------------------------------------------------------------------------------

    async def _check(self, mn: str, pw: str) -> str | None:
        key = (mn, pw)
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        future = self._inflight.get(key)
        if future is None:  # one lookup per (MN, PW) at a time, however many packets wait for it
            self._m.auth_lookups += 1
            future = asyncio.ensure_future(asyncio.to_thread(self._authenticate, mn, pw))
            self._inflight[key] = future
            future.add_done_callback(lambda f: self._settle(key, f))
        try:
            return _normalized(await asyncio.shield(future))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._m.auth_errors += 1
            left_out = self._throttle("auth_error")
            if left_out is not None:
                log.error("device check failed", extra={"mn": mn[:64], "error": repr(exc),
                                                        "similar_not_logged": left_out})
            return None

    def _settle(self, key: tuple[str, str], future: asyncio.Future) -> None:
        self._inflight.pop(key, None)
        if future.cancelled() or future.exception() is not None or self.config.auth_cache_s <= 0:
            return
        if len(self._cache) >= 50_000:
            now = time.monotonic()
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= 50_000:
                self._cache.clear()
        self._cache[key] = (_normalized(future.result()), time.monotonic() + self.config.auth_cache_s)

    # -- batches -----------------------------------------------------------------------------------

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

    async def _flush(self, batch: list[_Pending]) -> None:
        self._m.batches += 1
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

    async def _store(self, batch: list[_Pending]) -> list[_Pending]:
        answer = await asyncio.to_thread(self._sink, [item.packet for item in batch])
        if isinstance(answer, int) and not isinstance(answer, bool):
            self._m.readings_stored += answer
        return batch

    async def _by_source(self, batch: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """After a failed batch: store each source's packets on their own, so that one source whose
        data the store refuses does not hold up the others."""
        groups: dict[str, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(item.packet.mn, []).append(item)
        if len(groups) == 1:
            return [], batch
        stored: list[_Pending] = []
        failed: list[_Pending] = []
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

    async def _log_metrics(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_interval_s)
            log.info("ingest metrics", extra=self.metrics().as_dict())


def _normalized(verdict: str | bool) -> str:
    if verdict is True:
        return ACCEPTED
    if verdict is False:
        return REFUSED
    return str(verdict)


def _reply(packet: Packet, cn: str, cp: dict[str, str] | None = None) -> bytes | None:
    """A protocol answer to `packet`: its QN, PW and MN, ST=91, its protocol version, no ack wanted."""
    flag = Flag(version=packet.flag.version) if packet.flag is not None else None
    return _encoded(lambda p: encode(st=ST_SYSTEM, cn=cn, pw=p.pw, mn=p.mn, qn=p.qn, flag=flag, cp=cp), packet)


def _encoded(build: Callable[[Packet], bytes], packet: Packet) -> bytes | None:
    """The answer, or None when the packet's fields cannot be echoed (an MN with ',' or '&')."""
    try:
        return build(packet)
    except ValueError:
        return None


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
