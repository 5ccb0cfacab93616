"""How many SMS segments a text takes, and cutting a text down to a number of segments.

GSM-7 texts fit 160 septets in one segment, 153 per segment when concatenated (characters of the
extension table take two and are never split); anything else is UCS-2: 70 UTF-16 units, 67 per
segment when concatenated (surrogate pairs never split). Chinese text is always UCS-2, which is
also how domestic gateways such as Aliyun count (70, then 67 characters, sign name included)."""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

GSM7, UCS2 = "GSM-7", "UCS-2"
_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets or UTF-16 code units
    count: int  # segments; 0 for an empty text


def encoding_of(text: str) -> str:
    return GSM7 if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text) else UCS2


def _unit_sizes(text: str, encoding: str) -> list[int]:
    if encoding == GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def count_segments(text: str) -> Segments:
    encoding = encoding_of(text)
    sizes = _unit_sizes(text, encoding)
    single, multi = _LIMITS[encoding]
    units = sum(sizes)
    if units <= single:
        return Segments(encoding, units, 1 if units else 0)
    count, used = 1, 0
    for size in sizes:  # a character never straddles two segments
        if used + size > multi:
            count, used = count + 1, 0
        used += size
    return Segments(encoding, units, count)


def truncate_to_segments(text: str, max_segments: int, *, keep_suffix: str = "") -> str:
    """`text` + `keep_suffix` if it fits in `max_segments`; else the longest prefix of `text` that
    fits with an ellipsis ("..." in GSM-7 so as not to force UCS-2, "…" otherwise) and the suffix."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if count_segments(text + keep_suffix).count <= max_segments:
        return text + keep_suffix
    ellipsis = "..." if encoding_of(text + keep_suffix) == GSM7 else "…"
    low, high = 0, len(text)  # invariant: text[:low] fits; segments grow with the prefix
    while low < high:
        mid = (low + high + 1) // 2
        if count_segments(text[:mid] + ellipsis + keep_suffix).count <= max_segments:
            low = mid
        else:
            high = mid - 1
    if low == 0 and count_segments(ellipsis + keep_suffix).count > max_segments:
        raise ValueError("the kept suffix alone does not fit in max_segments")
    return text[:low].rstrip() + ellipsis + keep_suffix
