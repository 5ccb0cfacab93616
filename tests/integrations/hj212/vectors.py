"""Published HJ 212 packets (reference/domain.md §2), quoted byte for byte, and helpers."""

from __future__ import annotations

from integrations.hj212 import crc16

# HJ 212-2017 Appendix A example (CRC 1C80).
APPENDIX_A = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)
# liruoyu2008/HJ212Interpreter README: 9011 request ack, 2081 restart time, two 2011 uploads.
ACK_9011 = (
    b"##0094QN=20231008125115215;ST=22;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&QnRtn=1&&CC01\r\n"
)
RESTART_2081 = (
    b"##0137QN=20231008130452757;ST=22;CN=2081;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008130452;RestartTime=20231007130452&&3AC0\r\n"
)
REALTIME_2011 = (
    b"##0162QN=20231008123340461;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008123340;w01008-SampleTime=20231008123340,w01008-Rtd=123.456&&F441\r\n"
)
REALTIME_2011_B = (
    b"##0162QN=20231008132300648;ST=22;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&DataTime=20231008132300;w01008-SampleTime=20231008132300,w01008-Rtd=123.456&&2800\r\n"
)
# guocay/hj212-protocol ApplicationTest SAMPLE[0]: CRC written in lowercase.
AIR_2011_LOWERCASE = (
    b"##0317QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;"
    b"CP=&&DataTime=20191012133710;a21005-Rtd=0.00,a21005-Flag=N;a21004-Rtd=0.00,a21004-Flag=N;"
    b"a21007-Rtd=0.033,a21007-Flag=N;a21006-Rtd=0.036,a21006-Flag=N;a21001-Rtd=25.40,a21001-Flag=N;"
    b"a21003-Rtd=101.94,a21003-Flag=N;a21002-Rtd=49.20,a21002-Flag=N&&cc01\r\n"
)

PUBLISHED: dict[str, bytes] = {
    "appendix_a_1062": APPENDIX_A,
    "ack_9011": ACK_9011,
    "restart_2081": RESTART_2081,
    "realtime_2011": REALTIME_2011,
    "realtime_2011_b": REALTIME_2011_B,
    "air_2011_lowercase_crc": AIR_2011_LOWERCASE,
}

# A typical 2051 minute upload of a coal boiler stack: five pollutants with Min/Avg/Max(/Cou)/Flag.
MINUTE_2051_SEGMENT = (
    "QN=20240315103000123;ST=31;CN=2051;PW=123456;MN=320700000000000000000001;Flag=5;"
    "CP=&&DataTime=20240315102900;"
    "a21026-Min=10.2,a21026-Avg=12.5,a21026-Max=15.1,a21026-ZsAvg=14.0,a21026-Cou=0.75,a21026-Flag=N;"
    "a21002-Min=30.1,a21002-Avg=35.7,a21002-Max=40.3,a21002-ZsAvg=39.9,a21002-Cou=2.14,a21002-Flag=N;"
    "a34013-Min=2.1,a34013-Avg=3.4,a34013-Max=4.8,a34013-ZsAvg=3.8,a34013-Cou=0.20,a34013-Flag=N;"
    "a19001-Min=8.1,a19001-Avg=8.9,a19001-Max=9.6,a19001-Flag=N;"
    "a00000-Min=60.1,a00000-Avg=62.0,a00000-Max=63.9,a00000-Cou=3720.0,a00000-Flag=N&&"
)


def wrap(body: bytes, *, length: int | None = None, crc: str | None = None) -> bytes:
    """Frame raw data-segment bytes, computing length and CRC unless given (to build bad frames)."""
    length_text = f"{len(body) if length is None else length:04d}".encode()
    crc_text = (f"{crc16(body):04X}" if crc is None else crc).encode()
    return b"##" + length_text + body + crc_text + b"\r\n"


def segment_of(frame: bytes) -> bytes:
    """The data segment bytes of a well-formed frame."""
    return frame[6:-6]


MINUTE_2051 = wrap(MINUTE_2051_SEGMENT.encode())
