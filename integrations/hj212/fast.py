"""The fast path of `parse_segment`: the packets data loggers send all day, parsed in one pass.

It takes only the common shape — header `[QN=…;]ST=…;CN=…;PW=…;MN=…;[Flag=…;]CP=&&…&&` in that
order with plain values, a Flag without D, CP times of exactly 14 digits — and answers None for
anything else (split parts, extra header fields, millisecond times, any refusal), so that the
reference parser in packet.py / cp.py decides those and names the error. For the packets it
does take, it builds the same `Packet` the reference builds (tests/integrations/hj212/
test_fast_path.py checks that on a corpus and on fuzzed packets).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from .cp import ATTRIBUTE_KINDS, CP, VALUE_KINDS, Reading
from .errors import PacketError
from .flag import Flag
from .times import parse_data_time

# Values without '=', ',', ';' or '&' (the reference takes those too; they go its way).
_HEADER = re.compile(
    r"(?:QN=([0-9]{17});)?ST=([^;=,&]+);CN=([^;=,&]+);PW=([^;=,&]+);MN=([^;=,&]+);(?:Flag=([0-9]{1,3});)?CP=&&"
)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


@lru_cache(maxsize=256)
def _flag(value: int) -> Flag:
    """Flags are immutable and there are 256 of them: decode each once."""
    return Flag.from_value(value)


def fast_segment(segment: str, packet_type: type) -> object | None:
    """The `packet_type` (packet.Packet) the reference would build from `segment`, or None."""
    try:
        return _fast_segment(segment, packet_type)
    except PacketError:  # a bad time: the reference raises it, with its precedence among errors
        return None


def _fast_segment(segment: str, packet_type: type) -> object | None:
    m = _HEADER.match(segment)
    if m is None or not segment.endswith("&&"):
        return None
    cp_start = m.end()
    if len(segment) < cp_start + 2:
        return None
    body = segment[cp_start:-2]
    if "&&" in body:
        return None
    qn, st, cn, pw, mn, flag_text = m.groups()
    flag = None
    if flag_text is not None:
        value = int(flag_text)
        if value > 0xFF or value & 0b10:  # out of range, or D=1 (a split part: PNUM/PNO)
            return None
        flag = _flag(value)
    cp = _fast_cp(body)
    if cp is None:
        return None
    qn_time = None
    if qn is not None:
        qn_time = parse_data_time(qn[:14], "QN")
        millis = int(qn[14:])
        if millis:
            qn_time = qn_time.replace(microsecond=millis * 1000)
    return packet_type(st=st, cn=cn, pw=pw, mn=mn, cp=cp, qn=qn, qn_time=qn_time, flag=flag, pnum=None,
                       pno=None, header_extras=(), segment=segment, deviations=())


def _fast_cp(body: str) -> CP | None:
    groups: list[tuple[tuple[str, str], ...]] = []
    values: list[tuple[str, str, str]] = []
    attributes: dict[str, dict[str, str]] = {}
    extras: list[tuple[str, str]] = []
    data_time: datetime | None = None
    for item in body.split(";"):
        if not item:
            continue
        pairs = []
        for sub in item.split(","):
            key, eq, text = sub.partition("=")
            if not key or not eq:
                return None
            pairs.append((key, text))
            if key == "DataTime":
                if len(text) != 14:
                    return None
                data_time = parse_data_time(text, "DataTime")
                continue
            code, dash, kind = key.partition("-")
            if dash and code:
                if kind in VALUE_KINDS:
                    values.append((code, kind, text))
                    continue
                if kind in ATTRIBUTE_KINDS:
                    if code in attributes:
                        attributes[code][kind] = text
                    else:
                        attributes[code] = {kind: text}
                    continue
            extras.append((key, text))
        groups.append(tuple(pairs))
    qualifiers: dict[str, tuple[str | None, datetime | None, str | None]] = {}
    for code, attrs in attributes.items():
        flag = attrs.get("Flag")
        if flag is not None and not (len(flag) == 1 and flag.isascii() and flag.isalpha()):
            return None
        sample = attrs.get("SampleTime")
        if sample is not None:
            if len(sample) != 14:
                return None
            qualifiers[code] = (flag, parse_data_time(sample, f"{code}-SampleTime"), attrs.get("EFlag"))
        else:
            qualifiers[code] = (flag, None, attrs.get("EFlag"))
    readings = []
    none = (None, None, None)
    number = _NUMBER.fullmatch
    for code, kind, text in values:
        if number(text) is None:
            return None
        flag, sample_time, eflag = qualifiers.get(code, none)
        readings.append(Reading(code, kind, Decimal(text), flag, data_time, sample_time, eflag))
    return CP(groups=tuple(groups), data_time=data_time, readings=tuple(readings), extras=tuple(extras),
              deviations=())
