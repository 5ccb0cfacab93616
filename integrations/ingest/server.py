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
its acks, then close the connections.

Modules: config (settings, counters, verdicts), connection (per-connection state), answers (protocol
replies), device_check (the cached `authenticate`), batches (queue → sink → acks), server (this:
lifecycle and the reading of connections)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from integrations.hj212 import CN_HEARTBEAT, Framer, Packet, PacketError, data_ack

from .answers import CN_NOTICE_ANSWER, CN_REQUEST_ANSWER, PROTOCOL_ANSWERS, UPLOAD, encoded, reply
from .batches import BatchWriter
from .config import ACCEPTED, QN_RTN, Authenticate, IngestConfig, Metrics, Sink
from .connection import Closing, Connection, Pending, Throttle, peer_of
from .device_check import DeviceCheck

log = logging.getLogger("gridloop.ingest")


class IngestServer(DeviceCheck, BatchWriter):
    """`await start()`, then `await stop()` (or `serve(stop_event)`); `metrics()` any time."""

    def __init__(self, config: IngestConfig, *, authenticate: Authenticate, sink: Sink) -> None:
        Framer(max_length=config.max_length)  # refuses a max_length the length field cannot carry
        self.config = config
        self._authenticate = authenticate
        self._sink = sink
        self._m = Metrics()
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[Connection] = set()
        self._queue: asyncio.Queue[Pending] = asyncio.Queue(config.queue_size)
        self._wake = asyncio.Event()  # something was queued, or stop
        self._full = asyncio.Event()  # a batch's worth is queued, or stop
        self._draining = False
        self._writer_task: asyncio.Task | None = None
        self._metrics_task: asyncio.Task | None = None
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._throttle = Throttle(config.log_interval_s)

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
                            extra={"peer": peer_of(writer), "max_connections": cfg.max_connections})
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        conn = Connection(writer, cfg.max_pending_splits)
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
                        raise Closing("closed_idle") from None
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
        except Closing as closing:
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

    async def _on_items(self, conn: Connection, items: list[Packet | PacketError]) -> None:
        for item in items:
            if isinstance(item, PacketError):
                self._frame_refused(conn, item)
            else:
                conn.errors_in_row = 0
                await self._on_packet(conn, item)

    async def _close(self, conn: Connection) -> None:
        self._conns.discard(conn)
        conn.writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await conn.writer.wait_closed()

    def _frame_refused(self, conn: Connection, error: PacketError, closing: bool = False) -> None:
        self._m.packet_errors[error.reason] = self._m.packet_errors.get(error.reason, 0) + 1
        left_out = self._throttle(f"packet:{error.reason}")
        if left_out is not None:
            log.warning("packet refused", extra={"peer": conn.peer, "reason": error.reason, "error": error.message,
                                                 "similar_not_logged": left_out})
        conn.errors_in_row += 1
        if not closing and conn.errors_in_row > self.config.max_consecutive_errors:
            raise Closing("closed_garbage")

    async def _on_packet(self, conn: Connection, packet: Packet) -> None:
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
                self._answer(conn, reply(packet, CN_NOTICE_ANSWER))
            return
        if cn in PROTOCOL_ANSWERS:
            self._m.answers_ignored += 1
            return
        if UPLOAD.fullmatch(cn) is None:
            self._m.unsupported += 1
            left_out = self._throttle("unsupported_cn")
            if left_out is not None:
                log.info("command not supported", extra={"peer": conn.peer, "mn": packet.mn, "cn": cn[:8],
                                                         "similar_not_logged": left_out})
            return
        whole = packet
        if packet.is_split:
            self._m.split_parts += 1
            completed = conn.reassembler.add(packet)
            if completed is None:
                if packet.ack_wanted:  # held in memory: see the module docstring
                    self._ack(conn, packet)
                return
            whole = completed
            self._m.splits_completed += 1
        if self._queue.full():
            self._m.queue_full_waits += 1
        await self._queue.put(Pending(whole, conn, (packet,) if packet.ack_wanted else ()))
        self._m.packets_queued += 1
        self._wake.set()
        # Full, or every connection already has a packet waiting here: loggers send one packet and
        # wait for its ack, so lingering for more would only delay the acks.
        if self._queue.qsize() >= min(self.config.batch_size, max(1, len(self._conns))):
            self._full.set()

    def _deviated(self, conn: Connection, packet: Packet) -> None:
        """Counted per source (only accepted ones, so the map is bounded by the register); the first
        of each kind per source is logged, so an operator learns which devices deviate."""
        kinds = self._m.deviations.setdefault(packet.mn, {})
        for deviation in packet.deviations:
            seen = kinds.get(deviation, 0)
            kinds[deviation] = seen + 1
            if not seen:
                log.info("source deviates from HJ 212, accepted leniently",
                         extra={"peer": conn.peer, "mn": packet.mn, "deviation": deviation})

    def _refuse(self, conn: Connection, packet: Packet, verdict: str) -> None:
        self._m.refused[verdict] = self._m.refused.get(verdict, 0) + 1
        left_out = self._throttle(f"refused:{verdict}")
        if left_out is not None:
            log.warning("packet refused", extra={"peer": conn.peer, "mn": packet.mn[:64], "reason": verdict,
                                                 "similar_not_logged": left_out})
        if packet.ack_wanted:
            self._answer(conn, reply(packet, CN_REQUEST_ANSWER, {"QnRtn": QN_RTN.get(verdict, "2")}))
        conn.refusals += 1
        if conn.refusals >= self.config.max_refusals:
            raise Closing("closed_refusals")

    def _send(self, conn: Connection, frame: bytes | None) -> bool:
        if frame is None or not conn.open:
            return False
        if conn.writer.transport.get_write_buffer_size() > self.config.max_write_buffer:
            self._m.closed_slow_reader += 1
            conn.writer.close()
            return False
        conn.writer.write(frame)
        return True

    def _answer(self, conn: Connection, frame: bytes | None) -> None:
        if self._send(conn, frame):
            self._m.answers_sent += 1

    def _ack(self, conn: Connection, packet: Packet) -> None:
        if self._send(conn, encoded(data_ack, packet)):
            self._m.acks_sent += 1
        else:
            self._m.acks_lost += 1


    async def _log_metrics(self) -> None:
        while True:
            await asyncio.sleep(self.config.metrics_interval_s)
            log.info("ingest metrics", extra=self.metrics().as_dict())
