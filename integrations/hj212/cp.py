"""The CP data segment (`CP=&&…&&`): `;` separates items, `,` the sub-fields of one item.

Keys `<code>-<kind>` become typed `Reading`s when the kind is a measured value (Rtd, Avg, ...);
`-Flag`, `-EFlag` and `-SampleTime` attach to every reading of that code. `DataTime` becomes an
aware datetime. Everything else is kept verbatim in `CP.extras`; nothing is dropped.

Values are `Decimal`, not float: the wire carries decimal text ("0.033", "49.20"), thresholds are
decimal limits (0.5 mg/L), and Decimal keeps both exact, so a reading compares to its limit
without binary rounding and re-encodes to the same text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .errors import BadFieldError, NumberError
from .times import parse_data_time, parse_data_time_lenient

# Measured-value kinds (HJ 212-2017 §6.3.3, Appendix C): real-time, minute/hour/day statistics,
# 折算 (reference-O2 corrected) variants, and equipment running state / running time.
VALUE_KINDS: frozenset[str] = frozenset(
    {"Rtd", "Min", "Avg", "Max", "Cou", "ZsRtd", "ZsMin", "ZsAvg", "ZsMax", "ZsCou", "RS", "RT"}
)
# Per-code attributes that qualify the values rather than being values themselves.
ATTRIBUTE_KINDS: frozenset[str] = frozenset({"Flag", "EFlag", "SampleTime"})

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value: pollutant (or equipment) code, value kind, value and its qualifiers."""

    code: str
    kind: str
    value: Decimal
    flag: str | None = None
    data_time: datetime | None = None
    sample_time: datetime | None = None
    eflag: str | None = None


@dataclass(frozen=True, slots=True)
class CP:
    """A parsed CP segment; `groups` is the verbatim structure (items of key/value pairs)."""

    groups: tuple[tuple[Pair, ...], ...] = ()
    data_time: datetime | None = None
    readings: tuple[Reading, ...] = ()
    extras: tuple[Pair, ...] = ()
    deviations: tuple[str, ...] = ()  # what a lenient parse accepted beyond the standard

    def as_dict(self) -> dict[str, str]:
        """All keys with their raw text, in wire order (a repeated key keeps its last value)."""
        return {key: value for group in self.groups for key, value in group}

    def get(self, key: str, default: str | None = None) -> str | None:
        """Raw text of `key` (last occurrence), or `default`."""
        return self.as_dict().get(key, default)


def parse_number(text: str, field: str | None = None) -> Decimal:
    """Parse plain decimal notation (no exponent, NaN, infinity, blanks or underscores)."""
    if _NUMBER.fullmatch(text) is None:
        raise NumberError(f"{field or 'value'} is not a decimal number: {text!r}", field=field)
    return Decimal(text)


def parse_cp(body: str, *, lenient: bool = False) -> CP:
    """Parse the text between `CP=&&` and the closing `&&`. Lenient: a DataTime or SampleTime with
    milliseconds (17 digits) is taken and noted in `deviations` as `time_millis`."""
    groups = _split(body)
    time = _lenient_time if lenient else _strict_time
    deviated: list[bool] = []
    data_time: datetime | None = None
    attributes: dict[str, dict[str, str]] = {}
    values: list[tuple[str, str, str]] = []
    extras: list[Pair] = []
    for group in groups:
        for key, text in group:
            if key == "DataTime":
                data_time = time(text, "DataTime", deviated)
                continue
            code, dash, kind = key.partition("-")
            if dash and code:
                if kind in VALUE_KINDS:
                    values.append((code, kind, text))
                    continue
                if kind in ATTRIBUTE_KINDS:
                    attributes.setdefault(code, {})[kind] = text
                    continue
            extras.append((key, text))
    qualifiers = {code: _qualifiers(code, attrs, time, deviated) for code, attrs in attributes.items()}
    readings = tuple(
        _reading(code, kind, text, data_time, qualifiers.get(code, _NO_QUALIFIERS)) for code, kind, text in values
    )
    return CP(groups=groups, data_time=data_time, readings=readings, extras=tuple(extras),
              deviations=(TIME_MILLIS,) if any(deviated) else ())


TIME_MILLIS = "time_millis"
_Time = Callable[[str, str, list[bool]], datetime]


def _strict_time(text: str, what: str, _deviated: list[bool]) -> datetime:
    return parse_data_time(text, what)


def _lenient_time(text: str, what: str, deviated: list[bool]) -> datetime:
    value, millis = parse_data_time_lenient(text, what)
    if millis:
        deviated.append(True)
    return value


def _split(body: str) -> tuple[tuple[Pair, ...], ...]:
    groups: list[tuple[Pair, ...]] = []
    for item in body.split(";"):
        if not item:
            continue  # tolerate `;;` and a trailing `;`
        pairs: list[Pair] = []
        for sub in item.split(","):
            key, eq, text = sub.partition("=")
            if not eq or not key:
                raise BadFieldError(f"CP field without key=value: {sub!r}", field=key or None)
            pairs.append((key, text))
        groups.append(tuple(pairs))
    return tuple(groups)


_Qualifiers = tuple[str | None, datetime | None, str | None]
_NO_QUALIFIERS: _Qualifiers = (None, None, None)


def _reading(code: str, kind: str, text: str, data_time: datetime | None, qualifiers: _Qualifiers) -> Reading:
    if _NUMBER.fullmatch(text) is None:
        parse_number(text, f"{code}-{kind}")  # raises, naming the field
    flag, sample_time, eflag = qualifiers
    return Reading(code, kind, Decimal(text), flag, data_time, sample_time, eflag)


def _qualifiers(code: str, attrs: dict[str, str], time: _Time, deviated: list[bool]) -> _Qualifiers:
    """(flag, sample time, eflag) of one code, validated once for all its readings."""
    flag = attrs.get("Flag")
    if flag is not None and not (len(flag) == 1 and flag.isascii() and flag.isalpha()):
        raise BadFieldError(f"{code}-Flag must be one letter, got {flag!r}", field=f"{code}-Flag")
    sample = attrs.get("SampleTime")
    sample_time = time(sample, f"{code}-SampleTime", deviated) if sample is not None else None
    return flag, sample_time, attrs.get("EFlag")
