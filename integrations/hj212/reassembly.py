"""Join the parts of a split upload (D=1, PNUM/PNO) into one packet."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

from .encode import build_segment
from .flag import Flag
from .packet import Packet, parse_segment

PartKey = Callable[[Packet], Hashable]


def by_mn_qn(packet: Packet) -> Hashable:
    """Parts belong together when they share MN and QN."""
    return (packet.mn, packet.qn)


class Reassembler:
    """Collects split parts; `add` returns the whole packet once every PNO 1..PNUM has arrived.

    Memory is bounded by `max_pending` incomplete uploads: the oldest is dropped (and counted in
    `evicted`) when a new one would exceed it. No clock is involved; callers that want an age
    limit call `discard` themselves.
    """

    def __init__(self, *, max_pending: int = 256, key: PartKey = by_mn_qn) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.key = key
        self.evicted = 0
        self._parts: OrderedDict[Hashable, dict[int, Packet]] = OrderedDict()

    @property
    def pending(self) -> int:
        """Number of incomplete uploads held."""
        return len(self._parts)

    def add(self, packet: Packet) -> Packet | None:
        """A non-split packet comes straight back; a part returns None until its upload completes."""
        if not packet.is_split or packet.pnum is None or packet.pno is None:
            return packet
        if packet.pnum == 1:
            return _merge([packet])
        key = self.key(packet)
        parts = self._parts.get(key)
        if parts is None or next(iter(parts.values())).pnum != packet.pnum:
            parts = self._parts[key] = {}  # new upload (or the sender restarted with another PNUM)
            self._parts.move_to_end(key)
            self._evict()
        parts[packet.pno] = packet  # a retransmitted part replaces the earlier copy
        if len(parts) < packet.pnum:
            return None
        del self._parts[key]
        return _merge([parts[number] for number in range(1, packet.pnum + 1)])

    def discard(self, key: Hashable) -> bool:
        """Forget an incomplete upload; True if there was one."""
        return self._parts.pop(key, None) is not None

    def _evict(self) -> None:
        while len(self._parts) > self.max_pending:
            self._parts.popitem(last=False)
            self.evicted += 1


def _merge(parts: list[Packet]) -> Packet:
    """One packet with the first part's header (D cleared, no PNUM/PNO) and all parts' CP items."""
    first = parts[0]
    header: list[tuple[str, str]] = [] if first.qn is None else [("QN", first.qn)]
    header += [("ST", first.st), ("CN", first.cn), ("PW", first.pw), ("MN", first.mn)]
    if first.flag is not None:
        header.append(("Flag", str(Flag(version=first.flag.version, ack=first.flag.ack).value)))
    header += first.header_extras
    body = ";".join(_cp_body(part) for part in parts)
    return parse_segment(build_segment(header, body))


def _cp_body(packet: Packet) -> str:
    return ";".join(",".join(f"{key}={value}" for key, value in group) for group in packet.cp.groups)
