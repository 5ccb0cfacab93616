"""The HJ 212 Appendix A checksum ("ANSI CRC16" as the standard defines it; not CRC-16/MODBUS).

Per byte: ``reg = (reg >> 8) ^ byte`` then eight rounds of shift-right with XOR 0xA001 on a
carried-out 1. Because the shift happens before the XOR the register is at most 0xFF when the
eight rounds start, so each step is one lookup in a 256-entry table and only 256 distinct
checksums exist: the CRC catches framing slips, not tampering, and is never an identifier.
"""

from __future__ import annotations


def _rounds(value: int) -> int:
    for _ in range(8):
        carry = value & 1
        value >>= 1
        if carry:
            value ^= 0xA001
    return value


_TABLE: tuple[int, ...] = tuple(_rounds(i) for i in range(256))


def crc16(data: bytes) -> int:
    """Checksum of `data` (the data segment's UTF-8 bytes) as an int in 0..0xFFFF."""
    table = _TABLE
    reg = 0xFFFF
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def crc16_hex(data: bytes) -> str:
    """Checksum of `data` as the 4 uppercase hex digits written on the wire."""
    return f"{crc16(data):04X}"
