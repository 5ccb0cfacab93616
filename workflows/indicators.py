"""Assessment indicators (考核指标, GB/T 30428.4 / CJ/T 292 as DOMAIN.md §3 gives them) over a
period, per case first (`case_facts`), then summed per group and turned into rates (`figures`).

Who is counted in a period [from, to):
- 应结案数 (due): every case that closed in the period, and every case not closed by its end whose
  handling deadline (结案期限) fell before the end — carried over from earlier periods included.
  Each case is thus 结案 in exactly one period, and 应结未结 in each period it ended overdue.
- 立案 figures (filed, decided, invalid, reports): the cases filed in the period.
Finished cases are read from their assessment record (the source of truth); open cases from the
live state (their tasks and 缓办), as of min(period end, now), so the figures are right at any
moment. On time is each stage's own verdict against the limits and clock the case was filed
under (working time where its SLA is): nothing here re-times a case.

Denominator rules a city chooses (workflows/evaluation_config.py): whether cases on hold (缓办)
at the period's end count in 应结案数, and whether invalid and merged cases count (as closed, on
time when reviewed on time). Cancelled cases never count."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from engine.models import HumanTask

from .case_closing import CaseAssessment, handling_deadline, task_on_time
from .cases import Case
from .deferrals import CaseDeferral
from .patrol_coverage import misses
from .time_rules import ClockKind
from .working_time import WorkCalendar

COUNTERS = ("due", "closed", "closed_on_time", "handled", "handled_on_time", "overdue", "reworked", "returned",
            "extended", "deferred", "deferred_excluded", "signed", "signed_on_time", "verified", "verified_on_time",
            "dispatched", "dispatched_on_time", "decided", "decided_on_time", "invalid", "merged", "filed",
            "reports", "valid_reports", "missed")
# counters of each post's own work (a case's review counts for its reviewer, its handling for its inspector)
_REVIEW = ("decided", "decided_on_time", "invalid", "merged", "filed")
_DISPATCH = ("dispatched", "dispatched_on_time", "returned")
_VERIFY = ("verified", "verified_on_time", "closed", "closed_on_time", "due")
_REPORT = ("reports", "valid_reports")
_MISSED = ("missed",)
_INSPECTOR = tuple(c for c in COUNTERS
                   if c not in _REVIEW + _DISPATCH + ("verified", "verified_on_time") + _REPORT + _MISSED)

# rates: name → (numerator, denominator, 中文); scored values are these ×100 (or their complement)
RATES: dict[str, tuple[str, str, str]] = {
    "closing_rate": ("closed", "due", "结案率"),
    "on_time_closing_rate": ("closed_on_time", "due", "按期结案率"),
    "handling_rate": ("handled", "due", "处置率"),
    "on_time_handling_rate": ("handled_on_time", "due", "按期处置率"),
    "rework_rate": ("reworked", "due", "返工率"),
    "overdue_rate": ("overdue", "due", "超期率"),
    "on_time_sign_rate": ("signed_on_time", "signed", "按时签收率"),
    "on_time_verification_rate": ("verified_on_time", "verified", "按时核查率"),
    "on_time_review_rate": ("decided_on_time", "decided", "按时核实率/按时立案率"),
    "on_time_dispatch_rate": ("dispatched_on_time", "dispatched", "按时派遣率"),
    "valid_report_rate": ("valid_reports", "reports", "有效上报率"),
}
MISSED = "missed_rate"  # 漏报率 = 漏报数 / (漏报数 + 有效上报数), 漏报 as workflows/patrol_coverage.py defines it
MISSED_UNAVAILABLE = "null where a group has neither a valid patrol report nor a 漏报 (workflows/patrol_coverage.py)"
SCORED = (*[r for r in RATES if r not in ("rework_rate", "overdue_rate")], "rework_free_rate", "overdue_free_rate",
          "accurate_filing_rate", "accurate_dispatch_rate", "not_missed_rate", "filed_score", "dispatch_score")
DIMENSIONS = ("tenant", "department", "category", "source", "post:inspector", "post:supervisor",
              "post:dispatcher", "region:city", "region:district", "region:town", "region:unit")
NONE_KEY = "-"  # a case without someone in that post (e.g. never dispatched), or a person without a department


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware


@dataclass(frozen=True)
class Rules:
    deferred: str = "include"  # include | exclude: 缓办 cases on hold at the period's end in 应结案数
    invalid_and_merged: str = "exclude"  # exclude | include (as closed, on time when reviewed on time)


@dataclass
class CaseFact:
    """One case as a period counts it: where it is, who worked on it, and its counters (0 or 1)."""

    case_id: str
    grid_code: str
    category: str
    source: str
    inspector: str | None = None
    reviewer: str | None = None
    dispatcher: str | None = None
    verifier: str | None = None
    reporter: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    missed_by: tuple[str, ...] = ()  # the inspectors whose patrol it was on (漏报), when it is 立案


def case_facts(conn: Any, tenant: str, period: Period, now: datetime, calendar: WorkCalendar,
               rules: Rules = Rules()) -> list[CaseFact]:
    """Every case the period counts, finished ones from their records and open ones live."""
    at = min(period.end, now)
    facts = [*_finished(conn, tenant, period, at, rules), *_open(conn, tenant, period, at, calendar, rules)]
    missed = misses(conn, tenant, period.start, at)
    for fact in facts:
        if fact.counts.get("filed") and fact.case_id in missed:
            fact.counts["missed"], fact.missed_by = 1, tuple(missed[fact.case_id])
    return facts


def _on_hold(conn: Any, case_ids: list[str], at: datetime) -> set[str]:
    d = CaseDeferral.__table__
    held: set[str] = set()
    for i in range(0, len(case_ids), 5000):
        held.update(conn.execute(select(d.c.case_id).where(
            d.c.case_id.in_(case_ids[i:i + 5000]), d.c.started_at <= at,
            or_(d.c.ended_at.is_(None), d.c.ended_at > at))).scalars())
    return held


_RECORD_COLUMNS = ("case_id", "grid_code", "category", "source", "inspector", "reviewer", "dispatcher", "verifier",
                   "outcome", "filed_at", "closed_at", "due_at", "handled_at", "reviewed_on_time", "dispatched_on_time",
                   "signed_on_time", "handled_on_time", "verified_on_time", "closed_on_time", "reworks", "returns",
                   "extensions")


def _finished(conn: Any, tenant: str, p: Period, at: datetime, rules: Rules) -> Iterator[CaseFact]:
    a = CaseAssessment.__table__
    columns = [a.c[name] for name in _RECORD_COLUMNS]
    rows = conn.execute(select(*columns).where(a.c.tenant == tenant, a.c.outcome != "cancelled", or_(
        and_(a.c.closed_at >= p.start, a.c.closed_at < p.end),  # closed in the period
        and_(a.c.closed_at >= p.end, a.c.due_at < p.end),  # overdue and not closed at its end
        and_(a.c.filed_at >= p.start, a.c.filed_at < p.end)))).mappings().all()
    reporters = _reporters(conn, [r["case_id"] for r in rows if r["source"] == "patrol"])
    carried = [r["case_id"] for r in rows if r["closed_at"] >= p.end]
    held = _on_hold(conn, carried, at) if carried else set()
    for r in rows:
        c: dict[str, int] = {}
        closed_in = p.start <= r["closed_at"] < p.end
        counted = r["outcome"] == "closed" or rules.invalid_and_merged == "include"
        due = r["due_at"] or r["closed_at"]
        if counted and (closed_in or (r["closed_at"] >= p.end and due < p.end)):
            if not closed_in and r["case_id"] in held:
                c["deferred"] = 1
                c["deferred_excluded" if rules.deferred == "exclude" else "due"] = 1
            else:
                c["due"] = 1
            if c.get("due"):
                _due_counts(c, r, closed_in, p.end)
        if p.start <= r["filed_at"] < p.end:
            _filed_counts(c, r["outcome"], r["reviewed_on_time"], r["source"])
        if c:
            yield CaseFact(r["case_id"], r["grid_code"], r["category"], r["source"], r["inspector"], r["reviewer"],
                           r["dispatcher"], r["verifier"], reporters.get(r["case_id"]), c)


def _due_counts(c: dict[str, int], r: Any, closed_in: bool, end: datetime) -> None:
    """A finished case in 应结案数: closed in the period, or carried (not closed at its end)."""
    if r["outcome"] != "closed":  # invalid or merged, counted by the city's rule: closed by the review
        on_time = r["reviewed_on_time"] is not False
        c.update(closed=1, closed_on_time=int(on_time), handled=1, handled_on_time=int(on_time))
        return
    handled = r["handled_at"] is not None and (closed_in or r["handled_at"] < end)
    if closed_in:
        c.update(closed=1, closed_on_time=int(bool(r["closed_on_time"])))
    if handled:
        c.update(handled=1, handled_on_time=int(bool(r["handled_on_time"])))
    if (handled and r["handled_on_time"] is False) or (not handled and not closed_in):
        c["overdue"] = 1
    for name, flag in (("reworked", "reworks"), ("returned", "returns"), ("extended", "extensions")):
        c[name] = int(r[flag] > 0)
    for stage, flag in (("signed", "signed_on_time"), ("verified", "verified_on_time"),
                        ("dispatched", "dispatched_on_time")):
        if r[flag] is not None:
            c[stage], c[f"{stage}_on_time"] = 1, int(r[flag])


def _filed_counts(c: dict[str, int], outcome: str | None, reviewed_on_time: bool | None, source: str) -> None:
    """立案 figures of a case filed in the period; `outcome` None: open and past its review."""
    c["decided"] = 1
    c["decided_on_time"] = int(reviewed_on_time is not False)
    c["invalid"] = int(outcome == "invalid")
    c["merged"] = int(outcome == "merged")
    c["filed"] = int(outcome in (None, "closed"))
    if source == "patrol":
        c["reports"], c["valid_reports"] = 1, int(outcome in (None, "closed"))


def _reporters(conn: Any, case_ids: list[str]) -> dict[str, str]:
    """Who reported each patrol case (the intake's `details.reporter`)."""
    out: dict[str, str] = {}
    for i in range(0, len(case_ids), 5000):
        for cid, details in conn.execute(select(Case.id, Case.details).where(Case.id.in_(case_ids[i:i + 5000]))):
            if (details or {}).get("reporter"):
                out[cid] = str(details["reporter"])
    return out


def _open(conn: Any, tenant: str, p: Period, at: datetime, calendar: WorkCalendar,
          rules: Rules) -> Iterator[CaseFact]:
    """Cases still open now, as they stood at `at`."""
    cases = conn.execute(select(Case.id, Case.grid_code, Case.category, Case.source, Case.details,
                                Case.created_at, Case.instance_id)
                         .where(Case.tenant == tenant, Case.status == "open", Case.created_at <= at)).all()
    if not cases:
        return
    ht = HumanTask.__table__
    tasks: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(select(ht.c.instance_id, ht.c.element_id, ht.c.status, ht.c.due_at, ht.c.ended_at,
                                   ht.c.created_at, ht.c.assignee, ht.c.completed_by)
                            .join(Case.__table__, Case.instance_id == ht.c.instance_id)
                            .where(Case.tenant == tenant, Case.status == "open", ht.c.created_at <= at)
                            .order_by(ht.c.created_at)).mappings():
        t = dict(row)
        if t["ended_at"] is not None and t["ended_at"] > at:  # as it stood then: still open
            t["status"], t["ended_at"], t["completed_by"] = "open", None, None
        tasks.setdefault(t["instance_id"], []).append(t)
    held = _on_hold(conn, [c.id for c in cases], at)
    for case in cases:
        mine = tasks.get(case.instance_id, [])
        fact = CaseFact(case.id, case.grid_code, case.category, case.source,
                        inspector=_who(mine, ("handle", "sign_for")) or ((case.details or {}).get("assignees") or
                                                                         [None])[0],
                        reviewer=_who(mine, ("review",), done=True), dispatcher=_who(mine, ("dispatch",), done=True),
                        reporter=(case.details or {}).get("reporter"))
        due = handling_deadline(mine) or _projected_due(case.created_at, case.details or {}, mine, calendar)
        if due < p.end:
            if case.id in held:
                fact.counts["deferred"] = 1
                fact.counts["deferred_excluded" if rules.deferred == "exclude" else "due"] = 1
            else:
                fact.counts["due"] = 1
                _open_due_counts(fact.counts, mine, due, at)
        if p.start <= case.created_at < p.end and _done(mine, "review"):
            review = [t for t in mine if t["element_id"] == "review"]
            _filed_counts(fact.counts, None, all(task_on_time(t["status"], t["due_at"], t["ended_at"],
                                                              by_timer=True, now=at) is not False for t in review),
                          case.source)
        if fact.counts:
            yield fact


def _open_due_counts(c: dict[str, int], tasks: list[dict[str, Any]], due: datetime, at: datetime) -> None:
    handles = [t for t in tasks if t["element_id"] == "handle"]
    handled = bool(handles) and handles[-1]["status"] == "completed"
    if handled:
        on_time = all(_on_time(t, at) is not False for t in handles)
        c.update(handled=1, handled_on_time=int(on_time), overdue=int(not on_time))
    elif due < at:
        c["overdue"] = 1
    verified = [t["ended_at"] for t in tasks if t["element_id"] == "verify" and t["status"] == "completed"]
    c["reworked"] = int(bool(verified) and any(h["created_at"] >= min(verified) for h in handles))
    # approved when what follows the approval says so: a new dispatch (回退), a later deadline (延期)
    c["returned"] = int(any(_after(tasks, "approve_return", lambda t: t["element_id"] == "dispatch")))
    c["extended"] = int(any(_after(tasks, "approve_extension", lambda t: t["element_id"] == "handle"
                                   and t["due_at"] is not None and handles[0]["due_at"] is not None
                                   and t["due_at"] > handles[0]["due_at"])))
    for stage, name in (("sign_for", "signed"), ("verify", "verified"), ("dispatch", "dispatched")):
        verdicts = [_on_time(t, at) for t in tasks if t["element_id"] == stage]
        decided = [v for v in verdicts if v is not None]
        if decided:
            c[name], c[f"{name}_on_time"] = 1, int(all(decided))


def _after(tasks: list[dict[str, Any]], stage: str, what: Callable[[dict[str, Any]], bool]) -> Iterator[bool]:
    """For each completed `stage` task: whether the task created next after it is `what`."""
    for i, t in enumerate(tasks):
        if t["element_id"] == stage and t["status"] == "completed":
            later = [u for u in tasks[i + 1:] if u["created_at"] >= t["ended_at"]]
            yield bool(later) and what(later[0])


def _on_time(t: dict[str, Any], at: datetime) -> bool | None:
    return task_on_time(t["status"], t["due_at"], t["ended_at"], by_timer=True, now=at)


def _done(tasks: list[dict[str, Any]], stage: str) -> bool:
    return any(t["element_id"] == stage and t["status"] == "completed" for t in tasks)


def _who(tasks: list[dict[str, Any]], stages: tuple[str, ...], done: bool = False) -> str | None:
    for t in reversed(tasks):
        if t["element_id"] in stages and (t["completed_by"] or (not done and t["assignee"])):
            return t["completed_by"] or t["assignee"]
    return None


def _projected_due(filed: datetime, details: dict[str, Any], tasks: list[dict[str, Any]],
                   calendar: WorkCalendar) -> datetime:
    """The handling deadline of a case not yet in handling, at the earliest: from its current
    stage's deadline (or its filing), each later stage's full limit in turn, on its own clock."""
    stages = ("review", "dispatch", "sign_for", "handle")
    limits = details.get("limits") or {}
    moment, first = filed, 0
    for i, stage in enumerate(stages[:-1]):
        open_now = [t for t in tasks if t["element_id"] == stage and t["status"] == "open" and t["due_at"]]
        if open_now:
            moment, first = open_now[-1]["due_at"], i + 1
    for stage in stages[first:]:
        minutes, clock = limits.get(stage, (0, "natural"))
        moment = (calendar.add_working_hours(moment, minutes / 60) if clock == ClockKind.WORKING.value
                  else moment + timedelta(minutes=minutes))
    return moment


# -- grouping and rates ----------------------------------------------------------------------------------

def group_keys(fact: CaseFact, dims: tuple[str, ...], regions: dict[str, dict[str, str]],
               departments: dict[str, str], tenant: str) -> Iterable[tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """Where a case's counters go under a grouping: (group key, the counters it brings or None for
    all). A post splits a case between the people who did its stages."""
    posts = [d for d in dims if d.startswith("post:")]
    if not posts:
        yield tuple(_value(fact, d, fact.inspector, regions, departments, tenant) for d in dims), None
        return
    post = posts[0]
    share: list[tuple[str | None, tuple[str, ...]]]
    if post == "post:inspector":
        share = [(fact.inspector, _INSPECTOR), (fact.reporter, _REPORT), *((m, _MISSED) for m in fact.missed_by)]
    elif post == "post:supervisor":
        share = [(fact.reviewer, _REVIEW), (fact.verifier, _VERIFY)]
    else:
        share = [(fact.dispatcher, _DISPATCH)]
    for person, counters in share:
        if person is None or not any(fact.counts.get(c) for c in counters):
            continue
        yield tuple(person if d == post else _value(fact, d, person, regions, departments, tenant)
                    for d in dims), counters


def _value(fact: CaseFact, dim: str, person: str | None, regions: dict[str, dict[str, str]],
           departments: dict[str, str], tenant: str) -> str:
    if dim == "tenant":
        return tenant
    if dim == "category":
        return fact.category
    if dim == "source":
        return fact.source
    if dim == "department":
        return departments.get(person or "", NONE_KEY)
    level = dim.split(":", 1)[1]
    return regions.get(fact.grid_code, {}).get(level, fact.grid_code if level == "unit" else NONE_KEY)


def sum_counts(facts: Iterable[CaseFact], dims: tuple[str, ...], regions: dict[str, dict[str, str]],
               departments: dict[str, str], tenant: str) -> dict[tuple[str, ...], dict[str, int]]:
    groups: dict[tuple[str, ...], dict[str, int]] = {}
    for fact in facts:
        for key, counters in group_keys(fact, dims, regions, departments, tenant):
            total = groups.setdefault(key, dict.fromkeys(COUNTERS, 0))
            for name, n in fact.counts.items():
                if counters is None or name in counters:
                    total[name] += n
    return groups


def percent(n: int, d: int) -> float | None:
    return round(100 * n / d, 2) if d else None


def rates(counts: dict[str, int]) -> dict[str, float | None]:
    """Every rate of a group's counters, in percent to two places (None where the denominator is 0)."""
    out = {name: percent(counts[num], counts[den]) for name, (num, den, _) in RATES.items()}
    out["accurate_filing_rate"] = percent(counts["decided"] - counts["invalid"], counts["decided"])
    out["accurate_dispatch_rate"] = percent(counts["dispatched"] - counts["returned"], counts["dispatched"])
    out[MISSED] = percent(counts["missed"], counts["missed"] + counts["valid_reports"])
    return out
