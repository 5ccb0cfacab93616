"""The streaming framer: arbitrary read boundaries, glued packets, garbage, bounded buffer."""

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.hj212 import Framer, FramingError, Packet, PacketError, TooLongError, parse

from .vectors import AIR_2011_LOWERCASE, APPENDIX_A, MINUTE_2051, PUBLISHED, REALTIME_2011

STREAM = b"".join(PUBLISHED.values()) + MINUTE_2051
EXPECTED = [parse(frame) for frame in PUBLISHED.values()] + [parse(MINUTE_2051)]


def feed_in_pieces(framer: Framer, data: bytes, cuts: list[int]) -> list[Packet | PacketError]:
    out: list[Packet | PacketError] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    for start, end in pairwise(bounds):
        out += framer.feed(data[start:end])
        assert framer.buffered <= framer.max_frame
    return out


def test_glued_packets_in_one_read_all_come_out_in_order() -> None:
    assert Framer().feed(STREAM) == EXPECTED


def test_one_byte_at_a_time_gives_the_same_packets() -> None:
    framer = Framer()
    out = [item for byte in STREAM for item in framer.feed(bytes([byte]))]
    assert out == EXPECTED and framer.buffered == 0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
def test_random_split_points_give_the_same_packets(cuts: list[int]) -> None:
    framer = Framer()
    assert feed_in_pieces(framer, STREAM, cuts) == EXPECTED
    assert framer.buffered == 0


def test_garbage_before_and_between_packets_is_reported_once_and_skipped() -> None:
    out = Framer().feed(b"hello" + APPENDIX_A + b"\x00\xffjunk#" + REALTIME_2011)
    assert [type(item) for item in out] == [FramingError, Packet, FramingError, Packet]
    assert out[0].raw == b"hello" and out[2].raw == b"\xffjunk#"  # the NUL counts as blank


def test_blank_lines_between_packets_are_ignored() -> None:
    assert Framer().feed(b"\r\n" + APPENDIX_A + b"\r\n \r\n" + REALTIME_2011) == [
        parse(APPENDIX_A),
        parse(REALTIME_2011),
    ]


def test_extra_hash_before_a_packet_is_skipped() -> None:
    out = Framer().feed(b"#" + APPENDIX_A)
    assert [type(item) for item in out] == [FramingError, Packet]


def test_lost_crlf_refuses_the_first_packet_and_keeps_the_second() -> None:
    out = Framer().feed(APPENDIX_A[:-2] + REALTIME_2011)
    assert isinstance(out[0], FramingError) and out[1] == parse(REALTIME_2011)


def test_bad_packet_in_the_stream_does_not_lose_the_next_one() -> None:
    bad = APPENDIX_A.replace(b"1C80", b"0000")
    out = Framer().feed(bad + REALTIME_2011)
    assert out[0].reason == "bad_crc" and out[1] == parse(REALTIME_2011)


def test_declared_length_over_the_maximum_is_refused_without_waiting_for_the_body() -> None:
    framer = Framer(max_length=200)
    out = framer.feed(AIR_2011_LOWERCASE[:10])
    assert [item.reason for item in out] == ["too_long"]
    out = framer.feed(AIR_2011_LOWERCASE[10:] + APPENDIX_A)
    assert out == [parse(APPENDIX_A)]


def test_frame_without_crlf_is_cut_off_at_the_maximum() -> None:
    framer = Framer(max_length=150)
    out = framer.feed(b"##0050" + b"a" * 5000)
    assert [type(item) for item in out] == [TooLongError]
    assert framer.buffered <= 1
    assert framer.feed(b"b" * 10 + b"\r\n" + APPENDIX_A) == [parse(APPENDIX_A)]


def test_hashes_without_length_resynchronise_on_the_next_packet() -> None:
    out = Framer().feed(b"##ab;whatever\r\n" + APPENDIX_A)
    assert [type(item) for item in out] == [FramingError, Packet]


def test_endless_garbage_keeps_the_buffer_empty() -> None:
    framer = Framer()
    for _ in range(100):
        framer.feed(b"x" * 1000)
        assert framer.buffered == 0
    assert framer.feed(APPENDIX_A) == [parse(APPENDIX_A)]


def test_flush_reports_an_unfinished_frame() -> None:
    framer = Framer()
    assert framer.feed(APPENDIX_A[:50]) == []
    (error,) = framer.flush()
    assert error.reason == "bad_framing" and framer.buffered == 0
    assert framer.flush() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=10), st.integers(0, 400))
def test_arbitrary_bytes_yield_only_packets_or_packet_errors(chunks: list[bytes], max_length: int) -> None:
    framer = Framer(max_length=max_length)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, Packet | PacketError)
        assert framer.buffered <= framer.max_frame


def test_hash_held_back_while_skipping_can_start_the_next_packet() -> None:
    # Found by fuzzing: the '#' kept at the end of a skipped read, completed by the next read.
    framer = Framer()
    assert [item.reason for item in framer.feed(b"##?" + APPENDIX_A[:1])] == ["bad_framing"]
    assert framer.feed(APPENDIX_A[1:]) == [parse(APPENDIX_A)]
