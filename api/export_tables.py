"""The columns and rows of each exportable answer: statistics (workflows/statistics.py) and the
assessment's indicators and evaluations (workflows/evaluations.py), in the file's language."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from workflows import statistics
from workflows.indicators import RATES

from .exports import Column

_DIMENSIONS = {"tenant": ("城市", "tenant"), "department": ("部门", "department"), "category": ("问题类别", "category"),
               "source": ("来源", "source"), "post:inspector": ("网格员", "inspector"),
               "post:supervisor": ("监管员", "supervisor"), "post:dispatcher": ("派遣员", "dispatcher"),
               "region:city": ("市", "city"), "region:district": ("区县", "district"),
               "region:town": ("街镇", "town"), "region:unit": ("基础网格", "unit")}
_COUNTS = {"due": ("应结案数", "due"), "closed": ("结案数", "closed"),
           "closed_on_time": ("按期结案数", "closed on time"),
           "handled": ("处置数", "handled"), "handled_on_time": ("按期处置数", "handled on time"),
           "overdue": ("超期数", "overdue"), "reworked": ("返工数", "reworked"), "filed": ("立案数", "filed"),
           "dispatched": ("派遣数", "dispatched")}
_EXTRA_RATES = {"accurate_filing_rate": ("准确立案率%", "accurate filing rate %"),
                "accurate_dispatch_rate": ("准确派遣率%", "accurate dispatch rate %")}


def _named(value: Any, lang: str) -> Any:
    names = statistics.NAMES.get(value) if isinstance(value, str) else None
    return names[0 if lang == "zh" else 1] if names else value


def statistics_table(body: dict[str, Any], lang: str) -> tuple[list[Column], Iterator[list[Any]]]:
    by = body["by"]
    t = statistics.TITLES
    keys = [by] + (["label"] if by in ("grid", "category", "inspector") else []) + (["level"] if by == "grid" else [])
    measures = [*statistics.COUNTERS, *statistics.RATES]
    columns = [Column(k, *t[k]) for k in [*keys, *measures]]

    def rows() -> Iterator[list[Any]]:
        for r in [*body["rows"], {"key": "合计" if lang == "zh" else "total", **body["total"]}]:
            head = [_named(r["key"], lang) if by in ("source", "stage") else r["key"]]
            if "label" in keys:
                head.append(r.get("label"))
            if "level" in keys:
                head.append(_named(r.get("level"), lang))
            yield head + [r["counts"][c] for c in statistics.COUNTERS] + [r["rates"][n] for n in statistics.RATES]

    return columns, rows()


def assessment_table(body: dict[str, Any], lang: str) -> tuple[list[Column], Iterator[list[Any]]]:
    """The groups of an indicators answer or a published evaluation's figures."""
    by = body["by"]
    rates = {name: (zh + "%", name.replace("_", " ") + " %") for name, (_, _, zh) in RATES.items()}
    rates.update(_EXTRA_RATES)
    columns = ([Column(d, *_DIMENSIONS[d]) for d in by] + [Column(c, *_COUNTS[c]) for c in _COUNTS] +
               [Column(r, *rates[r]) for r in rates] +
               [Column("score", "得分", "score"), Column("grade", "等级", "grade")])

    def rows() -> Iterator[list[Any]]:
        for g in body["groups"]:
            yield ([_named(g["key"][d], lang) if d == "source" else g["key"][d] for d in by] +
                   [g["counts"][c] for c in _COUNTS] + [g["rates"][r] for r in rates] + [g["score"], g["grade"]])

    return columns, rows()
