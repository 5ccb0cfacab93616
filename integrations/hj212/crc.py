"""The HJ 212 Appendix A checksum ("ANSI CRC16" as the standard defines it; not CRC-16/MODBUS).

Per byte: ``reg = (reg >> 8) ^ byte`` then eight rounds of shift-right with XOR 0xA001 on a
carried-out 1. Because the shift happens before the XOR the register is at most 0xFF when the
eight rounds start, so each step is one lookup in a 256-entry table and only 256 distinct
checksums exist: the CRC catches framing slips, not tampering, and is never an identifier.

Computed without a loop over the bytes: the step keeps only the high byte h of the register,
h' = M(h ^ byte) with M(x) = TABLE[x] >> 8, and M is linear over GF(2) with M⁸ = identity. So
the byte fed into the last table lookup is M^((n-1) mod 8)(0xFF) XOR, for e = 0..7, M^e of the
XOR of the bytes that lie e (mod 8) places before the end — eight XOR sums that folding the data
(read as one big-endian integer) down to 64 bits gives at C speed. `crc16_bytewise` is the
per-byte definition (tests check that both agree).
"""

from __future__ import annotations

from functools import cache


def _rounds(value: int) -> int:
    for _ in range(8):
        carry = value & 1
        value >>= 1
        if carry:
            value ^= 0xA001
    return value


@cache
def _tables() -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """(the 256-entry table, M^0..M^7 as byte maps, M^k(0xFF) for k = 0..7)."""
    table = tuple(_rounds(i) for i in range(256))
    powers = [tuple(range(256))]
    for _ in range(7):
        powers.append(tuple(table[x] >> 8 for x in powers[-1]))
    return table, tuple(powers), tuple(p[0xFF] for p in powers)


def crc16(data: bytes) -> int:
    """Checksum of `data` (the data segment's UTF-8 bytes) as an int in 0..0xFFFF."""
    n = len(data)
    if not n:
        return 0xFFFF
    table, (_, m1, m2, m3, m4, m5, m6, m7), start = _tables()
    x = int.from_bytes(data, "big")  # the last byte is the lowest: its distance from the end is 0
    bits = (n + 7) // 8 * 64
    while bits > 64:  # XOR the upper half onto the lower, at a 64-bit boundary
        half = bits // 128 * 64
        x = (x >> half) ^ (x & ((1 << half) - 1))
        bits -= half
    last = (start[(n - 1) & 7] ^ (x & 0xFF) ^ m1[(x >> 8) & 0xFF] ^ m2[(x >> 16) & 0xFF] ^ m3[(x >> 24) & 0xFF]
            ^ m4[(x >> 32) & 0xFF] ^ m5[(x >> 40) & 0xFF] ^ m6[(x >> 48) & 0xFF] ^ m7[x >> 56])
    return table[last]


def crc16_bytewise(data: bytes) -> int:
    """The per-byte definition of `crc16` (slow; the reference the fast one is tested against)."""
    table = _tables()[0]
    reg = 0xFFFF
    for byte in data:
        reg = table[(reg >> 8) ^ byte]
    return reg


def crc16_hex(data: bytes) -> str:
    """Checksum of `data` as the 4 uppercase hex digits written on the wire."""
    return f"{crc16(data):04X}"
