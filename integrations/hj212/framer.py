"""Cut a byte stream (one TCP connection) into packets, whatever the read boundaries."""

from __future__ import annotations

from .errors import FramingError, PacketError, TooLongError
from .packet import DEFAULT_MAX_LENGTH, MAX_DATA_LENGTH, OVERHEAD, Packet, parse

_BLANK = frozenset(b" \t\r\n\x00")  # tolerated silently between packets
_HASH = ord("#")


class Framer:
    """Feed bytes as they arrive; get back parsed packets and refusals, in stream order.

    A frame runs from `##` to the first CRLF. Bytes before a `##` are reported once as garbage
    and skipped. A frame with no CRLF within `max_length + 12` bytes (or a `##` not followed by
    a length) is refused and skipped up to the next CRLF or `##`, so at most one frame's worth of
    bytes is ever held between calls. A lost CRLF is detected when the length field does not fit
    and a second `##` sits inside the frame; the two packets are then cut apart there.
    """

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, check_crc: bool = True) -> None:
        if not 0 <= max_length <= MAX_DATA_LENGTH:
            raise ValueError(f"max_length must be 0..{MAX_DATA_LENGTH}")
        self.max_length = max_length
        self.check_crc = check_crc
        self._buf = bytearray()
        self._skipping = False

    @property
    def max_frame(self) -> int:
        """The most bytes one frame may span, CRLF included."""
        return self.max_length + OVERHEAD

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Packet | PacketError]:
        """Add received bytes; return every packet or refusal they complete."""
        buf = self._buf
        buf += data
        out: list[Packet | PacketError] = []
        pos = 0
        while True:
            new_pos, item = self._step(buf, pos)
            if item is not None:
                out.append(item)
            elif new_pos == pos:
                break
            pos = new_pos
        del buf[:pos]
        return out

    def flush(self) -> list[PacketError]:
        """At end of stream: refuse whatever incomplete frame is still buffered."""
        leftover, self._buf, self._skipping = bytes(self._buf), bytearray(), False
        if not leftover.strip(bytes(_BLANK)):
            return []
        return [FramingError(f"stream ended inside a frame ({len(leftover)} bytes)", raw=leftover)]

    def _step(self, buf: bytearray, pos: int) -> tuple[int, Packet | PacketError | None]:
        n = len(buf)
        if self._skipping:
            pos = self._skip(buf, pos)
            if self._skipping:
                return pos, None
        while pos < n and buf[pos] in _BLANK:
            pos += 1
        if pos >= n:
            return pos, None
        start = buf.find(b"##", pos)
        if start == -1:
            end = n - 1 if buf[n - 1] == _HASH else n  # a trailing '#' may begin the next "##"
            return (end, _garbage(buf, pos, end)) if end > pos else (pos, None)
        while start + 2 < n and buf[start + 2] == _HASH:
            start += 1  # in "###0101…" the packet starts at the last "##"
        if start > pos:
            return start, _garbage(buf, pos, start)
        length = bytes(buf[pos + 2 : pos + 6])
        if length and not length.isdigit():
            self._skipping = True
            return pos + 2, FramingError(f"## not followed by a 4-digit length: {length!r}", raw=length)
        if len(length) == 4 and int(length) > self.max_length:
            self._skipping = True
            return pos + 2, TooLongError(f"declared length {int(length)} exceeds the maximum of {self.max_length}")
        crlf = buf.find(b"\r\n", pos + 2, pos + self.max_frame)
        if crlf == -1:
            if n - pos >= self.max_frame:
                self._skipping = True
                return pos + 2, TooLongError(f"no CRLF within {self.max_frame} bytes", raw=bytes(buf[pos : pos + 64]))
            return pos, None
        frame = bytes(buf[pos : crlf + 2])
        if not _length_fits(frame) and (inner := frame.find(b"##", 2)) != -1:
            frame = frame[:inner]  # lost CRLF: refuse the first part, keep the second
        return pos + len(frame), self._parse(frame)

    def _skip(self, buf: bytearray, pos: int) -> int:
        crlf = buf.find(b"\r\n", pos)
        sync = buf.find(b"##", pos)
        if sync != -1 and (crlf == -1 or sync < crlf):
            self._skipping = False
            return sync
        if crlf != -1:
            self._skipping = False
            return crlf + 2
        return max(pos, len(buf) - 1)  # keep one byte: it may be the '#' or '\r' of a boundary

    def _parse(self, frame: bytes) -> Packet | PacketError:
        try:
            return parse(frame, max_length=self.max_length, check_crc=self.check_crc)
        except PacketError as exc:
            return exc


def _garbage(buf: bytearray, start: int, end: int) -> FramingError:
    raw = bytes(buf[start:end])
    return FramingError(f"skipped {len(raw)} bytes that are not a packet", raw=raw)


def _length_fits(frame: bytes) -> bool:
    length = frame[2:6]
    return length.isdigit() and len(frame) == int(length) + OVERHEAD
