"""What the listener writes back: protocol answers to a packet, and which commands it takes."""

from __future__ import annotations

import re
from collections.abc import Callable

from integrations.hj212 import ST_SYSTEM, Flag, Packet, encode

from .config import ACCEPTED, REFUSED

CN_REQUEST_ANSWER, CN_NOTICE_ANSWER = "9011", "9013"
PROTOCOL_ANSWERS = frozenset({"9011", "9012", "9013", "9014"})
UPLOAD = re.compile(r"2\d{3}|3020")  # data uploads (2011 real-time ... 2081) and 3020 device information


def normalized(verdict: str | bool) -> str:
    if verdict is True:
        return ACCEPTED
    if verdict is False:
        return REFUSED
    return str(verdict)


def reply(packet: Packet, cn: str, cp: dict[str, str] | None = None) -> bytes | None:
    """A protocol answer to `packet`: its QN, PW and MN, ST=91, its protocol version, no ack wanted."""
    flag = Flag(version=packet.flag.version) if packet.flag is not None else None
    return encoded(lambda p: encode(st=ST_SYSTEM, cn=cn, pw=p.pw, mn=p.mn, qn=p.qn, flag=flag, cp=cp), packet)


def encoded(build: Callable[[Packet], bytes], packet: Packet) -> bytes | None:
    """The answer, or None when the packet's fields cannot be echoed (an MN with ',' or '&')."""
    try:
        return build(packet)
    except ValueError:
        return None

