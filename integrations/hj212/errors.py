"""Typed refusals: every way a packet can be rejected is a `PacketError` with a `reason` code."""

from __future__ import annotations

from typing import ClassVar


class PacketError(Exception):
    """A packet (or stretch of bytes) was refused; `reason` is a stable machine-readable code."""

    reason: ClassVar[str] = "invalid"

    def __init__(self, message: str, *, raw: bytes = b"", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw
        self.field = field

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r})"


class FramingError(PacketError):
    """Not `##`…`\\r\\n`, garbage between packets, or a data segment without `CP=&&…&&`."""

    reason = "bad_framing"


class LengthError(PacketError):
    """The length field is not 4 digits or differs from the data segment's UTF-8 byte count."""

    reason = "bad_length"


class CrcError(PacketError):
    """The CRC field is not 4 hex digits or does not match the data segment."""

    reason = "bad_crc"


class TooLongError(PacketError):
    """The data segment is longer than the configured maximum."""

    reason = "too_long"


class EncodingError(PacketError):
    """The data segment is not valid UTF-8."""

    reason = "bad_encoding"


class MissingFieldError(PacketError):
    """A required field (ST, CN, PW, MN, CP; PNUM/PNO when split) is absent or empty."""

    reason = "missing_field"


class BadFieldError(PacketError):
    """A field is malformed: no `=`, a duplicate header key, a data flag that is not one letter."""

    reason = "bad_field"


class NumberError(PacketError):
    """A value that must be a decimal number (reading, Flag, PNUM, PNO) is not one."""

    reason = "bad_number"


class TimeError(PacketError):
    """QN or a CP timestamp is not a valid yyyyMMddHHmmss[SSS] time."""

    reason = "bad_time"


REASONS: tuple[str, ...] = tuple(
    cls.reason
    for cls in (
        FramingError,
        LengthError,
        CrcError,
        TooLongError,
        EncodingError,
        MissingFieldError,
        BadFieldError,
        NumberError,
        TimeError,
    )
)
