"""The header Flag byte: bits V5..V0 D A, i.e. Flag = (version << 2) | (D << 1) | A."""

from __future__ import annotations

from dataclasses import dataclass

VERSION_2005 = 0  # HJ/T 212-2005 (Flag 0/1, or no Flag at all)
VERSION_2017 = 1  # HJ 212-2017: Flag 4..7
VERSION_2025 = 2  # HJ 212-2025: Flag 8..11

EDITIONS: dict[int, str] = {VERSION_2005: "2005", VERSION_2017: "2017", VERSION_2025: "2025"}


@dataclass(frozen=True, slots=True)
class Flag:
    """Decoded Flag: protocol version bits, D (split packet, PNUM/PNO present), A (ack wanted)."""

    version: int = VERSION_2017
    split: bool = False
    ack: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.version <= 0x3F:
            raise ValueError(f"version bits must fit in 6 bits, got {self.version}")

    @classmethod
    def from_value(cls, value: int) -> Flag:
        """Decode the integer written after `Flag=` (0..255)."""
        if not 0 <= value <= 0xFF:
            raise ValueError(f"Flag must be 0..255, got {value}")
        return cls(version=value >> 2, split=bool(value & 0b10), ack=bool(value & 0b01))

    @property
    def value(self) -> int:
        """The integer to write after `Flag=`."""
        return (self.version << 2) | (int(self.split) << 1) | int(self.ack)

    @property
    def edition(self) -> str | None:
        """The edition: "2005", "2017" or "2025"; None for version bits no published edition uses."""
        return EDITIONS.get(self.version)
