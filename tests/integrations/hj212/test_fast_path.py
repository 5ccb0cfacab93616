"""The fast path (integrations/hj212/fast.py) and the reference parser agree: on every segment the
fast path takes it builds the very packet the reference builds, and `parse`/`parse_segment` answer
what the reference answers (the same packet, or the same refusal) — on a corpus of valid and
malformed packets and on fuzzed ones. The CRC without a per-byte loop equals the per-byte one."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.hj212 import Packet, PacketError, crc16, encode, parse, parse_segment
from integrations.hj212.crc import crc16_bytewise
from integrations.hj212.fast import fast_segment
from integrations.hj212.packet import parse_segment_reference

from .test_fuzz import mutated
from .test_lenient import MILLIS
from .vectors import MINUTE_2051, MINUTE_2051_SEGMENT, PUBLISHED, wrap

EXAMPLES = int(os.environ.get("HJ212_FUZZ_EXAMPLES", "300"))
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

HEAD = "QN=20240315103000123;ST=31;CN=2051;PW=123456;MN=MN0001;Flag=4;"
TAKEN = [  # the fast path's shape
    *(frame[6:-6].decode() for frame in PUBLISHED.values()),
    MINUTE_2051_SEGMENT,
    HEAD + "CP=&&&&",
    HEAD + "CP=&&DataTime=20240315102900;a21026-Avg=0.0,a21026-Flag=D;a34013-Avg=5.1,a34013-Flag=n&&",
    "ST=31;CN=2051;PW=123456;MN=MN0001;CP=&&DataTime=20240315102900;a21026-Rtd=1&&",  # 2005: no QN, no Flag
    "QN=20240315103000000;ST=31;CN=2011;PW=p;MN=m;Flag=9;CP=&&a21026-Rtd=-.5,a21026-EFlag=x,a21026-Flag=N&&",
    HEAD + "CP=&&DataTime=20240315102900;;a21026-Rtd=+1.,a21026-SampleTime=20240315102859;&&",
    HEAD + "CP=&&DataTime=20240315102900;DataTime=20240315103000;a21026-Rtd=1;a21026-Flag=N;a21026-Flag=T&&",
    HEAD + "CP=&&RtdInterval=30;x-y-Avg=1;-Avg=2;a-Bogus=3;a21026-Avg=07.50;SB1-RS=1&&",
    HEAD + "CP=&&a21026-Avg=1,a21026-Avg=2;PolId=a21026,a21026-Info=中文&&",
]
REFERENCE_ONLY = [  # valid, but not the fast path's shape
    "QN=20240315103000123;ST=31;CN=2051;PW=1;MN=m;Flag=7;PNUM=2;PNO=1;CP=&&a21026-Avg=1&&",  # a split part
    "ST=31;QN=20240315103000123;CN=2051;PW=1;MN=m;CP=&&a21026-Avg=1&&",  # another order
    HEAD.replace("Flag=4;", "Flag=4;Extra=1;") + "CP=&&a21026-Avg=1&&",  # an extra header field
    HEAD.replace("PW=123456", "PW=a=b") + "CP=&&a21026-Avg=1&&",
    HEAD.replace("MN=MN0001", "MN=a,b") + "CP=&&a21026-Avg=1&&",
]
REFUSED = [
    HEAD + "CP=&&a21026-Avg=1e5&&",
    HEAD + "CP=&&a21026-Avg=NaN&&",
    HEAD + "CP=&&a21026-Avg=１&&",  # a full-width digit
    HEAD + "CP=&&a21026-Avg=&&",
    HEAD + "CP=&&a21026-Flag=NN;a21026-Avg=1&&",
    HEAD + "CP=&&a21026-Flag=1&&",
    HEAD + "CP=&&DataTime=20240230102900;a21026-Avg=1&&",  # 30 February
    HEAD + "CP=&&DataTime=2024031510290;a21026-Avg=1&&",
    HEAD + "CP=&&DataTime=202403151029001;a21026-Avg=1&&",
    HEAD + "CP=&&DataTime=20240315102900123;a21026-Avg=1&&",  # milliseconds: lenient only
    HEAD + "CP=&&a21026-SampleTime=2024031510290x,a21026-Avg=1&&",
    HEAD + "CP=&&a21026-Avg=1,,a21026-Flag=N&&",
    HEAD + "CP=&&a21026-Avg&&",
    HEAD + "CP=&&=1&&",
    HEAD + "CP=&&a=1&&b=2&&",
    HEAD + "CP=&a21026-Avg=1&&",
    HEAD + "CP=&&a21026-Avg=1&",
    HEAD.replace("QN=20240315103000123", "QN=20241315103000123") + "CP=&&&&",
    HEAD.replace("QN=20240315103000123", "QN=2024031510300012") + "CP=&&&&",
    HEAD.replace("Flag=4", "Flag=256") + "CP=&&&&",
    HEAD.replace("Flag=4", "Flag=6") + "CP=&&&&",  # D=1 without PNUM/PNO
    HEAD.replace("Flag=4", "Flag=0004") + "CP=&&&&",
    HEAD.replace("ST=31;", "") + "CP=&&&&",
    HEAD.replace("PW=123456", "PW=") + "CP=&&&&",
    HEAD + HEAD + "CP=&&&&",
    HEAD[:-1] + "CP=&&&&",
    HEAD,
    "",
]


def _outcome(call, *args, **kwargs) -> tuple:
    """What a parse answered, comparable: the packet's repr (exact: times with their zone, decimals
    with their digits), or the refusal's type, message and field."""
    try:
        return ("packet", repr(call(*args, **kwargs)))
    except PacketError as exc:
        return ("refused", type(exc).__name__, exc.message, exc.field)


def _agree(segment: str) -> None:
    fast = fast_segment(segment, Packet)
    for lenient in (False, True):
        reference = _outcome(parse_segment_reference, segment, lenient=lenient)
        if fast is not None:
            assert reference == ("packet", repr(fast))
        assert _outcome(parse_segment, segment, lenient=lenient) == reference


@pytest.mark.parametrize("segment", TAKEN)
def test_the_fast_path_takes_the_common_shape_and_builds_the_reference_packet(segment: str) -> None:
    assert fast_segment(segment, Packet) is not None
    _agree(segment)


@pytest.mark.parametrize("segment", REFERENCE_ONLY + REFUSED)
def test_what_the_fast_path_leaves_is_decided_by_the_reference(segment: str) -> None:
    assert fast_segment(segment, Packet) is None
    _agree(segment)


def test_refusals_stay_refusals_with_the_reference_reason() -> None:
    for segment in REFUSED:
        assert _outcome(parse_segment, segment)[0] == "refused", segment


def test_the_lenient_deviations_come_out_as_before() -> None:
    # milliseconds go the reference's way and are named; a missing CRLF is named by parse itself
    strict, lenient = _outcome(parse, MILLIS), parse(MILLIS[:-2], lenient=True)
    assert strict[:2] == ("refused", "TimeError")
    assert lenient.deviations == ("no_crlf", "time_millis")
    assert parse(MINUTE_2051[:-2], lenient=True).deviations == ("no_crlf",)


def test_an_encoded_packet_round_trips_through_the_fast_path() -> None:
    frame = encode(st="31", cn="2051", pw="123456", mn="BENCHMN0001", qn="20260302000030007",
                   cp={"DataTime": "20260302000000", "a21026-Avg": "130.0", "a21026-Flag": "N"})
    packet = parse(frame)
    assert fast_segment(packet.segment, Packet) == packet
    assert packet.qn_time.microsecond == 7000
    assert [(r.code, str(r.value), r.flag) for r in packet.cp.readings] == [("a21026", "130.0", "N")]


@fuzz_settings
@given(mutated())
def test_fuzzed_segments_get_the_reference_answer(frame: bytes) -> None:
    body = frame[6:-6] if len(frame) > 12 else frame
    try:
        segment = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    _agree(segment)


@fuzz_settings
@given(mutated())
def test_fuzzed_frames_get_the_reference_answer(frame: bytes) -> None:
    for candidate in (frame, wrap(frame[6:-6] if len(frame) > 12 else frame)):
        for lenient in (False, True):
            got = _outcome(parse, candidate, lenient=lenient)
            raw = candidate
            if lenient and raw[-2:] != b"\r\n" and raw[:2] == b"##":
                continue  # the no-CRLF path goes through parse itself; covered above
            body = raw[6:-6]
            if got[0] == "packet":
                assert got == ("packet", repr(parse_segment_reference(body.decode(), lenient=lenient)))


@fuzz_settings
@given(st.binary(max_size=3000))
def test_the_crc_equals_the_per_byte_definition(data: bytes) -> None:
    assert crc16(data) == crc16_bytewise(data)


def test_the_crc_equals_the_per_byte_definition_at_every_length_near_the_fold() -> None:
    for n in range(0, 300):
        data = bytes((i * 37 + n) % 256 for i in range(n))
        assert crc16(data) == crc16_bytewise(data), n
    assert crc16(bytearray(b"123456789")) == crc16_bytewise(b"123456789")
