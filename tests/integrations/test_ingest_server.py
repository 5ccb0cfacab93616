"""The HJ 212 listener over real TCP sockets, wired to the real intake (workflows.readings) on
PostgreSQL and SQLite: concurrent loggers, fragmented and glued packets, 9014 acks after the store
with the packet's QN, 9015 heartbeats, refusals (wrong PW, unknown MN) answered and counted, idle
timeout, connection cap, oversize frames and garbage, split uploads, a failing store left
unacknowledged, draining on stop, and the `gridloop ingest` process stopped by SIGTERM.

No durations are asserted: timeouts are short where they are the subject, and every wait is for an
outcome (bounded by a generous deadline so that a bug fails instead of hanging)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from integrations.hj212 import VERSION_2025, Flag, Framer, Packet, encode, format_qn, heartbeat
from integrations.ingest import IngestConfig, IngestServer, drive
from workflows.readings import ReadingsIntake, StoredReading
from workflows.sources import MonitoringSource

ROOT = Path(__file__).resolve().parents[2]
PW = "123456"
T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
WAIT = 20.0  # the most any outcome may take before the test fails


def mn(i: int) -> str:
    return f"MN{i:022d}"


def add_sources(db, clock, count: int, active: bool = True) -> list[tuple[str, str]]:
    with db.transaction() as s:
        for i in range(count):
            s.add(MonitoringSource(mn=mn(i), tenant="320700", kind="outlet", name=f"outlet {i}", password=PW,
                                   active=active, created_at=clock.now()))
    return [(mn(i), PW) for i in range(count)]


def readings_count(db, device: str | None = None) -> int:
    stmt = select(func.count()).select_from(StoredReading)
    if device is not None:
        stmt = stmt.where(StoredReading.mn == device)
    with db.session() as s:
        return s.scalar(stmt)


def data(device=None, i=0, *, pw=PW, ack=True, readings=3, cn="2011", version=1, **extra) -> tuple[str, bytes]:
    at = T0 + timedelta(seconds=i)
    cp: dict = {"DataTime": at}
    for p in range(readings):
        cp[f"a2{p:04d}-Rtd"] = Decimal(f"{i}.{p}")
        cp[f"a2{p:04d}-Flag"] = "N"
    qn = format_qn(T0 + timedelta(milliseconds=i))
    return qn, encode(st="22", cn=cn, pw=pw, mn=device or mn(0), qn=qn, flag=Flag(version=version, ack=ack), cp=cp,
                      **extra)


class Peer:
    """A data logger's end of a connection: writes bytes, reads answers as packets."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.framer = Framer()
        self.pending: list[Packet] = []

    @classmethod
    async def connect(cls, server: IngestServer) -> Peer:
        return cls(*await asyncio.open_connection("127.0.0.1", server.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> Packet:
        async with asyncio.timeout(WAIT):
            while not self.pending:
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise EOFError("closed by the server")
                self.pending += [p for p in self.framer.feed(chunk) if isinstance(p, Packet)]
        return self.pending.pop(0)

    async def closed(self) -> bool:
        """True once the server closes the connection (answers that were still coming are skipped)."""
        async with asyncio.timeout(WAIT):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionResetError:
                pass
        return True

    def close(self) -> None:
        self.writer.close()


def serve(intake: ReadingsIntake, scenario, **config):
    """Run `scenario(server)` against a started listener (port chosen by the OS), then stop it."""

    async def main():
        server = IngestServer(IngestConfig(port=0, metrics_interval_s=0, **config), authenticate=intake.verdict,
                              sink=intake.store_packets)
        await server.start()
        try:
            return await scenario(server)
        finally:
            await server.stop()

    return asyncio.run(main())


async def until(condition) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.fixture
def intake(db, clock):
    return ReadingsIntake(db, clock)


def test_fifty_loggers_at_once_every_packet_stored_and_acknowledged(db, clock, intake):
    devices = add_sources(db, clock, 50)

    async def scenario(server):
        result = await drive("127.0.0.1", server.port, devices, packets=20, readings=3, window=4)
        return result, server.metrics()

    result, m = serve(intake, scenario)
    assert (result.acks, result.failed_connections) == (1000, 0)  # drive counts only acks with a sent QN
    assert (m.packets_stored, m.acks_sent, m.readings_stored, m.connections_accepted) == (1000, 1000, 3000, 50)
    assert m.batches < 1000  # batched, not one transaction a packet
    assert readings_count(db) == 3000 and readings_count(db, mn(17)) == 60
    with db.session() as s:
        assert all(x.last_seen_at == clock.now() for x in s.scalars(select(MonitoringSource)))


def test_fragmented_and_glued_packets(db, clock, intake):
    add_sources(db, clock, 1)
    glued = [data(i=i) for i in range(3)]
    trickled = data(i=3)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(b"".join(frame for _, frame in glued))  # three packets in one write
        for byte in trickled[1]:  # one packet a byte at a time
            await peer.send(bytes([byte]))
            await asyncio.sleep(0.001)
        acks = [await peer.answer() for _ in range(4)]
        peer.close()
        return acks, server.metrics()

    acks, m = serve(intake, scenario)
    assert [a.qn for a in acks] == [qn for qn, _ in [*glued, trickled]]
    for a in acks:
        assert (a.cn, a.st, a.mn, a.pw, a.flag) == ("9014", "91", mn(0), PW, Flag(version=1, ack=False))
        assert a.cp.groups == ()  # CP=&&&&
    assert m.packet_errors == {} and m.packets_stored == 4
    assert readings_count(db) == 12


def test_heartbeat_answered_per_hj212_2025(db, clock, intake):
    add_sources(db, clock, 1)
    qn = "20260301080000123"
    asking = heartbeat(qn=qn, st="22", pw=PW, mn=mn(0), ack=True)
    silent = heartbeat(qn="20260301080030000", st="22", pw=PW, mn=mn(0), ack=False)
    after_qn, after = data(i=1, version=VERSION_2025)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(asking)
        answer = await peer.answer()
        await peer.send(silent + after)
        next_answer = await peer.answer()  # the silent heartbeat got nothing: the next answer is the data's ack
        peer.close()
        return answer, next_answer, server.metrics()

    answer, next_answer, m = serve(intake, scenario)
    assert (answer.cn, answer.qn, answer.st, answer.mn) == ("9013", qn, "91", mn(0))
    assert answer.flag == Flag(version=VERSION_2025, ack=False)
    assert (next_answer.cn, next_answer.qn, next_answer.flag.version) == ("9014", after_qn, VERSION_2025)
    assert m.heartbeats == 2 and m.answers_sent == 1


def test_wrong_password_and_unknown_mn_are_refused_and_counted(db, clock, intake):
    add_sources(db, clock, 1)
    with db.transaction() as s:
        s.add(MonitoringSource(mn="MN-OFF", tenant="320700", kind="station", name="off", password=PW, active=False,
                               created_at=clock.now()))
    wrong_qn, wrong_pw = data(i=1, pw="000000")
    unknown_qn, unknown = data("NO-SUCH-LOGGER", i=2)
    _, unknown_silent = data("NO-SUCH-LOGGER", i=3, ack=False)
    off_qn, off = data("MN-OFF", i=4)
    good_qn, good = data(i=5)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(wrong_pw)
        first = await peer.answer()
        await peer.send(unknown + unknown_silent + off + good)
        rest = [await peer.answer() for _ in range(3)]
        peer.close()
        return [first, *rest], server.metrics()

    answers, m = serve(intake, scenario)
    assert [(a.cn, a.qn, a.cp.get("QnRtn")) for a in answers] == [
        ("9011", wrong_qn, "3"), ("9011", unknown_qn, "4"), ("9011", off_qn, "2"), ("9014", good_qn, None)]
    assert m.refused == {"bad_password": 1, "unknown_mn": 2, "inactive": 1}
    assert m.acks_sent == 1 and m.packets_stored == 1
    assert readings_count(db) == 3 and readings_count(db, "NO-SUCH-LOGGER") == 0


def test_a_connection_that_keeps_being_refused_is_closed(db, clock, intake):
    add_sources(db, clock, 1)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(b"".join(data(i=i, pw=f"guess{i}")[1] for i in range(5)))
        closed = await peer.closed()
        return closed, server.metrics()

    closed, m = serve(intake, scenario, max_refusals=3, auth_cache_s=0)
    assert closed and m.closed_refusals == 1 and m.refused == {"bad_password": 3}


def test_idle_connection_is_closed(db, clock, intake):
    async def scenario(server):
        peer = await Peer.connect(server)
        closed = await peer.closed()
        await until(lambda: server.metrics().connections_active == 0)
        return closed, server.metrics()

    closed, m = serve(intake, scenario, idle_timeout_s=0.2)
    assert closed and m.closed_idle == 1


def test_connections_beyond_the_maximum_are_closed_at_once(db, clock, intake):
    devices = add_sources(db, clock, 3)

    async def scenario(server):
        peers = [await Peer.connect(server) for _ in devices]
        for i, peer in enumerate(peers):  # each is registered once it has been answered
            await peer.send(heartbeat(qn=f"2026030108000{i}000", st="22", pw=PW, mn=mn(i), ack=True))
            assert (await peer.answer()).cn == "9013"
        extra = await Peer.connect(server)
        refused = await extra.closed()
        qn, frame = data(mn(2), i=9)
        await peers[2].send(frame)
        still_served = (await peers[2].answer()).qn == qn
        for peer in peers:
            peer.close()
        return refused, still_served, server.metrics()

    refused, still_served, m = serve(intake, scenario, max_connections=3)
    assert refused and still_served
    assert (m.connections_rejected, m.connections_accepted) == (1, 3)


def test_oversize_frame_refused_and_garbage_closes_the_connection(db, clock, intake):
    add_sources(db, clock, 1)
    _, big = data(i=1, readings=40)  # a data segment far over 300 bytes
    qn, small = data(i=2, readings=1)
    bad_crc = [frame[:-6] + b"0000\r\n" for _, frame in (data(i=10 + i) for i in range(6))]

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(big + small)
        answer = await peer.answer()  # the oversize frame was skipped, the next packet served
        await peer.send(b"".join(bad_crc))
        closed = await peer.closed()
        return answer, closed, server.metrics()

    answer, closed, m = serve(intake, scenario, max_length=300, max_consecutive_errors=3)
    assert answer.qn == qn and closed
    assert m.packet_errors["too_long"] == 1 and m.packet_errors["bad_crc"] == 4
    assert m.closed_garbage == 1 and m.packets_stored == 1
    assert readings_count(db) == 1


def test_split_upload_is_stored_whole(db, clock, intake):
    add_sources(db, clock, 1)
    qn = "20260301080000000"
    split = Flag(version=1, split=True, ack=True)
    parts = [encode(st="22", cn="2061", pw=PW, mn=mn(0), qn=qn, flag=split, pnum=2, pno=n,
                    cp={"DataTime": T0, f"a2100{n}-Avg": Decimal(n), f"a2100{n}-Flag": "N"}) for n in (1, 2)]

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(parts[0])
        first = await peer.answer()  # acknowledged on receipt: a stop-and-wait logger needs it to go on
        stored_before_last = readings_count(db)
        await peer.send(parts[1])
        second = await peer.answer()  # after the whole upload was stored
        peer.close()
        return first, stored_before_last, second, server.metrics()

    first, stored_before_last, second, m = serve(intake, scenario)
    assert (first.cn, first.qn, second.cn, second.qn) == ("9014", qn, "9014", qn)
    assert stored_before_last == 0 and readings_count(db) == 2
    assert (m.split_parts, m.splits_completed, m.packets_stored) == (2, 1, 1)


def test_packets_whose_store_fails_are_not_acknowledged(db, clock):
    devices = add_sources(db, clock, 2)

    def rules(s, rows):  # a threshold rule that fails on one source's data
        if any(r.mn == mn(1) for r in rows):
            raise RuntimeError("rule failed")

    intake = ReadingsIntake(db, clock, hooks=[rules])
    good = [data(mn(0), i=i) for i in range(3)]
    bad = [data(mn(1), i=i) for i in range(3)]

    async def scenario(server):
        good_peer, bad_peer = await Peer.connect(server), await Peer.connect(server)
        await bad_peer.send(b"".join(f for _, f in bad))
        await good_peer.send(b"".join(f for _, f in good))
        acks = [await good_peer.answer() for _ in good]
        await until(lambda: server.metrics().packets_unstored == 3)
        good_peer.close()
        bad_peer.close()
        return acks, bad_peer.pending, server.metrics()

    acks, bad_answers, m = serve(intake, scenario, batch_interval_s=0.3)
    assert [a.qn for a in acks] == [qn for qn, _ in good] and bad_answers == []
    assert m.store_failures >= 1 and m.acks_sent == 3 and m.packets_unstored == 3
    assert readings_count(db, mn(0)) == 9 and readings_count(db, devices[1][0]) == 0


def test_stop_stores_what_is_queued_and_acknowledges_it(db, clock, intake):
    add_sources(db, clock, 1)
    packets = [data(i=i) for i in range(5)]

    async def main():
        server = IngestServer(IngestConfig(port=0, metrics_interval_s=0, batch_interval_s=600),
                              authenticate=intake.verdict, sink=intake.store_packets)
        await server.start()
        # more connections than packets: the batch waits for the others (one each) before filling
        idle = [await Peer.connect(server) for _ in range(len(packets) + 1)]
        peer = await Peer.connect(server)
        await peer.send(b"".join(f for _, f in packets))
        await until(lambda: server.metrics().packets_queued == 5)
        assert readings_count(db) == 0  # waiting for its batch to fill
        await server.stop()
        for other in idle:
            other.close()
        acks = [await peer.answer() for _ in packets]
        return acks, await peer.closed(), server.metrics()

    acks, closed, m = asyncio.run(main())
    assert [a.qn for a in acks] == [qn for qn, _ in packets] and closed
    assert m.packets_stored == 5 and readings_count(db) == 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gridloop_ingest_process_stores_and_exits_cleanly_on_sigterm(db, clock, tmp_path):
    add_sources(db, clock, 2)
    port = _free_port()
    env = {**os.environ, "GRIDLOOP_DATABASE_URL": db.url, "GRIDLOOP_INGEST_PORT": str(port),
           "GRIDLOOP_SECRET_KEY": "test", "GRIDLOOP_LOG_JSON": "false", "GRIDLOOP_REDIS_URL": ""}
    process = subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "ingest"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    async def client():
        async with asyncio.timeout(60):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    break
                except OSError:
                    assert process.poll() is None, process.stdout.read().decode()
                    await asyncio.sleep(0.1)
        peer = Peer(reader, writer)
        sent = [data(mn(1), i=i) for i in range(4)]
        await peer.send(b"".join(f for _, f in sent))
        acks = [await peer.answer() for _ in sent]
        process.send_signal(signal.SIGTERM)
        return [a.qn for a in acks] == [qn for qn, _ in sent], await peer.closed()

    try:
        acked, closed = asyncio.run(client())
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
    assert acked and closed
    assert process.returncode == 0, output
    assert "ingest stopped" in output
    assert readings_count(db, mn(1)) == 12
