"""HJ 212 (2005 / 2017 / 2025) packets: parse, frame a byte stream, reassemble, encode. No I/O.

Typical ingest loop, one `Framer` per TCP connection::

    for item in framer.feed(chunk):
        if isinstance(item, PacketError):
            log(item.reason, item.message)
            continue
        if item.ack_wanted:
            writer.write(data_ack(item))   # each part of a split upload is acked by its own QN
        whole = reassembler.add(item)      # None until every part has arrived
"""

from .cp import ATTRIBUTE_KINDS, CP, VALUE_KINDS, Reading, parse_cp, parse_number
from .crc import crc16, crc16_hex
from .encode import CN_DATA_ACK, CN_HEARTBEAT, ST_SYSTEM, data_ack, encode, encode_cp, encode_segment, frame, heartbeat
from .errors import (
    REASONS,
    BadFieldError,
    CrcError,
    EncodingError,
    FramingError,
    LengthError,
    MissingFieldError,
    NumberError,
    PacketError,
    TimeError,
    TooLongError,
)
from .flag import EDITIONS, VERSION_2005, VERSION_2017, VERSION_2025, Flag
from .framer import Framer
from .packet import DEFAULT_MAX_LENGTH, MAX_DATA_LENGTH, Packet, parse, parse_segment
from .reassembly import Reassembler, by_mn_qn
from .times import CHINA_TZ, format_data_time, format_qn, parse_data_time, parse_qn

__all__ = [
    "ATTRIBUTE_KINDS",
    "CHINA_TZ",
    "CN_DATA_ACK",
    "CN_HEARTBEAT",
    "CP",
    "DEFAULT_MAX_LENGTH",
    "EDITIONS",
    "MAX_DATA_LENGTH",
    "REASONS",
    "ST_SYSTEM",
    "VALUE_KINDS",
    "VERSION_2005",
    "VERSION_2017",
    "VERSION_2025",
    "BadFieldError",
    "CrcError",
    "EncodingError",
    "Flag",
    "Framer",
    "FramingError",
    "LengthError",
    "MissingFieldError",
    "NumberError",
    "Packet",
    "PacketError",
    "Reading",
    "Reassembler",
    "TimeError",
    "TooLongError",
    "by_mn_qn",
    "crc16",
    "crc16_hex",
    "data_ack",
    "encode",
    "encode_cp",
    "encode_segment",
    "format_data_time",
    "format_qn",
    "frame",
    "heartbeat",
    "parse",
    "parse_cp",
    "parse_data_time",
    "parse_number",
    "parse_qn",
    "parse_segment",
]
