"""Published monthly bulletins reproduced from case data built for them (DOMAIN.md §3): 连云港
(应结案 24,932; 结案 23,974, 96.16 %; 按期结案 22,345, 89.62 %) and 天门 (911 and 737 of 972:
93.72 %, 75.82 %).

The cases are finished ones, so their state is their assessment record (the source of truth for a
finished case): the rows are inserted directly, because what is under test is the aggregation —
which records a month counts and how — not the loop that writes them (tests/api/test_assessment_api.py
drives that). Each month also gets records that must *not* count: closed the month before, due
and closed the month after, cancelled, invalid and merged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from workflows.case_closing import CaseAssessment
from workflows.cases import Case
from workflows.evaluation_config import DEFAULT_CONFIG
from workflows.evaluations import evaluate, period_of
from workflows.working_time import WorkCalendar

MONTH = period_of("2026-09")
IN_MONTH = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)
BEFORE = datetime(2026, 8, 10, 2, 0, tzinfo=UTC)
AFTER = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)


def finished(case_id: str, *, tenant: str, filed: datetime, closed: datetime, due: datetime | None,
             on_time: bool, outcome: str = "closed", grid: str = "320706001001") -> tuple[dict, dict]:
    case = dict(id=case_id, tenant=tenant, source="citizen", external_id=case_id, category="noise", grid_code=grid,
                route_reason="test", urgent=False, status="closed", outcome=outcome, closed_at=closed,
                occurrences=1, first_seen=filed, last_seen=filed, details={}, created_at=filed)
    record = dict(case_id=case_id, tenant=tenant, grid_code=grid, category="noise", source="citizen",
                  inspector="insp-a", outcome=outcome, violation=False, filed_at=filed, closed_at=closed,
                  lead_hours=round((closed - filed).total_seconds() / 3600, 3), reviewed_on_time=True,
                  dispatched_on_time=True if outcome == "closed" else None,
                  signed_on_time=True if outcome == "closed" else None,
                  handled_on_time=on_time if outcome == "closed" else None,
                  verified_on_time=True if outcome == "closed" else None,
                  closed_on_time=on_time if outcome == "closed" else None, reworks=0, returns=0, extensions=0,
                  escalations=0, reminders=0, urges=0, transfers=0, occurrences=1, deferrals=0,
                  deferred_seconds=0, details={}, due_at=due, handled_at=closed - timedelta(hours=1),
                  reviewer="sup-a", dispatcher="sup-a", verifier="sup-a")
    return case, record


def build_month(db, tenant: str, *, due: int, closed: int, on_time: int) -> None:
    """A month with `due` cases due to close: `closed` closed in it (`on_time` of them on time) and the
    rest carried over — due in the month, still not closed at its end (they closed in October) —
    beside rows no September figure may count."""
    rows = []
    for i in range(closed):
        rows.append(finished(f"{tenant}-c{i}", tenant=tenant, filed=IN_MONTH - timedelta(days=2), closed=IN_MONTH,
                             due=IN_MONTH + timedelta(hours=2 if i < on_time else -5), on_time=i < on_time))
    for i in range(due - closed):  # carried: due in September, closed in October
        rows.append(finished(f"{tenant}-o{i}", tenant=tenant, filed=IN_MONTH - timedelta(days=2), closed=AFTER,
                             due=IN_MONTH, on_time=False))
    for i in range(25):  # none of these is September's
        rows.append(finished(f"{tenant}-b{i}", tenant=tenant, filed=BEFORE - timedelta(days=1), closed=BEFORE,
                             due=BEFORE + timedelta(hours=3), on_time=True))
        rows.append(finished(f"{tenant}-a{i}", tenant=tenant, filed=AFTER - timedelta(hours=5), closed=AFTER,
                             due=AFTER + timedelta(hours=3), on_time=True))
        rows.append(finished(f"{tenant}-x{i}", tenant=tenant, filed=BEFORE, closed=IN_MONTH, due=None,
                             on_time=False, outcome="cancelled"))
    for i, outcome in enumerate(["invalid", "merged"] * 5):
        rows.append(finished(f"{tenant}-v{i}", tenant=tenant, filed=BEFORE, closed=IN_MONTH, due=None,
                             on_time=False, outcome=outcome))
    with db.engine.begin() as conn:
        conn.execute(insert(Case.__table__), [c for c, _ in rows])
        conn.execute(insert(CaseAssessment.__table__), [r for _, r in rows])


def city_figures(db, tenant: str) -> dict:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    body = evaluate(db, WorkCalendar(), tenant, MONTH, ("tenant",), now, config=(None, DEFAULT_CONFIG))
    (group,) = body["groups"]
    return group


def test_the_lianyungang_bulletin_is_reproduced(db):
    build_month(db, "320700", due=24_932, closed=23_974, on_time=22_345)
    g = city_figures(db, "320700")
    assert (g["counts"]["due"], g["counts"]["closed"], g["counts"]["closed_on_time"]) == (24_932, 23_974, 22_345)
    assert g["rates"]["closing_rate"] == 96.16
    assert g["rates"]["on_time_closing_rate"] == 89.62
    assert g["counts"]["overdue"] == 24_932 - 22_345  # late ones and those still not closed at the month's end


def test_the_tianmen_bulletin_is_reproduced(db):
    build_month(db, "429006", due=972, closed=911, on_time=737)
    g = city_figures(db, "429006")
    assert (g["counts"]["due"], g["counts"]["closed"], g["counts"]["closed_on_time"]) == (972, 911, 737)
    assert (g["rates"]["closing_rate"], g["rates"]["on_time_closing_rate"]) == (93.72, 75.82)


def test_a_carried_case_counts_in_each_month_it_ended_overdue_and_is_closed_in_one(db):
    """Due in August, closed in October: 应结未结 in August and September, 结案 (late) in October."""
    case, record = finished("late-1", tenant="320700", filed=BEFORE - timedelta(days=1), closed=AFTER,
                            due=BEFORE, on_time=False)
    with db.engine.begin() as conn:
        conn.execute(insert(Case.__table__), [case])
        conn.execute(insert(CaseAssessment.__table__), [record])
    now = datetime(2026, 12, 1, tzinfo=UTC)

    def month(label: str) -> dict:
        (g,) = evaluate(db, WorkCalendar(), "320700", period_of(label), ("tenant",), now,
                        config=(None, DEFAULT_CONFIG))["groups"]
        return {k: g["counts"][k] for k in ("due", "closed", "closed_on_time", "overdue")}

    assert month("2026-08") == {"due": 1, "closed": 0, "closed_on_time": 0, "overdue": 1}
    assert month("2026-09") == {"due": 1, "closed": 0, "closed_on_time": 0, "overdue": 1}
    assert month("2026-10") == {"due": 1, "closed": 1, "closed_on_time": 0, "overdue": 1}
    assert evaluate(db, WorkCalendar(), "320700", period_of("2026-11"), ("tenant",), now,
                    config=(None, DEFAULT_CONFIG))["groups"] == []
    quarter = evaluate(db, WorkCalendar(), "320700", period_of("2026-Q3"), ("tenant",), now,
                       config=(None, DEFAULT_CONFIG))["groups"][0]["counts"]
    assert (quarter["due"], quarter["closed"]) == (1, 0)
