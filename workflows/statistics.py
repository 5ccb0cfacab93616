"""Query statistics (查询统计): the cases filed in a period, counted and turned into rates by
category, source, grid (one level at a time, drilling down from the city to the basic units),
inspector, stage, or time bucket (day, week, month; China local).

A cohort view: each case filed in the period counts once, by where it stands now — closed (on time
or late), invalid, merged, or still open (overdue when an open task is past due). The assessment's
period indicators (应结案数 with carried-over cases) are workflows/indicators.py; nothing here
re-judges on time: a finished case's verdict is its assessment record's.

Without a pre-aggregated table (measured by bench/stats.py, see the README): finished cases are
grouped in SQL over case_assessment through its (tenant, filed_at) index and never loaded; open
cases, a few percent, are read with their tasks (their JSON details only when the inspector
matters).
Who sees what: admins and leaders the tenant, supervisors their grid subtree, inspectors the cases
they handle."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Date, cast, func, literal, select
from sqlalchemy import case as when

from engine.db import Database
from engine.errors import InvalidInput, NotFound
from engine.models import HumanTask
from engine.visibility import Viewer, grid_filter, grid_visible

from .case_closing import CaseAssessment
from .cases import Case
from .evaluations import period_between
from .grids import Grid
from .indicators import NONE_KEY, percent
from .map_layers import stage_of
from .people import Category, Person
from .working_time import CHINA

TIME_BUCKETS = ("day", "week", "month")
DIMENSIONS = ("category", "source", "grid", "inspector", "stage", *TIME_BUCKETS)
COUNTERS = ("filed", "invalid", "merged", "valid", "closed", "closed_on_time", "open", "open_overdue", "overdue")
# rate → (numerator, denominator); in percent to two places, None where the denominator is 0
RATES: dict[str, tuple[str, str]] = {
    "valid_rate": ("valid", "filed"),
    "closing_rate": ("closed", "valid"),
    "on_time_closing_rate": ("closed_on_time", "valid"),
    "overdue_rate": ("overdue", "valid"),
}
# column titles of exports: (中文, English)
TITLES: dict[str, tuple[str, str]] = {
    "filed": ("受理数", "filed"), "invalid": ("无效数", "invalid"), "merged": ("合并数", "merged"),
    "valid": ("立案数", "valid"), "closed": ("结案数", "closed"), "closed_on_time": ("按期结案数", "closed on time"),
    "open": ("在办数", "open"), "open_overdue": ("在办超期数", "open and overdue"), "overdue": ("超期数", "overdue"),
    "valid_rate": ("有效立案率%", "valid rate %"), "closing_rate": ("结案率%", "closing rate %"),
    "on_time_closing_rate": ("按期结案率%", "on-time closing rate %"), "overdue_rate": ("超期率%", "overdue rate %"),
    "category": ("问题类别", "category"), "source": ("来源", "source"), "grid": ("网格", "grid"),
    "inspector": ("网格员", "inspector"), "stage": ("环节", "stage"), "day": ("日期", "day"),
    "week": ("周（起始日）", "week (first day)"), "month": ("月份", "month"), "label": ("名称", "name"),
    "level": ("层级", "level"),
}
NAMES: dict[str, tuple[str, str]] = {  # the values of source and stage as people read them
    "monitoring": ("在线监测", "monitoring"), "device": ("设备状态", "device"), "petition": ("信访", "petition"),
    "citizen": ("群众举报", "citizen"), "patrol": ("巡查上报", "patrol"), "review": ("待甄别", "review"),
    "dispatch": ("待派遣", "dispatch"), "sign_for": ("待签收", "sign-for"), "handle": ("现场处置", "handling"),
    "verify": ("待核查", "verification"), "waiting": ("等待执法反馈", "awaiting enforcement"),
    "closed": ("已结案", "closed"), "invalid": ("无效", "invalid"), "merged": ("已合并", "merged"),
    "city": ("市", "city"), "district": ("区县", "district"), "town": ("街镇", "town"), "unit": ("基础网格", "unit"),
}
MAX_DAYS = 1098  # three years
MAX_DAY_BUCKETS = 366


@dataclass(frozen=True)
class Query:
    tenant: str
    first: date  # China local days, both included
    last: date
    by: str
    parent: str | None = None  # by grid: the children of this grid (default: the top the viewer sees)
    category: str | None = None
    source: str | None = None
    grid: str | None = None  # only this grid's subtree
    inspector: str | None = None


@dataclass(frozen=True)
class _GridNode:
    name: str
    level: str
    parent: str | None


def _check(q: Query) -> None:
    """Refuse a query that names a bad field (InvalidInput naming it)."""
    if q.by not in DIMENSIONS:
        raise InvalidInput(f"by is one of {', '.join(DIMENSIONS)}", fields={"by": [f"one of {', '.join(DIMENSIONS)}"]})
    if q.last < q.first:
        raise InvalidInput("the period ends before it starts", fields={"to": ["must not be before from"]})
    days = (q.last - q.first).days + 1
    if days > MAX_DAYS:
        raise InvalidInput(f"a period is at most {MAX_DAYS} days",
                           fields={"to": [f"at most {MAX_DAYS} days after from"]})
    if q.by == "day" and days > MAX_DAY_BUCKETS:
        raise InvalidInput(f"by day covers at most {MAX_DAY_BUCKETS} days: use week or month",
                           fields={"by": [f"day covers at most {MAX_DAY_BUCKETS} days"]})
    if q.parent is not None and q.by != "grid":
        raise InvalidInput("parent drills down by grid", fields={"parent": ["only with by=grid"]})


def _grids(conn: Any, tenant: str) -> dict[str, _GridNode]:
    rows = conn.execute(select(Grid.code, Grid.name, Grid.level, Grid.parent_code)
                        .where(Grid.tenant == tenant, Grid.valid_to.is_(None)))
    return {code: _GridNode(name, level, parent) for code, name, level, parent in rows}


def _subtree(grids: dict[str, _GridNode], top: str) -> set[str]:
    children: dict[str, list[str]] = {}
    for code, node in grids.items():
        if node.parent:
            children.setdefault(node.parent, []).append(code)
    out, todo = set(), [top]
    while todo:
        code = todo.pop()
        if code not in out:
            out.add(code)
            todo.extend(children.get(code, ()))
    return out


def _local_day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return cast(func.timezone("Asia/Shanghai", column), Date)
    return func.strftime("%Y-%m-%d", column, "+8 hours")  # SQLite keeps UTC as naive text


def _bucket(day: date, by: str) -> str:
    if by == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # its Monday
    if by == "month":
        return day.strftime("%Y-%m")
    return day.isoformat()


def _buckets(first: date, last: date, by: str) -> list[str]:
    out: list[str] = []
    day = first
    while day <= last:
        key = _bucket(day, by)
        if not out or out[-1] != key:
            out.append(key)
        day += timedelta(days=1)
    return out


def _finished(conn: Any, q: Query, viewer: Viewer, start: datetime, end: datetime,
              subtree: set[str] | None) -> Iterable[tuple[str | None, dict[str, int]]]:
    """Finished cases grouped in SQL: (the dimension's raw value, its counters)."""
    a = CaseAssessment.__table__
    dialect = conn.dialect.name
    key = {"category": a.c.category, "source": a.c.source, "grid": a.c.grid_code, "inspector": a.c.inspector,
           "stage": a.c.outcome}.get(q.by) if q.by not in TIME_BUCKETS else _local_day(a.c.filed_at, dialect)
    assert key is not None  # _check let only DIMENSIONS through
    conds = [a.c.tenant == q.tenant, a.c.filed_at >= start, a.c.filed_at < end, a.c.outcome != "cancelled",
             grid_filter(viewer, a.c.grid_code) if viewer.oversees or viewer.sees_all else
             a.c.inspector == viewer.name]
    for name, value in (("category", q.category), ("source", q.source), ("inspector", q.inspector)):
        if value is not None:
            conds.append(a.c[name] == value)
    if subtree is not None:
        conds.append(a.c.grid_code.in_(sorted(subtree)))

    def count_if(cond: Any) -> Any:
        return func.coalesce(func.sum(when((cond, 1), else_=0)), 0)

    stmt = select(key.label("k"), func.count().label("filed"), count_if(a.c.outcome == "invalid").label("invalid"),
                  count_if(a.c.outcome == "merged").label("merged"), count_if(a.c.outcome == "closed").label("closed"),
                  count_if((a.c.outcome == "closed") & a.c.closed_on_time.is_(True)).label("closed_on_time")
                  ).where(*conds).group_by(key)
    for row in conn.execute(stmt).mappings():
        counts = {c: int(row[c]) for c in ("filed", "invalid", "merged", "closed", "closed_on_time")}
        yield row["k"], counts


def _open(conn: Any, q: Query, viewer: Viewer, start: datetime, end: datetime, now: datetime,
          subtree: set[str] | None) -> Iterable[tuple[str | None, dict[str, int]]]:
    """Open cases, one by one with their tasks: stage, overdue (an open task past due) and inspector."""
    conds = [Case.tenant == q.tenant, Case.status == "open", Case.created_at >= start, Case.created_at < end]
    if viewer.oversees or viewer.sees_all:
        conds.append(grid_filter(viewer, Case.grid_code))
    for column, value in ((Case.category, q.category), (Case.source, q.source)):
        if value is not None:
            conds.append(column == value)
    if subtree is not None:
        conds.append(Case.grid_code.in_(sorted(subtree)))
    # the JSON details only when the inspector matters (routing's choice, before any task names one)
    who = q.by == "inspector" or q.inspector is not None or not (viewer.oversees or viewer.sees_all)
    details = Case.details if who else literal(None).label("details")
    cases = conn.execute(select(Case.id, Case.grid_code, Case.category, Case.source, Case.created_at,
                                Case.instance_id, details).where(*conds)).all()
    ht = HumanTask.__table__
    tasks: dict[str, list[Any]] = {}
    ids = [c.instance_id for c in cases if c.instance_id]
    for i in range(0, len(ids), 1000):
        for t in conn.execute(select(ht.c.instance_id, ht.c.element_id, ht.c.status, ht.c.due_at, ht.c.assignee,
                                     ht.c.completed_by).where(ht.c.instance_id.in_(ids[i:i + 1000]))
                              .order_by(ht.c.created_at, ht.c.id)):
            tasks.setdefault(t.instance_id, []).append(t)
    for c in cases:
        mine = tasks.get(c.instance_id, [])
        inspector = _inspector(mine, c.details or {}) if who else None
        if q.inspector is not None and inspector != q.inspector:
            continue
        if not (viewer.oversees or viewer.sees_all) and inspector != viewer.name:
            continue
        open_tasks = [t for t in mine if t.status == "open"]
        overdue = any(t.due_at is not None and t.due_at < now for t in open_tasks)
        value = {"category": c.category, "source": c.source, "grid": c.grid_code, "inspector": inspector,
                 "stage": stage_of([t.element_id for t in open_tasks])}.get(q.by)
        if q.by in TIME_BUCKETS:
            value = c.created_at.astimezone(CHINA).date().isoformat()
        yield value, {"filed": 1, "open": 1, "open_overdue": int(overdue)}


def _inspector(tasks: list[Any], details: dict[str, Any]) -> str | None:
    """Who handles an open case: the latest sign-for or handling task's person, else whom routing chose."""
    for t in reversed(tasks):
        if t.element_id in ("handle", "sign_for") and (t.completed_by or t.assignee):
            return t.completed_by or t.assignee
    assignees = details.get("assignees") or []
    return str(assignees[0]) if assignees else None


def _with_rates(counts: dict[str, int]) -> dict[str, Any]:
    counts["valid"] = counts["filed"] - counts["invalid"] - counts["merged"]
    counts["overdue"] = counts["closed"] - counts["closed_on_time"] + counts["open_overdue"]
    return {"counts": {c: counts[c] for c in COUNTERS},
            "rates": {name: percent(counts[num], counts[den]) for name, (num, den) in RATES.items()}}


def _empty() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def _grid_rows(q: Query, viewer: Viewer, grids: dict[str, _GridNode], raw: dict[str | None, dict[str, int]]
               ) -> tuple[str | None, list[str], dict[str, dict[str, int]]]:
    """Roll the counters of each case grid up to the rows of one level: the children of `parent`,
    or the top grids the viewer sees. A case in the parent grid itself keeps a row of its own."""
    if q.parent is not None:
        rows = sorted(code for code, node in grids.items() if node.parent == q.parent)
        rows = [q.parent, *rows]
    else:
        visible = {code for code in grids if grid_visible(viewer, code)}
        rows = sorted(code for code in visible if grids[code].parent not in visible)
    wanted = set(rows)
    out = {code: _empty() for code in rows}
    for code, counts in raw.items():
        current, hops = code, 0
        while current is not None and current not in wanted and hops < 12:
            current, hops = grids[current].parent if current in grids else None, hops + 1
        if current is None:
            continue
        for name, n in counts.items():
            out[current][name] += n
    if q.parent is not None and not any(out[q.parent].values()):
        rows.remove(q.parent)  # nothing placed in the parent itself: only its children
    return q.parent, rows, out


def statistics(db: Database, q: Query, viewer: Viewer, now: datetime) -> dict[str, Any]:
    """The rows of one grouping (with a total), each with its counters and rates."""
    _check(q)
    period = period_between(q.first, q.last)
    with db.engine.connect() as conn:
        grids = _grids(conn, q.tenant)
        for name, code in (("parent", q.parent), ("grid", q.grid)):
            if code is None:
                continue
            if code not in grids:
                raise InvalidInput(f"tenant {q.tenant} has no grid {code}", fields={name: ["no such grid"]})
            if not (viewer.oversees or viewer.sees_all) and name == "parent":
                continue  # inspectors: their own cases, wherever they lie
            if not grid_visible(viewer, code):
                raise NotFound(f"grid {code} is not in your area", fields=[name])
        subtree = _subtree(grids, q.grid) if q.grid is not None else None
        raw: dict[str | None, dict[str, int]] = {}
        for parts in (_finished(conn, q, viewer, period.start, period.end, subtree),
                      _open(conn, q, viewer, period.start, period.end, now, subtree)):
            for value, counts in parts:
                if q.by in TIME_BUCKETS and value:  # a date (PostgreSQL) or its ISO text (SQLite)
                    value = _bucket(value if isinstance(value, date) else date.fromisoformat(value), q.by)
                key = value
                total = raw.setdefault(key, _empty())
                for name, n in counts.items():
                    total[name] += n
        labels = _labels(conn, q)
    grouped: dict[str, dict[str, int]] | dict[str | None, dict[str, int]]  # by time: `raw` itself
    if q.by == "grid":
        _, order, grouped = _grid_rows(q, viewer, grids, raw)
    elif q.by in TIME_BUCKETS:
        order, grouped = _buckets(q.first, q.last, q.by), raw
    else:
        grouped = {(NONE_KEY if k is None else k): v for k, v in raw.items()}
        order = sorted(grouped, key=lambda k: (-grouped[k]["filed"], k))
    everything = _empty()  # by grid: the rows' (the parent's subtree), else every case counted
    for counts in ([grouped[k] for k in order] if q.by == "grid" else raw.values()):
        for name, n in counts.items():
            everything[name] += n
    rows = []
    for key in order:
        row: dict[str, Any] = {"key": key, **_with_rates(dict(grouped.get(key) or _empty()))}
        if q.by == "grid":
            node = grids[key]
            row.update(label=node.name, level=node.level, hasChildren=any(n.parent == key for n in grids.values()))
        elif q.by in ("category", "inspector"):
            row["label"] = labels.get(key, key)
        rows.append(row)
    return {"tenant": q.tenant, "from": q.first.isoformat(), "to": q.last.isoformat(), "by": q.by,
            "parent": q.parent, "path": _path(grids, q.parent), "computedAt": now.isoformat(), "rows": rows,
            "total": _with_rates(everything)}


def _path(grids: dict[str, _GridNode], code: str | None) -> list[dict[str, str]]:
    """A grid and its ancestors, top first: a drill-down's way back."""
    out: list[dict[str, str]] = []
    while code is not None and code in grids and len(out) < 12:
        out.append({"code": code, "name": grids[code].name, "level": grids[code].level})
        code = grids[code].parent
    return out[::-1]


def _labels(conn: Any, q: Query) -> dict[str, str]:
    if q.by == "category":
        return dict(conn.execute(select(Category.code, Category.name).where(Category.tenant == q.tenant)).all())
    if q.by == "inspector":
        return {u: n for u, n in conn.execute(select(Person.username, Person.name)
                                              .where(Person.tenant == q.tenant, Person.username.is_not(None)))}
    return {}
