"""Building packets: exact reproduction of published packets, 9014 acks, 9015 heartbeats, round trips."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.hj212 import (
    CHINA_TZ,
    VALUE_KINDS,
    Flag,
    data_ack,
    encode,
    encode_cp,
    heartbeat,
    parse,
    parse_segment,
)

from .vectors import AIR_2011_LOWERCASE, APPENDIX_A, REALTIME_2011

MN = "010000A8900016F000169DC0"


def test_encoder_reproduces_appendix_a_packet() -> None:
    built = encode(qn="20160801085857223", st="32", cn="1062", pw="100000", mn=MN, flag=5, cp={"RtdInterval": 30})
    assert built == APPENDIX_A


def test_encoder_reproduces_2011_packet_with_sample_time() -> None:
    at = datetime(2023, 10, 8, 12, 33, 40, tzinfo=CHINA_TZ)
    cp = {"DataTime": at, "w01008-SampleTime": at, "w01008-Rtd": Decimal("123.456")}
    built = encode(qn="20231008123340461", st="22", cn="2011", pw="123456", mn=MN, flag=Flag(ack=True), cp=cp)
    assert built == REALTIME_2011


def test_encoder_groups_keys_of_one_code_and_writes_uppercase_crc() -> None:
    packet = parse(AIR_2011_LOWERCASE)
    built = encode(
        qn=packet.qn, st=packet.st, cn=packet.cn, pw=packet.pw, mn=packet.mn, flag=packet.flag, cp=packet.cp.as_dict()
    )
    assert built == AIR_2011_LOWERCASE[:-6] + b"CC01\r\n"


def test_data_ack_answers_with_the_packets_qn_st_91_and_no_ack_flag() -> None:
    ack = data_ack(parse(APPENDIX_A))
    assert ack == encode(qn="20160801085857223", st="91", cn="9014", pw="100000", mn=MN, flag=4)
    assert b"CP=&&&&" in ack


def test_data_ack_keeps_the_2025_version_bits() -> None:
    packet = parse_segment("QN=20260105080000000;ST=31;CN=2051;PW=1;MN=M;Flag=11;PNUM=2;PNO=1;CP=&&&&")
    ack = parse(data_ack(packet))
    assert (ack.cn, ack.qn, ack.flag) == ("9014", "20260105080000000", Flag(version=2))


def test_data_ack_to_2005_style_packet_has_no_qn_or_flag() -> None:
    ack = parse(data_ack(parse_segment("ST=32;CN=2011;PW=1;MN=M;Flag=1;CP=&&&&")))
    assert ack.qn is None and ack.flag == Flag(version=0)
    bare = parse(data_ack(parse_segment("ST=32;CN=2011;PW=1;MN=M;CP=&&&&")))
    assert bare.flag is None


def test_heartbeat_is_a_2025_9015_packet_with_empty_cp() -> None:
    at = datetime(2026, 1, 5, 0, 0, 0, 7000, tzinfo=UTC)
    packet = parse(heartbeat(qn=at, st="31", pw="123456", mn="M1", ack=True))
    assert (packet.cn, packet.qn, packet.edition, packet.ack_wanted) == ("9015", "20260105080000007", "2025", True)
    assert packet.cp.groups == ()


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.1, "0.1"), (1e-05, "0.00001"), (Decimal("1E+2"), "100"), (Decimal("49.20"), "49.20"), (-3, "-3")],
)
def test_numbers_are_written_in_plain_decimal_notation(value: float | Decimal | int, text: str) -> None:
    assert encode_cp({"a21026-Rtd": value}) == f"a21026-Rtd={text}"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cp": {"Info": "a;b"}},
        {"cp": {"a,b": "1"}},
        {"cp": {"x": float("nan")}},
        {"cp": {"x": True}},
        {"cp": {"DataTime": datetime(2024, 1, 1)}},  # naive: ambiguous
        {"mn": ""},
        {"pw": "a;b"},
        {"qn": "2024"},
        {"pnum": 2, "pno": 3},
        {"pnum": 2},
        {"flag": 300},
        {"cp": {"Info": "x" * 10_000}},
    ],
)
def test_encoder_refuses_what_cannot_be_written(kwargs: dict) -> None:
    fields = {"st": "32", "cn": "2011", "pw": "1", "mn": "M"} | kwargs
    with pytest.raises(ValueError):
        encode(**fields)


# --- property: encode -> parse round trip ---------------------------------------------------

_SAFE = st.text(st.characters(blacklist_characters=";,&=\r\n", blacklist_categories=("Cs",)), min_size=1, max_size=12)
_CODES = st.from_regex(r"[a-wA-W][0-9]{2,5}", fullmatch=True)
_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e9)
_TIMES = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda t: t.replace(microsecond=0, tzinfo=CHINA_TZ)
)


@st.composite
def cp_dicts(draw: st.DrawFn) -> dict:
    cp: dict = {}
    if draw(st.booleans()):
        cp["DataTime"] = draw(_TIMES)
    for code in draw(st.lists(_CODES, max_size=6, unique=True)):
        for kind in draw(st.lists(st.sampled_from(sorted(VALUE_KINDS)), min_size=1, max_size=4, unique=True)):
            cp[f"{code}-{kind}"] = draw(_DECIMALS)
        if draw(st.booleans()):
            cp[f"{code}-Flag"] = draw(st.sampled_from("NFMSDCTB"))
        if draw(st.booleans()):
            cp[f"{code}-SampleTime"] = draw(_TIMES)
    if draw(st.booleans()):
        cp["Info"] = draw(_SAFE)
    return cp


@settings(max_examples=200, deadline=None)
@given(
    cp=cp_dicts(),
    st_=st.sampled_from(["21", "22", "31", "32", "91"]),
    cn=st.sampled_from(["2011", "2051", "2061", "2031", "9014"]),
    pw=_SAFE,
    mn=_SAFE,
    flag=st.integers(0, 255).filter(lambda v: not v & 0b10),
    qn=st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)),
)
def test_encode_then_parse_round_trips(
    cp: dict, st_: str, cn: str, pw: str, mn: str, flag: int, qn: datetime | None
) -> None:
    qn_aware = None if qn is None else qn.replace(tzinfo=CHINA_TZ)
    packet = parse(encode(st=st_, cn=cn, pw=pw, mn=mn, flag=flag, qn=qn_aware, cp=cp))
    assert (packet.st, packet.cn, packet.pw, packet.mn, packet.flag) == (st_, cn, pw, mn, Flag.from_value(flag))
    if qn_aware is not None:
        assert packet.qn_time == qn_aware.replace(microsecond=qn_aware.microsecond // 1000 * 1000)
    assert list(packet.cp.as_dict()) == list(cp)
    assert packet.cp.data_time == cp.get("DataTime")
    for reading in packet.cp.readings:
        assert reading.value == cp[f"{reading.code}-{reading.kind}"]
        assert reading.flag == cp.get(f"{reading.code}-Flag")
        assert reading.sample_time == cp.get(f"{reading.code}-SampleTime")
    assert len(packet.cp.readings) == sum(1 for key in cp if key.partition("-")[2] in VALUE_KINDS)


def test_qn_from_a_utc_datetime_is_written_in_china_time() -> None:
    at = datetime(2024, 1, 1, 16, 30, tzinfo=timezone(timedelta(0)))
    assert parse(encode(st="32", cn="2011", pw="1", mn="M", qn=at)).qn == "20240102003000000"
