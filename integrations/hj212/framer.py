"""Cut a byte stream (one TCP connection) into packets, whatever the read boundaries."""

from __future__ import annotations

import re

from .crc import crc16
from .errors import FramingError, PacketError, TooLongError
from .packet import DEFAULT_MAX_LENGTH, MAX_DATA_LENGTH, OVERHEAD, Packet, parse

_BLANK = frozenset(b" \t\r\n\x00")  # tolerated silently between packets
_HASH = ord("#")
_CR = ord("\r")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")


class Framer:
    """Feed bytes as they arrive; get back parsed packets and refusals, in stream order.

    A frame runs from `##` to the first CRLF. Bytes before a `##` are reported once as garbage
    and skipped. A frame with no CRLF within `max_length + 12` bytes (or a `##` not followed by
    a length) is refused and skipped up to the next CRLF or `##`, so at most one frame's worth of
    bytes is ever held between calls. A lost CRLF is detected when the length field does not fit
    and a second `##` sits inside the frame; the two packets are then cut apart there.

    Lenient (as deployed loggers send): a frame whose declared length ends on a CRC that is right
    is taken there when the bytes after it are not its CRLF (or, via `unterminated()`, when nothing
    follows for a moment); the packet names `no_crlf` in its deviations. Times may carry
    milliseconds.
    """

    def __init__(self, *, max_length: int = DEFAULT_MAX_LENGTH, check_crc: bool = True,
                 lenient: bool = False) -> None:
        if not 0 <= max_length <= MAX_DATA_LENGTH:
            raise ValueError(f"max_length must be 0..{MAX_DATA_LENGTH}")
        self.max_length = max_length
        self.check_crc = check_crc
        self.lenient = lenient
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

    def flush(self) -> list[Packet | PacketError]:
        """At end of stream: refuse whatever incomplete frame is still buffered (lenient: a frame
        complete but for its CRLF is taken)."""
        if taken := self.unterminated():
            return taken
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
        if self.lenient and len(length) == 4:
            end = pos + int(length) + OVERHEAD - 2
            lone_cr = n == end + 1 and buf[end] == _CR  # its LF may be on the way
            if n > end and buf[end : end + 2] != b"\r\n" and not lone_cr and self._crc_ends(buf, pos, end):
                return end, self._parse(bytes(buf[pos:end]))  # bytes follow, and they are no CRLF: cut here
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

    def unterminated(self) -> list[Packet | PacketError]:
        """Lenient: the held bytes when they are exactly one frame ending at its CRC — a logger that
        sends no CRLF and then waits for its answer. The listener calls this when nothing more has
        arrived for a moment (a CRLF may still be on its way); otherwise nothing."""
        buf = self._buf
        pos = 0
        while pos < len(buf) and buf[pos] in _BLANK:
            pos += 1
        length = bytes(buf[pos + 2 : pos + 6])
        if not self.lenient or self._skipping or buf[pos : pos + 2] != b"##" or not (len(length) == 4
                                                                                    and length.isdigit()):
            return []
        if pos + int(length) + OVERHEAD - 2 != len(buf) or not self._crc_ends(buf, pos, len(buf)):
            return []
        frame = bytes(buf[pos:])
        buf.clear()
        return [self._parse(frame)]

    def _crc_ends(self, buf: bytearray, pos: int, end: int) -> bool:
        """The four bytes before `end` are a CRC that is right for the body from `pos + 6` (so a
        frame is never cut on a wrong declared length)."""
        crc = bytes(buf[end - 4 : end])
        if _HEX4.fullmatch(crc) is None:
            return False
        return not self.check_crc or int(crc, 16) == crc16(bytes(buf[pos + 6 : end - 4]))

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
            return parse(frame, max_length=self.max_length, check_crc=self.check_crc, lenient=self.lenient)
        except PacketError as exc:
            return exc


def _garbage(buf: bytearray, start: int, end: int) -> FramingError:
    raw = bytes(buf[start:end])
    return FramingError(f"skipped {len(raw)} bytes that are not a packet", raw=raw)


def _length_fits(frame: bytes) -> bool:
    length = frame[2:6]
    return length.isdigit() and len(frame) == int(length) + OVERHEAD
