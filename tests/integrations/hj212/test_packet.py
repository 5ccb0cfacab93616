"""Parsing whole frames: the published packets, and tampered copies refused with the right reason."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from integrations.hj212 import (
    CHINA_TZ,
    REASONS,
    CrcError,
    PacketError,
    Reading,
    parse,
    parse_segment,
)

from .vectors import (
    ACK_9011,
    AIR_2011_LOWERCASE,
    APPENDIX_A,
    MINUTE_2051,
    PUBLISHED,
    REALTIME_2011,
    REALTIME_2011_B,
    RESTART_2081,
    segment_of,
    wrap,
)

MN = "010000A8900016F000169DC0"


def china(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHINA_TZ)


def reason_of(frame: bytes | str, **kwargs: int) -> str:
    with pytest.raises(PacketError) as info:
        parse(frame, **kwargs)
    assert info.value.reason in REASONS
    return info.value.reason


def test_appendix_a_packet_parses_header_and_keeps_unknown_cp_key() -> None:
    packet = parse(APPENDIX_A)
    assert (packet.qn, packet.st, packet.cn, packet.pw, packet.mn) == ("20160801085857223", "32", "1062", "100000", MN)
    assert packet.qn_time == china(2016, 8, 1, 8, 58, 57, 223000)
    assert packet.flag is not None and packet.flag.value == 5
    assert packet.ack_wanted and not packet.is_split and packet.edition == "2017"
    assert packet.cp.readings == ()
    assert packet.cp.extras == (("RtdInterval", "30"),)
    assert packet.segment == segment_of(APPENDIX_A).decode()


def test_9011_ack_carries_qnrtn_as_an_extra() -> None:
    packet = parse(ACK_9011)
    assert packet.cn == "9011" and not packet.ack_wanted
    assert packet.cp.get("QnRtn") == "1"


def test_2081_restart_time_has_data_time_and_keeps_restart_time_raw() -> None:
    packet = parse(RESTART_2081)
    assert packet.cp.data_time == china(2023, 10, 8, 13, 4, 52)
    assert packet.cp.extras == (("RestartTime", "20231007130452"),)


@pytest.mark.parametrize(
    ("frame", "at"),
    [(REALTIME_2011, china(2023, 10, 8, 12, 33, 40)), (REALTIME_2011_B, china(2023, 10, 8, 13, 23, 0))],
)
def test_2011_realtime_reading_has_value_sample_time_and_data_time(frame: bytes, at: datetime) -> None:
    packet = parse(frame)
    assert packet.cp.readings == (Reading("w01008", "Rtd", Decimal("123.456"), None, at, at, None),)


def test_lowercase_crc_packet_yields_seven_n_flagged_decimal_readings() -> None:
    packet = parse(AIR_2011_LOWERCASE)
    assert packet.mn == "Y80110010000010"
    readings = packet.cp.readings
    assert [r.code for r in readings] == ["a21005", "a21004", "a21007", "a21006", "a21001", "a21003", "a21002"]
    assert {r.kind for r in readings} == {"Rtd"} and {r.flag for r in readings} == {"N"}
    assert readings[2].value == Decimal("0.033") and str(readings[6].value) == "49.20"
    assert readings[0].data_time == china(2019, 10, 12, 13, 37, 10)


def test_data_time_is_china_time_utc_plus_8() -> None:
    at = parse(REALTIME_2011).cp.data_time
    assert at is not None and at.utcoffset() == timedelta(hours=8)
    assert at.astimezone(UTC) == datetime(2023, 10, 8, 4, 33, 40, tzinfo=UTC)


def test_minute_2051_packet_has_min_avg_max_zsavg_cou_per_pollutant() -> None:
    packet = parse(MINUTE_2051)
    so2 = {r.kind: r.value for r in packet.cp.readings if r.code == "a21026"}
    assert so2 == {
        "Min": Decimal("10.2"),
        "Avg": Decimal("12.5"),
        "Max": Decimal("15.1"),
        "ZsAvg": Decimal("14.0"),
        "Cou": Decimal("0.75"),
    }
    assert len(packet.cp.readings) == 22
    assert all(r.flag == "N" and r.data_time == china(2024, 3, 15, 10, 29) for r in packet.cp.readings)


def test_str_input_is_accepted_like_bytes() -> None:
    assert parse(APPENDIX_A.decode()) == parse(APPENDIX_A)


def test_uppercase_and_lowercase_crc_are_both_accepted() -> None:
    upper = AIR_2011_LOWERCASE[:-6] + b"CC01\r\n"
    assert parse(upper).cp == parse(AIR_2011_LOWERCASE).cp


def test_eflag_flag_letters_and_unknown_kinds_are_kept() -> None:
    seg = (
        "QN=20240101000000000;ST=32;CN=2061;PW=1;MN=M1;Flag=4;CP=&&DataTime=20240101000000;"
        "w01018-Avg=45.1,w01018-Flag=T,w01018-EFlag=A01,w01018-Info=probe 2;SB1-RS=1;PolId=w01018&&"
    )
    packet = parse(wrap(seg.encode()))
    cod, state = packet.cp.readings
    assert (cod.flag, cod.eflag, cod.value) == ("T", "A01", Decimal("45.1"))
    assert (state.code, state.kind, state.value) == ("SB1", "RS", Decimal(1))
    assert packet.cp.extras == (("w01018-Info", "probe 2"), ("PolId", "w01018"))


def test_unknown_header_fields_are_kept() -> None:
    packet = parse_segment("QN=20240101000000000;ST=32;CN=2011;PW=1;MN=M1;Flag=4;SK=abc;CP=&&&&")
    assert packet.header_extras == (("SK", "abc"),)


def test_chinese_text_is_counted_and_checksummed_as_utf8_bytes() -> None:
    seg = "ST=32;CN=3020;PW=1;MN=M1;Flag=4;CP=&&i12001-Info=设备正常&&"
    packet = parse(wrap(seg.encode()))
    assert packet.cp.get("i12001-Info") == "设备正常"
    # A sender counting characters instead of bytes (12 bytes vs 4 chars) is refused.
    assert reason_of(wrap(seg.encode(), length=len(seg))) == "bad_length"


# --- tampered copies ------------------------------------------------------------------------


def test_changed_digit_without_new_crc_is_bad_crc() -> None:
    tampered = REALTIME_2011.replace(b"Rtd=123.456", b"Rtd=923.456")
    with pytest.raises(CrcError) as info:
        parse(tampered)
    assert info.value.reason == "bad_crc" and info.value.raw == tampered


def test_crc_check_can_be_disabled() -> None:
    tampered = REALTIME_2011.replace(b"Rtd=123.456", b"Rtd=923.456")
    assert parse(tampered, check_crc=False).cp.readings[0].value == Decimal("923.456")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (APPENDIX_A.replace(b"##0101", b"##0102"), "bad_length"),
        (APPENDIX_A.replace(b"##0101", b"##01a1"), "bad_length"),
        (APPENDIX_A.replace(b"1C80\r\n", b"1G80\r\n"), "bad_crc"),
        (APPENDIX_A.replace(b"1C80\r\n", b"1C81\r\n"), "bad_crc"),
        (APPENDIX_A[:-2], "bad_framing"),
        (APPENDIX_A[:-2] + b"\n", "bad_framing"),
        (APPENDIX_A[1:], "bad_framing"),
        (b"##00\r\n", "bad_framing"),
        (b"", "bad_framing"),
        (wrap(b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=M;Flag=5;CP=&&X=\xff\xfe&&"), "bad_encoding"),
        (wrap(b"QN=20160801085857223;ST=32;CN=1062;PW=1;Flag=5;CP=&&&&"), "missing_field"),
        (wrap(b"QN=20160801085857223;ST=32;CN=;PW=1;MN=M;Flag=5;CP=&&&&"), "missing_field"),
        (wrap(b"QN=20160801085857223;ST=32;CN=1062;PW=1;MN=M;Flag=5"), "missing_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=6;CP=&&&&"), "missing_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=4;PNUM=2;CP=&&&&"), "missing_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=x;CP=&&&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=256;CP=&&&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=6;PNUM=2;PNO=3;CP=&&&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;Flag=6;PNUM=0;PNO=0;CP=&&&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=12a&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=1e5&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=NaN&&"), "bad_number"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=&&"), "bad_number"),
        (wrap(b"QN=2016080108585722;ST=32;CN=2011;PW=1;MN=M;CP=&&&&"), "bad_time"),
        (wrap(b"QN=20161301085857223;ST=32;CN=2011;PW=1;MN=M;CP=&&&&"), "bad_time"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&DataTime=20230230120000&&"), "bad_time"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w1-SampleTime=2023,w1-Rtd=1&&"), "bad_time"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=1,w01018-Flag=NN&&"), "bad_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&w01018-Rtd=1,w01018&&"), "bad_field"),
        (wrap(b"ST=32;ST=33;CN=2011;PW=1;MN=M;CP=&&&&"), "bad_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN;CP=&&&&"), "bad_field"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&"), "bad_framing"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;CP=&&a=1&&b=2&&"), "bad_framing"),
        (wrap(b"ST=32;CN=2011;PW=1;MN=M;XCP=&&a=1&&"), "bad_framing"),
    ],
)
def test_tampered_frame_is_refused_with_reason(frame: bytes, reason: str) -> None:
    assert reason_of(frame) == reason


def test_segment_over_the_configured_maximum_is_too_long() -> None:
    assert reason_of(AIR_2011_LOWERCASE, max_length=316) == "too_long"
    assert parse(AIR_2011_LOWERCASE, max_length=317).cn == "2011"


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_published_packet_parses(name: str) -> None:
    assert parse(PUBLISHED[name]).mn
