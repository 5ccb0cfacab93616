"""HJ 212 timestamps: yyyyMMddHHmmss (DataTime, SampleTime) and yyyyMMddHHmmssSSS (QN), China time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

from .errors import TimeError

# China has used UTC+8 without daylight saving since 1991, so a fixed offset is exact and needs
# no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "UTC+08:00")


def _digits(text: str, count: int, what: str) -> None:
    if len(text) != count or not (text.isascii() and text.isdigit()):
        raise TimeError(f"{what} must be {count} digits, got {text!r}", field=what)


@lru_cache(maxsize=4096)
def parse_data_time(text: str, what: str = "DataTime") -> datetime:
    """Parse yyyyMMddHHmmss into an aware datetime in China time (cached: values repeat a lot)."""
    return _parse(text, what)


def parse_data_time_lenient(text: str, what: str = "DataTime") -> tuple[datetime, bool]:
    """Like `parse_data_time`, also taking yyyyMMddHHmmssSSS (milliseconds, as some loggers send a
    DataTime); the flag says whether the text deviated that way."""
    if len(text) == 17:
        _digits(text, 17, what)
        return parse_data_time(text[:14], what).replace(microsecond=int(text[14:]) * 1000), True
    return parse_data_time(text, what), False


def parse_qn(text: str) -> datetime:
    """Parse a QN (yyyyMMddHHmmssSSS) into an aware datetime in China time."""
    _digits(text, 17, "QN")
    return _parse(text[:14], "QN").replace(microsecond=int(text[14:]) * 1000)


def _parse(text: str, what: str) -> datetime:
    _digits(text, 14, what)
    try:
        return datetime(
            int(text[0:4]), int(text[4:6]), int(text[6:8]),
            int(text[8:10]), int(text[10:12]), int(text[12:14]),
            tzinfo=CHINA_TZ,
        )  # fmt: skip
    except ValueError as exc:
        raise TimeError(f"{what} {text!r} is not a valid time: {exc}", field=what) from None


def format_data_time(value: datetime) -> str:
    """Render an aware datetime as yyyyMMddHHmmss in China time."""
    t = _china(value)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}"


def format_qn(value: datetime) -> str:
    """Render an aware datetime as a QN, yyyyMMddHHmmssSSS in China time."""
    return format_data_time(value) + f"{_china(value).microsecond // 1000:03d}"


def _china(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("HJ 212 times need an aware datetime (naive ones are ambiguous)")
    try:
        return value.astimezone(CHINA_TZ)
    except OverflowError as exc:
        raise ValueError(f"{value!r} is out of range in China time") from exc
