"""Fuzzing: mutated valid packets and arbitrary bytes only ever yield a Packet or a PacketError.

CI runs these with HJ212_FUZZ_EXAMPLES (default 300, a few seconds); raise it for a deep run.
"""

import os
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.hj212 import Framer, Packet, PacketError, parse

from .vectors import MINUTE_2051, PUBLISHED, wrap

EXAMPLES = int(os.environ.get("HJ212_FUZZ_EXAMPLES", "300"))
SEEDS = [*PUBLISHED.values(), MINUTE_2051]
fuzz_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.fuzz

_INTERESTING = b"#&;,=-.\r\n0123456789AaFfNZ\x00\xff\xe4\xb8"


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "duplicate", "truncate"]))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from(_INTERESTING))
        elif op == "insert":
            data[at:at] = draw(st.binary(max_size=8) | st.sampled_from([b"&&", b";", b",", b"=", b"##", b"\r\n"]))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif op == "duplicate":
            data[at:at] = data[max(0, at - 16) : at]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def _only_packets_or_errors(frame: bytes) -> None:
    for check_crc in (True, False):
        try:
            assert isinstance(parse(frame, check_crc=check_crc), Packet)
        except PacketError as exc:
            assert exc.reason and exc.message


@fuzz_settings
@given(mutated())
def test_mutated_frames_parse_or_raise_packet_error(frame: bytes) -> None:
    _only_packets_or_errors(frame)


@fuzz_settings
@given(mutated())
def test_mutated_segments_with_valid_framing_parse_or_raise_packet_error(frame: bytes) -> None:
    # Re-frame the mutated bytes so length and CRC are right and the fuzzing reaches the fields.
    body = frame[6:-6] if len(frame) > 12 else frame
    _only_packets_or_errors(wrap(body))


@fuzz_settings
@given(st.lists(mutated(), min_size=1, max_size=5), st.lists(st.integers(0, 2000), max_size=10))
def test_framer_on_a_stream_of_mutated_frames_yields_only_packets_or_errors(
    frames: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frames)
    bounds = [0, *sorted(c for c in set(cuts) if c < len(stream)), len(stream)]
    framer = Framer(max_length=1024)
    for start, end in pairwise(bounds):
        for item in framer.feed(stream[start:end]):
            assert isinstance(item, Packet | PacketError)
        assert framer.buffered <= framer.max_frame


@fuzz_settings
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise_anything_but_packet_error(data: bytes) -> None:
    _only_packets_or_errors(data)
    _only_packets_or_errors(wrap(data))
