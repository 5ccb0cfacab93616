"""Header decoding: the Flag bits of 2017 and 2025, and 2005-style packets without QN or Flag."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations.hj212 import VERSION_2005, VERSION_2017, VERSION_2025, Flag, parse, parse_segment

from .vectors import wrap


@pytest.mark.parametrize(
    ("value", "version", "split", "ack", "edition"),
    [
        (0, VERSION_2005, False, False, "2005"),
        (1, VERSION_2005, False, True, "2005"),
        (4, VERSION_2017, False, False, "2017"),
        (5, VERSION_2017, False, True, "2017"),
        (6, VERSION_2017, True, False, "2017"),
        (7, VERSION_2017, True, True, "2017"),
        (8, VERSION_2025, False, False, "2025"),
        (9, VERSION_2025, False, True, "2025"),
        (10, VERSION_2025, True, False, "2025"),
        (11, VERSION_2025, True, True, "2025"),
        (12, 3, False, False, None),
    ],
)
def test_flag_bits_are_version_then_d_then_a(value: int, version: int, split: bool, ack: bool, edition: str) -> None:
    flag = Flag.from_value(value)
    assert (flag.version, flag.split, flag.ack, flag.edition) == (version, split, ack, edition)
    assert flag.value == value


@given(st.integers(0, 255))
def test_flag_value_round_trips(value: int) -> None:
    assert Flag.from_value(value).value == value


def test_flag_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        Flag.from_value(256)
    with pytest.raises(ValueError):
        Flag(version=64)


@pytest.mark.parametrize(("flag", "edition", "ack"), [(4, "2017", False), (5, "2017", True), (9, "2025", True)])
def test_packet_edition_and_ack_come_from_flag(flag: int, edition: str, ack: bool) -> None:
    packet = parse_segment(f"QN=20260105080000000;ST=22;CN=2011;PW=1;MN=M;Flag={flag};CP=&&&&")
    assert (packet.edition, packet.ack_wanted) == (edition, ack)


def test_unknown_version_bits_parse_with_no_edition() -> None:
    packet = parse_segment("QN=20260105080000000;ST=22;CN=2011;PW=1;MN=M;Flag=16;CP=&&&&")
    assert packet.flag == Flag(version=4) and packet.edition is None


def test_2005_style_packet_without_qn_or_flag_parses() -> None:
    seg = (
        b"ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20080818093000;B01-Rtd=56.4;011-Rtd=23.1,011-Flag=N&&"
    )
    packet = parse(wrap(seg))
    assert packet.qn is None and packet.qn_time is None and packet.flag is None
    assert packet.edition == "2005" and not packet.ack_wanted and not packet.is_split
    assert [(r.code, str(r.value), r.flag) for r in packet.cp.readings] == [("B01", "56.4", None), ("011", "23.1", "N")]


def test_2005_style_flag_1_wants_an_ack() -> None:
    packet = parse_segment("ST=32;CN=2011;PW=1;MN=M;Flag=1;CP=&&&&")
    assert packet.ack_wanted and packet.edition == "2005"


def test_split_packet_header_has_pnum_and_pno() -> None:
    packet = parse_segment("QN=20240101000000000;ST=32;CN=2061;PW=1;MN=M;Flag=7;PNUM=3;PNO=2;CP=&&&&")
    assert (packet.pnum, packet.pno, packet.is_split, packet.ack_wanted) == (3, 2, True, True)


def test_2005_style_split_without_flag_is_recognised_by_pnum() -> None:
    packet = parse_segment("ST=32;CN=2061;PW=1;MN=M;PNUM=2;PNO=1;CP=&&&&")
    assert packet.is_split and packet.pnum == 2
