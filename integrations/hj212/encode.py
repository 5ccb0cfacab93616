"""Build packets: data segment from header fields and a CP mapping, then length, CRC and framing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from .crc import crc16
from .errors import PacketError
from .flag import VERSION_2025, Flag
from .packet import MAX_DATA_LENGTH, Packet
from .times import format_data_time, format_qn, parse_qn

CPValue = str | int | Decimal | float | datetime

ST_SYSTEM = "91"  # 系统交互: the system code of protocol replies (9011-9014)
CN_DATA_ACK = "9014"
CN_HEARTBEAT = "9015"

_HEADER_FORBIDDEN = frozenset(";,&\r\n")
_CP_FORBIDDEN = frozenset(";,&\r\n")
_KEY_FORBIDDEN = _CP_FORBIDDEN | {"="}


def encode(
    *,
    st: str,
    cn: str,
    pw: str,
    mn: str,
    cp: Mapping[str, CPValue] | None = None,
    qn: str | datetime | None = None,
    flag: Flag | int | None = None,
    pnum: int | None = None,
    pno: int | None = None,
) -> bytes:
    """A complete frame (`##LLLL…CRC\\r\\n`). ValueError if a field cannot be written unambiguously."""
    return frame(encode_segment(st=st, cn=cn, pw=pw, mn=mn, cp=cp, qn=qn, flag=flag, pnum=pnum, pno=pno))


def encode_segment(
    *,
    st: str,
    cn: str,
    pw: str,
    mn: str,
    cp: Mapping[str, CPValue] | None = None,
    qn: str | datetime | None = None,
    flag: Flag | int | None = None,
    pnum: int | None = None,
    pno: int | None = None,
) -> str:
    """The data segment `QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;[PNUM=…;PNO=…;]CP=&&…&&`."""
    header: list[tuple[str, str]] = []
    if qn is not None:
        header.append(("QN", _qn(qn)))
    header += [("ST", st), ("CN", cn), ("PW", pw), ("MN", mn)]
    if flag is not None:
        header.append(("Flag", str(flag.value if isinstance(flag, Flag) else Flag.from_value(flag).value)))
    if (pnum is None) != (pno is None):
        raise ValueError("PNUM and PNO come together")
    if pnum is not None and pno is not None:
        if not 1 <= pno <= pnum <= 999_999:
            raise ValueError(f"need 1 <= PNO <= PNUM, got PNO={pno} PNUM={pnum}")
        header += [("PNUM", str(pnum)), ("PNO", str(pno))]
    for key, value in header:
        if not value or _HEADER_FORBIDDEN.intersection(value):
            raise ValueError(f"header field {key} must be non-empty without ; , & CR LF: {value!r}")
    return build_segment(header, encode_cp(cp or {}))


def encode_cp(cp: Mapping[str, CPValue]) -> str:
    """CP body: consecutive `<code>-<kind>` keys of one code share an item (`,`); items join by `;`."""
    items: list[str] = []
    previous: str | None = None
    for key, value in cp.items():
        if not key or _KEY_FORBIDDEN.intersection(key):
            raise ValueError(f"CP key must be non-empty without ; , & = CR LF: {key!r}")
        pair = f"{key}={render(value)}"
        code, dash, _ = key.partition("-")
        if dash and code and code == previous:
            items[-1] += "," + pair
        else:
            items.append(pair)
        previous = code if dash and code else None
    return ";".join(items)


def render(value: CPValue) -> str:
    """Wire text of a CP value: plain decimals, yyyyMMddHHmmss times, strings as given."""
    if isinstance(value, bool):
        raise ValueError("booleans have no HJ 212 form; pass 0/1")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no HJ 212 form")
        return format(value, "f")
    if isinstance(value, datetime):
        return format_data_time(value)
    if isinstance(value, str):
        if _CP_FORBIDDEN.intersection(value):
            raise ValueError(f"CP value must not contain ; , & CR LF: {value!r}")
        return value
    raise TypeError(f"unsupported CP value type {type(value).__name__}")


def build_segment(header: Iterable[tuple[str, str]], cp_body: str) -> str:
    """Join already-validated header pairs and a CP body into a data segment."""
    return "".join(f"{key}={value};" for key, value in header) + f"CP=&&{cp_body}&&"


def frame(segment: str) -> bytes:
    """Wrap a data segment: `##`, 4-digit UTF-8 byte length, segment, CRC (uppercase hex), CRLF."""
    body = segment.encode("utf-8")
    if len(body) > MAX_DATA_LENGTH:
        raise ValueError(f"data segment of {len(body)} bytes does not fit the 4-digit length field")
    return b"##%04d%b%04X\r\n" % (len(body), body, crc16(body))


def data_ack(packet: Packet) -> bytes:
    """The 9014 data ack for a packet with A=1: its QN, PW and MN, ST=91, A=0, CP=&&&&."""
    flag = Flag(version=packet.flag.version) if packet.flag is not None else None
    return encode(st=ST_SYSTEM, cn=CN_DATA_ACK, pw=packet.pw, mn=packet.mn, qn=packet.qn, flag=flag)


def heartbeat(
    *, qn: str | datetime, st: str, pw: str, mn: str, ack: bool = False, version: int = VERSION_2025
) -> bytes:
    """A 9015 heartbeat (HJ 212-2025; sent by the field side with its own ST), CP=&&&&."""
    return encode(st=st, cn=CN_HEARTBEAT, pw=pw, mn=mn, qn=qn, flag=Flag(version=version, ack=ack))


def _qn(qn: str | datetime) -> str:
    if isinstance(qn, datetime):
        return format_qn(qn)
    try:
        parse_qn(qn)
    except PacketError as exc:
        raise ValueError(exc.message) from None
    return qn
