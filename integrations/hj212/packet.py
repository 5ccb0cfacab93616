"""Framing (`##` + length + data segment + CRC + CRLF) and the header fields of one packet."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from .cp import CP, parse_cp
from .crc import crc16
from .errors import (
    BadFieldError,
    CrcError,
    EncodingError,
    FramingError,
    LengthError,
    MissingFieldError,
    NumberError,
    PacketError,
    TooLongError,
)
from .fast import fast_segment
from .flag import Flag
from .times import parse_qn

# The length field has 4 digits, so 9999 is the most any frame can declare. The standard caps the
# data segment at 1024; real devices exceed it, so the cap is the caller's choice (ingest config).
MAX_DATA_LENGTH = 9999
DEFAULT_MAX_LENGTH = MAX_DATA_LENGTH
OVERHEAD = 12  # "##" + 4 length digits + 4 CRC digits + "\r\n"

REQUIRED_HEADER = ("ST", "CN", "PW", "MN")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_KNOWN_HEADER = frozenset({"QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO"})


@dataclass(frozen=True, slots=True)
class Packet:
    """One HJ 212 packet. `flag` is None for 2005-style packets without `Flag=`."""

    st: str
    cn: str
    pw: str
    mn: str
    cp: CP
    qn: str | None = None
    qn_time: datetime | None = None
    flag: Flag | None = None
    pnum: int | None = None
    pno: int | None = None
    header_extras: tuple[tuple[str, str], ...] = ()
    segment: str = ""
    deviations: tuple[str, ...] = ()  # what a lenient parse accepted beyond the standard

    @property
    def ack_wanted(self) -> bool:
        """A=1: the sender expects an answer (a 9014 for uploads)."""
        return self.flag is not None and self.flag.ack

    @property
    def is_split(self) -> bool:
        """D=1 (or, for 2005-style packets, PNUM present): one part of a split upload."""
        return self.flag.split if self.flag is not None else self.pnum is not None

    @property
    def edition(self) -> str | None:
        """The edition: "2005", "2017", "2025", or None for unknown version bits; no Flag means 2005."""
        return self.flag.edition if self.flag is not None else "2005"


NO_CRLF = "no_crlf"


def parse(frame: bytes | str, *, max_length: int = DEFAULT_MAX_LENGTH, check_crc: bool = True,
          lenient: bool = False) -> Packet:
    """Parse one complete frame (`##…\\r\\n`); raise a `PacketError` subclass on any refusal.

    Lenient, as deployed loggers send: the frame may end at its CRC (a transport that frames each
    message itself — MQTT, HTTP — or a logger that omits the CRLF), and times may carry
    milliseconds. Each such deviation is named in `Packet.deviations`."""
    raw = frame.encode("utf-8", "surrogatepass") if isinstance(frame, str) else bytes(frame)
    deviation: tuple[str, ...]
    if lenient and raw[-2:] != b"\r\n" and raw[:2] == b"##":
        raw_crlf, deviation = raw + b"\r\n", (NO_CRLF,)
    else:
        raw_crlf, deviation = raw, ()
    try:
        packet = _parse(raw_crlf, max_length, check_crc, lenient)
    except PacketError as exc:
        exc.raw = raw
        raise
    if deviation:
        return replace(packet, deviations=deviation + packet.deviations)
    return packet


def _parse(raw: bytes, max_length: int, check_crc: bool, lenient: bool) -> Packet:
    if len(raw) < OVERHEAD or raw[:2] != b"##" or raw[-2:] != b"\r\n":
        raise FramingError("a packet is ## + length + data segment + CRC + CRLF")
    length_field = raw[2:6]
    if not (length_field.isdigit()):
        raise LengthError(f"length field must be 4 decimal digits, got {length_field!r}")
    declared = int(length_field)
    if declared > max_length:
        raise TooLongError(f"data segment of {declared} bytes exceeds the maximum of {max_length}")
    body = raw[6:-6]
    if len(body) != declared:
        raise LengthError(f"length field says {declared} bytes, data segment has {len(body)}")
    crc_field = raw[-6:-2]
    if _HEX4.fullmatch(crc_field) is None:
        raise CrcError(f"CRC field must be 4 hex digits, got {crc_field!r}")
    if check_crc and int(crc_field, 16) != (actual := crc16(body)):
        raise CrcError(f"CRC field {crc_field.decode()} does not match the data segment ({actual:04X})")
    try:
        segment = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EncodingError(f"data segment is not UTF-8: {exc.reason} at byte {exc.start}") from None
    return parse_segment(segment, lenient=lenient)


def parse_segment(segment: str, *, lenient: bool = False) -> Packet:
    """Parse a data segment (`QN=…;…;CP=&&…&&`) without framing, length or CRC: the common shape by
    the fast path (fast.py), anything else — and every refusal — by the reference parser."""
    packet = fast_segment(segment, Packet)
    if packet is not None:
        return packet  # type: ignore[return-value]
    return parse_segment_reference(segment, lenient=lenient)


def parse_segment_reference(segment: str, *, lenient: bool = False) -> Packet:
    """The reference parser: every rule of the standard checked in turn, each refusal named."""
    start = segment.find("CP=&&")
    if start == -1:
        raise MissingFieldError("no CP=&&…&& in the data segment", field="CP")
    if start > 0 and segment[start - 1] != ";":
        raise FramingError("CP must follow a ';'")
    if len(segment) < start + 7 or not segment.endswith("&&"):
        raise FramingError("CP is not closed by &&")
    body = segment[start + 5 : -2]
    if "&&" in body:
        raise FramingError("data segment continues after the CP's closing &&")
    header = _header(segment[: max(start - 1, 0)])
    for name in REQUIRED_HEADER:
        if not header.get(name):
            raise MissingFieldError(f"header field {name} is missing or empty", field=name)
    qn = header.get("QN")
    flag = _flag(header.get("Flag"))
    pnum = _count(header, "PNUM")
    pno = _count(header, "PNO")
    if flag is not None and flag.split and (pnum is None or pno is None):
        raise MissingFieldError("Flag has D=1 but PNUM/PNO are missing", field="PNUM" if pnum is None else "PNO")
    if (pnum is None) != (pno is None):
        raise MissingFieldError("PNUM and PNO come together", field="PNO" if pno is None else "PNUM")
    if pnum is not None and pno is not None and pno > pnum:
        raise NumberError(f"PNO {pno} exceeds PNUM {pnum}", field="PNO")
    cp = parse_cp(body, lenient=lenient)
    return Packet(
        st=header["ST"],
        cn=header["CN"],
        pw=header["PW"],
        mn=header["MN"],
        cp=cp,
        qn=qn,
        qn_time=parse_qn(qn) if qn is not None else None,
        flag=flag,
        pnum=pnum,
        pno=pno,
        header_extras=tuple((k, v) for k, v in header.items() if k not in _KNOWN_HEADER),
        segment=segment,
        deviations=cp.deviations,
    )


def _header(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise BadFieldError(f"header field without key=value: {item!r}", field=key or None)
        if key in fields:
            raise BadFieldError(f"header field {key} appears twice", field=key)
        fields[key] = value
    return fields


def _flag(text: str | None) -> Flag | None:
    if text is None:
        return None
    if not (0 < len(text) <= 3 and text.isascii() and text.isdigit()) or int(text) > 0xFF:
        raise NumberError(f"Flag must be an integer 0..255, got {text!r}", field="Flag")
    return Flag.from_value(int(text))


def _count(header: dict[str, str], name: str) -> int | None:
    text = header.get(name)
    if text is None:
        return None
    # Bounded length: int() of thousands of digits is slow and refused by CPython's digit limit.
    if not (0 < len(text) <= 6 and text.isascii() and text.isdigit()) or int(text) < 1:
        raise NumberError(f"{name} must be a positive integer, got {text!r}", field=name)
    return int(text)
