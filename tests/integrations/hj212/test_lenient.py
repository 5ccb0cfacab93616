"""Lenient parsing: what deployed loggers send beyond HJ 212 — a frame without its CRLF (MQTT and HTTP
frame each message themselves; some loggers omit it on TCP too) and times with milliseconds — is
accepted and named in the packet's deviations; the strict parser still refuses it."""

import pytest

from integrations.hj212 import CrcError, Framer, FramingError, Packet, TimeError, crc16, parse

from .vectors import APPENDIX_A, REALTIME_2011, REALTIME_2011_B


def framed(segment: bytes, *, crlf: bool = True) -> bytes:
    return b"##%04d%b%04X%b" % (len(segment), segment, crc16(segment), b"\r\n" if crlf else b"")


def segment_of(frame: bytes) -> bytes:
    return frame[6:-6]


MILLIS = framed(b"QN=20231008123340461;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
                b"CP=&&DataTime=20231008123340250;w01008-SampleTime=20231008123339999,w01008-Rtd=1.5&&")


def test_a_frame_without_crlf_is_refused_strictly_and_taken_leniently() -> None:
    bare = REALTIME_2011[:-2]
    with pytest.raises(FramingError):
        parse(bare)
    packet = parse(bare, lenient=True)
    assert packet.deviations == ("no_crlf",)
    assert packet.cp == parse(REALTIME_2011).cp
    assert parse(REALTIME_2011, lenient=True).deviations == ()


def test_a_frame_without_crlf_still_needs_its_length_and_crc() -> None:
    bare = REALTIME_2011[:-2]
    with pytest.raises(CrcError):
        parse(bare[:-4] + b"0000", lenient=True)
    with pytest.raises(FramingError):
        parse(bare[1:], lenient=True)


def test_times_with_milliseconds_are_refused_strictly_and_taken_leniently() -> None:
    with pytest.raises(TimeError) as refused:
        parse(MILLIS)
    assert refused.value.field == "DataTime"
    packet = parse(MILLIS, lenient=True)
    assert packet.deviations == ("time_millis",)
    assert packet.cp.data_time.isoformat() == "2023-10-08T12:33:40.250000+08:00"
    (reading,) = packet.cp.readings
    assert reading.sample_time.isoformat() == "2023-10-08T12:33:39.999000+08:00"
    assert reading.data_time == packet.cp.data_time


def test_both_deviations_in_one_packet_are_both_named() -> None:
    assert parse(MILLIS[:-2], lenient=True).deviations == ("no_crlf", "time_millis")


def test_sixteen_or_eighteen_digits_stay_refused_even_leniently() -> None:
    for text in (b"2023100812334025", b"202310081233402500"):
        bad = framed(segment_of(MILLIS).replace(b"20231008123340250", text))
        with pytest.raises(TimeError):
            parse(bad, lenient=True)


def test_the_lenient_framer_cuts_glued_frames_without_crlf_by_their_length() -> None:
    stream = REALTIME_2011[:-2] + REALTIME_2011_B[:-2] + APPENDIX_A
    strict = Framer().feed(stream)
    assert [type(p) for p in strict] == [FramingError, FramingError, Packet]  # a lost CRLF refuses the part before
    lenient = Framer(lenient=True).feed(stream)
    assert [p.deviations for p in lenient] == [("no_crlf",), ("no_crlf",), ()]
    assert [p.qn for p in lenient] == [parse(f).qn for f in (REALTIME_2011, REALTIME_2011_B, APPENDIX_A)]


def test_a_standard_stream_a_byte_at_a_time_has_no_deviation_in_lenient_mode() -> None:
    framer = Framer(lenient=True)
    out = []
    for byte in REALTIME_2011 + REALTIME_2011_B:
        out += framer.feed(bytes([byte]))
    assert [p.deviations for p in out] == [(), ()]


def test_a_last_frame_without_crlf_waits_then_is_taken_by_unterminated() -> None:
    framer = Framer(lenient=True)
    assert framer.feed(REALTIME_2011[:-2]) == []  # its CRLF may still come
    (packet,) = framer.unterminated()
    assert packet.deviations == ("no_crlf",) and framer.buffered == 0
    assert framer.feed(b"\r\n") == []  # a late CRLF is a blank between frames


def test_unterminated_takes_nothing_from_a_frame_still_arriving_or_with_a_wrong_crc() -> None:
    framer = Framer(lenient=True)
    framer.feed(REALTIME_2011[:40])
    assert framer.unterminated() == []
    framer = Framer(lenient=True)
    framer.feed(REALTIME_2011[:-6] + b"0000")
    assert framer.unterminated() == []
    assert Framer().feed(REALTIME_2011[:-2]) == [] and Framer().unterminated() == []


def test_a_lone_cr_after_the_crc_waits_for_its_lf() -> None:
    framer = Framer(lenient=True)
    assert framer.feed(REALTIME_2011[:-1]) == []
    (packet,) = framer.feed(b"\n")
    assert packet.deviations == ()


def test_flush_takes_a_whole_frame_without_crlf_at_end_of_stream() -> None:
    framer = Framer(lenient=True)
    framer.feed(REALTIME_2011[:-2])
    (packet,) = framer.flush()
    assert isinstance(packet, Packet) and packet.deviations == ("no_crlf",)
    strict = Framer()
    strict.feed(REALTIME_2011[:-2])
    (error,) = strict.flush()
    assert isinstance(error, FramingError)
