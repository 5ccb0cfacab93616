"""HJ 212 packets → plain reading records (what the sink stores). Translation only."""

from __future__ import annotations

import re
from typing import Any

from integrations.hj212 import Packet

_CODE = re.compile(r"[A-Za-z0-9_.]{1,40}")  # a21026, w01018, SB1, LA, i12001: anything else is not stored


def readings_of(packet: Packet) -> list[dict[str, Any]]:
    """One record per measured value of the packet: mn, pollutant, cn, kind, value (Decimal), flag
    (the data flag letter, upper case, or None) and data_time (the CP's DataTime, else the QN's
    time, else None: the store puts the time of receipt)."""
    fallback = packet.cp.data_time or packet.qn_time
    return [
        {"mn": packet.mn, "pollutant": r.code, "cn": packet.cn, "kind": r.kind, "value": r.value,
         "flag": r.flag.upper() if r.flag else None, "data_time": r.data_time or fallback}
        for r in packet.cp.readings
        if _CODE.fullmatch(r.code)
    ]
