"""The Appendix A checksum, checked against the published packets."""

import pytest

from integrations.hj212 import crc16, crc16_hex

from .vectors import PUBLISHED, segment_of


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_crc_of_published_packet_matches_its_crc_field(name: str) -> None:
    frame = PUBLISHED[name]
    assert crc16_hex(segment_of(frame)) == frame[-6:-2].decode().upper()


def test_crc_is_written_as_four_uppercase_hex_digits() -> None:
    assert crc16_hex(b"") == "FFFF"
    assert crc16_hex(segment_of(PUBLISHED["appendix_a_1062"])) == "1C80"


def test_crc_is_not_crc16_modbus() -> None:
    # CRC-16/MODBUS of "123456789" is 0x4B37; the Appendix A algorithm shifts before the XOR.
    assert crc16(b"123456789") != 0x4B37


def test_crc_takes_only_256_distinct_values() -> None:
    # The shift-before-XOR leaves at most 8 significant bits before each byte's eight rounds.
    values = {crc16(bytes([a, b, 0x41])) for a in range(256) for b in range(256)}
    assert len(values) == 256
