"""HJ 212 ingest: the asyncio TCP listener (`IngestServer`) data loggers send to, the translation of
packets into reading records, and a load driver for measuring it. It holds no business rules: the
device check (`authenticate`) and the store (`sink`) are handed in by the wiring (`gridloop ingest`)."""

from .config import ACCEPTED, BAD_PASSWORD, INACTIVE, QN_RTN, REFUSED, UNKNOWN_MN, IngestConfig, Metrics
from .load import LoadResult, drive
from .records import readings_of
from .server import IngestServer

__all__ = [
    "ACCEPTED",
    "BAD_PASSWORD",
    "INACTIVE",
    "QN_RTN",
    "REFUSED",
    "UNKNOWN_MN",
    "IngestConfig",
    "IngestServer",
    "LoadResult",
    "Metrics",
    "drive",
    "readings_of",
]
