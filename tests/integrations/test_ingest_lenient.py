"""The listener takes what deployed loggers send beyond HJ 212 — frames without CRLF, times with
milliseconds — by default, counts each deviation per source, and refuses them when strict."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from integrations.hj212 import Flag, encode, format_qn
from workflows.readings import StoredReading

from .test_ingest_server import PW, T0, Peer, add_sources, mn, readings_count, serve


def packet(i: int, *, device: str | None = None, millis: bool = False) -> tuple[str, bytes]:
    qn = format_qn(T0 + timedelta(milliseconds=i))
    frame = encode(st="22", cn="2011", pw=PW, mn=device or mn(0), qn=qn, flag=Flag(version=1, ack=True),
                   cp={"DataTime": T0 + timedelta(seconds=i), "a21026-Rtd": "0.5", "a21026-Flag": "N"})
    if millis:  # the DataTime a logger sends with its milliseconds (17 digits): the frame is rebuilt
        body = frame[6:-6].replace(b"DataTime=20260301080000", b"DataTime=20260301080000125")
        frame = encode_raw(body)
    return qn, frame


def encode_raw(body: bytes) -> bytes:
    from integrations.hj212 import crc16

    return b"##%04d%b%04X\r\n" % (len(body), body, crc16(body))


def test_a_logger_without_crlf_is_acknowledged_packet_by_packet_and_counted(db, clock):
    add_sources(db, clock, 2)
    sent = [packet(i) for i in range(3)]

    async def scenario(server):
        peer = await Peer.connect(server)
        acks = []
        for _, frame in sent:  # one packet, then wait for its answer: no CRLF ever follows
            await peer.send(frame[:-2])
            acks.append(await peer.answer())
        standard = await Peer.connect(server)  # another source, by the book
        await standard.send(packet(9, device=mn(1))[1])
        await standard.answer()
        peer.close()
        standard.close()
        return acks, server.metrics()

    acks, m = serve(intake_of(db, clock), scenario)
    assert [a.qn for a in acks] == [qn for qn, _ in sent]
    assert m.packets_stored == 4 and m.packet_errors == {}
    assert m.deviations == {mn(0): {"no_crlf": 3}}
    assert readings_count(db, mn(0)) == 3


def test_glued_frames_without_crlf_are_each_stored(db, clock):
    add_sources(db, clock, 1)
    sent = [packet(i) for i in range(4)]

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(b"".join(frame[:-2] for _, frame in sent))
        acks = [await peer.answer() for _ in sent]
        peer.close()
        return acks, server.metrics()

    acks, m = serve(intake_of(db, clock), scenario)
    assert sorted(a.qn for a in acks) == sorted(qn for qn, _ in sent)
    assert m.deviations == {mn(0): {"no_crlf": 4}} and readings_count(db) == 4


def test_a_data_time_with_milliseconds_is_stored_at_that_time(db, clock):
    add_sources(db, clock, 1)
    qn, frame = packet(0, millis=True)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(frame)
        ack = await peer.answer()
        peer.close()
        return ack, server.metrics()

    ack, m = serve(intake_of(db, clock), scenario)
    assert ack.qn == qn and m.deviations == {mn(0): {"time_millis": 1}}
    with db.session() as s:
        (stored,) = s.scalars(select(StoredReading)).all()
    assert stored.data_time.astimezone(T0.tzinfo) == T0 + timedelta(milliseconds=125)


def test_strict_listener_refuses_both_and_stores_nothing(db, clock):
    add_sources(db, clock, 1)
    _, millis = packet(0, millis=True)
    _, bare = packet(1)

    async def scenario(server):
        peer = await Peer.connect(server)
        await peer.send(millis + bare[:-2])
        await asyncio.sleep(1.0)  # past the lenient grace: nothing is taken
        peer.close()
        await asyncio.sleep(0.2)
        return server.metrics()

    m = serve(intake_of(db, clock), scenario, lenient=False)
    assert m.packets_stored == 0 and m.deviations == {}
    assert sum(m.packet_errors.values()) == 2
    assert readings_count(db) == 0


def intake_of(db, clock):
    from workflows.readings import ReadingsIntake

    return ReadingsIntake(db, clock)
