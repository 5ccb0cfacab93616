"""Statistics (查询统计) over HTTP on a small city built for them, every figure computed by hand: six
finished cases bulk-written with their assessment records (the source of truth for finished cases),
one filed the month before and one cancelled (neither counts), and one open case filed through the
real intake and left to turn overdue. Then: each grouping, the drill-down from the city to a town,
who sees what, refused input naming its field, and the CSV and XLSX files read back to the same
numbers.

The world is the full-loop tests' (demo city 320700, clock at Tuesday 29 September 2026, 09:00 China)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from tests.api import test_closed_loop_http as full_loop
from tests.api.test_case_clock import file_case
from tests.api.test_closed_loop_http import login, point_in_first_unit
from workflows.case_closing import CaseAssessment
from workflows.cases import Case
from workflows.grids import Grid

world = full_loop.world

SEPT = "from=2026-09-01&to=2026-09-30"
FILED = datetime(2026, 9, 10, 2, 0, tzinfo=UTC)  # 10 September, 10:00 China


def _tree(rt) -> dict[str, str]:
    """The first unit (where the intake routes the open case), its town and district, a second town
    of that district, and a unit of another district."""
    a1 = point_in_first_unit(rt)[0]
    with rt.db.session() as s:
        parent = dict(s.execute(select(Grid.code, Grid.parent_code).where(Grid.valid_to.is_(None))).all())
        town = parent[a1]
        district = parent[town]
        other_town = min(c for c, p in parent.items() if p == district and c != town)
        a2 = min(c for c, p in parent.items() if p == other_town)
        other_district = min(c for c, p in parent.items() if p == parent[district] and c != district)
        b1 = min(c for c, p in parent.items() if p is not None and parent.get(p) is not None
                 and parent[p] == other_district)
    return {"a1": a1, "town": town, "district": district, "other_town": other_town, "a2": a2,
            "other_district": other_district, "b1": b1, "city": parent[district]}


def _finished(rt, n: int, unit: str, category: str, source: str, inspector: str | None, outcome: str,
              on_time: bool | None, filed: datetime = FILED) -> None:
    closed = filed + timedelta(hours=20)
    cid = f"S-{n}"
    with rt.db.transaction() as s:
        s.add(Case(id=cid, tenant="320700", source=source, external_id=cid, category=category, grid_code=unit,
                   route_reason="test", urgent=False, status="closed", outcome=outcome, closed_at=closed,
                   occurrences=1, first_seen=filed, last_seen=filed, details={}, created_at=filed))
        s.flush()
        valid = outcome == "closed"
        s.add(CaseAssessment(case_id=cid, tenant="320700", grid_code=unit, category=category, source=source,
                             inspector=inspector, outcome=outcome, violation=False, filed_at=filed, closed_at=closed,
                             lead_hours=20.0, reviewed_on_time=True, dispatched_on_time=True if valid else None,
                             signed_on_time=True if valid else None, handled_on_time=on_time,
                             verified_on_time=True if valid else None, closed_on_time=on_time, reworks=0, returns=0,
                             extensions=0, escalations=0, reminders=0, urges=0, transfers=0, occurrences=1,
                             details={}, due_at=filed + timedelta(hours=24) if valid else None,
                             handled_at=closed - timedelta(hours=1) if valid else None))


@pytest.fixture
def city(world, clock):
    rt, client, _ = world
    g = _tree(rt)
    _finished(rt, 1, g["a1"], "noise", "citizen", "insp-a1", "closed", True)
    _finished(rt, 2, g["a1"], "noise", "monitoring", "insp-a1", "closed", False)
    _finished(rt, 3, g["a2"], "air.exceedance", "monitoring", "insp-a2", "closed", True)
    _finished(rt, 4, g["a2"], "noise", "citizen", None, "invalid", None)
    _finished(rt, 5, g["b1"], "air.exceedance", "petition", "insp-b1", "merged", None)
    _finished(rt, 6, g["b1"], "noise", "citizen", "insp-b1", "closed", True)
    _finished(rt, 7, g["a1"], "noise", "citizen", "insp-a1", "closed", True, filed=FILED - timedelta(days=30))
    _finished(rt, 8, g["a1"], "noise", "citizen", "insp-a1", "cancelled", None)
    file_case(rt, client, clock, "OPEN-1", category="air.exceedance")  # monitoring, in a1
    clock.advance(timedelta(hours=3))  # its review (10 minutes, urgent) is long overdue
    leader = login(rt, client, clock, "boss", ["leader"], None)
    return rt, client, clock, g, leader


def stats(caller, query: str, status: int = 200) -> dict:
    r = caller.get(f"/api/v1/statistics/cases?tenant=320700&{query}")
    assert r.status_code == status, r.get_json()
    return r.get_json()


def rows(body: dict) -> dict[str, dict]:
    return {r["key"]: r for r in body["rows"]}


def test_counts_by_source_with_rates_and_total(city):
    _rt, _client, _clock, _g, leader = city
    body = stats(leader, f"{SEPT}&by=source")
    by = rows(body)
    assert by["citizen"]["counts"] == {"filed": 3, "invalid": 1, "merged": 0, "valid": 2, "closed": 2,
                                            "closed_on_time": 2, "open": 0, "open_overdue": 0, "overdue": 0}
    assert by["monitoring"]["counts"] == {"filed": 3, "invalid": 0, "merged": 0, "valid": 3, "closed": 2,
                                          "closed_on_time": 1, "open": 1, "open_overdue": 1, "overdue": 2}
    assert by["petition"]["counts"]["merged"] == 1 and by["petition"]["rates"]["closing_rate"] is None
    assert by["monitoring"]["rates"] == {"valid_rate": 100.0, "closing_rate": 66.67, "on_time_closing_rate": 33.33,
                                         "overdue_rate": 66.67}
    assert body["total"]["counts"]["filed"] == 7  # the August case and the cancelled one are not counted
    assert body["total"]["rates"] == {"valid_rate": 71.43, "closing_rate": 80.0, "on_time_closing_rate": 60.0,
                                      "overdue_rate": 40.0}


def test_counts_by_category_inspector_stage_and_month(city):
    _rt, _client, _clock, _g, leader = city
    cat = rows(stats(leader, f"{SEPT}&by=category"))
    assert {k: r["counts"]["filed"] for k, r in cat.items()} == {"noise": 4, "air.exceedance": 3}
    assert cat["noise"]["label"] != "noise"  # the category's name
    insp = rows(stats(leader, f"{SEPT}&by=inspector"))
    assert insp["insp-a1"]["counts"]["closed"] == 2 and insp["insp-b1"]["counts"]["filed"] == 2
    assert insp["-"]["counts"]["invalid"] == 1  # nobody handled the invalid case
    stage = rows(stats(leader, f"{SEPT}&by=stage"))
    assert {k: r["counts"]["filed"] for k, r in stage.items()} == {"closed": 4, "invalid": 1, "merged": 1,
                                                                   "review": 1}
    assert stage["review"]["counts"]["open_overdue"] == 1
    months = stats(leader, "from=2026-08-01&to=2026-09-30&by=month")["rows"]
    assert [(r["key"], r["counts"]["filed"]) for r in months] == [("2026-08", 1), ("2026-09", 7)]
    weeks = stats(leader, f"{SEPT}&by=week")["rows"]
    assert weeks[0]["key"] == "2026-08-31" and len(weeks) == 5  # Mondays; empty weeks are rows too
    assert sum(r["counts"]["filed"] for r in weeks) == 7
    days = rows(stats(leader, f"{SEPT}&by=day"))
    assert len(days) == 30 and days["2026-09-10"]["counts"]["filed"] == 6 and days["2026-09-29"]["counts"]["open"] == 1


def test_drill_down_from_the_city_to_a_town(city):
    _rt, _client, _clock, g, leader = city
    top = stats(leader, f"{SEPT}&by=grid")["rows"]
    assert [(r["key"], r["level"], r["counts"]["filed"], r["hasChildren"]) for r in top] == [
        (g["city"], "city", 7, True)]
    districts = rows(stats(leader, f"{SEPT}&by=grid&parent={g['city']}"))
    assert districts[g["district"]]["counts"]["filed"] == 5 and districts[g["other_district"]]["counts"]["filed"] == 2
    assert all(r["level"] == "district" for r in districts.values())
    assert sum(r["counts"]["filed"] for r in districts.values()) == 7  # every district is a row, most of them 0
    towns = stats(leader, f"{SEPT}&by=grid&parent={g['district']}")
    by_town = rows(towns)
    assert by_town[g["town"]]["counts"] == {"filed": 3, "invalid": 0, "merged": 0, "valid": 3, "closed": 2,
                                            "closed_on_time": 1, "open": 1, "open_overdue": 1, "overdue": 2}
    assert by_town[g["other_town"]]["counts"]["invalid"] == 1
    assert [p["code"] for p in towns["path"]] == [g["city"], g["district"]]
    units = rows(stats(leader, f"{SEPT}&by=grid&parent={g['town']}"))
    assert units[g["a1"]]["counts"]["filed"] == 3 and units[g["a1"]]["level"] == "unit"
    only = rows(stats(leader, f"{SEPT}&by=source&grid={g['other_town']}"))
    assert {k: r["counts"]["filed"] for k, r in only.items()} == {"citizen": 1, "monitoring": 1}


def test_a_supervisor_sees_their_subtree_and_an_inspector_their_own_cases(city):
    rt, client, clock, g, _leader = city
    sup = login(rt, client, clock, "dist-sup", ["supervisor"], g["district"])
    mine = stats(sup, f"{SEPT}&by=grid")
    assert [(r["key"], r["counts"]["filed"]) for r in mine["rows"]] == [(g["district"], 5)]
    assert mine["total"]["counts"]["filed"] == 5
    assert stats(sup, f"{SEPT}&by=grid&parent={g['other_district']}", status=404)["error"]["fields"] == {
        "parent": [f"grid {g['other_district']} is not in your area"]}
    assert stats(sup, f"{SEPT}&by=source&grid={g['b1']}", status=404)["error"]["fields"].keys() == {"grid"}
    insp = login(rt, client, clock, "insp-b1", ["inspector"], g["b1"])
    own = stats(insp, f"{SEPT}&by=source")
    assert own["total"]["counts"]["filed"] == 2 and set(rows(own)) == {"citizen", "petition"}
    nobody = login(rt, client, clock, "insp-none", ["inspector"], g["a1"])
    assert stats(nobody, f"{SEPT}&by=month")["total"]["counts"]["filed"] == 0
    elsewhere = login(rt, client, clock, "sup-elsewhere", ["supervisor"], "3301")
    assert stats(elsewhere, f"{SEPT}&by=source", status=403)["error"]["fields"].keys() == {"tenant"}
    assert client.get(f"/api/v1/statistics/cases?tenant=320700&{SEPT}&by=source").status_code == 401


@pytest.mark.parametrize(("query", "field"), [
    ("by=source", "from"),
    (f"{SEPT}", "by"),
    (f"{SEPT}&by=colour", "by"),
    ("from=2026-09-30&to=2026-09-01&by=source", "to"),
    ("from=2026-09-31&to=2026-10-01&by=source", "from"),
    ("from=2020-01-01&to=2026-09-01&by=month", "to"),
    ("from=2025-01-01&to=2026-09-01&by=day", "by"),
    (f"{SEPT}&by=source&parent=320706", "parent"),
    (f"{SEPT}&by=grid&parent=999999", "parent"),
    (f"{SEPT}&by=source&grid=999999", "grid"),
    (f"{SEPT}&by=source&source=fax", "source"),
    (f"{SEPT}&by=source&format=pdf", "format"),
    (f"{SEPT}&by=source&lang=fr", "lang"),
    (f"{SEPT}&by=source&colour=red", "colour"),
])
def test_bad_input_is_refused_naming_the_field(city, query, field):
    *_, leader = city
    body = stats(leader, query, status=422)
    assert field in body["error"]["fields"], body


def test_csv_and_xlsx_read_back_to_the_same_numbers(city):
    *_, g, leader = city
    body = stats(leader, f"{SEPT}&by=grid&parent={g['district']}")
    r = leader.get(f"/api/v1/statistics/cases?tenant=320700&{SEPT}&by=grid&parent={g['district']}&format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == (
        f'attachment; filename="statistics-320700-grid-2026-09-01-2026-09-30-{g["district"]}.csv"')
    table = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0][:4] == ["网格", "名称", "层级", "受理数"]
    assert len(table) == 1 + len(body["rows"]) + 1  # header, rows, total
    for line, row in zip(table[1:], body["rows"], strict=False):
        assert line[0] == row["key"] and int(line[3]) == row["counts"]["filed"]
        assert line[-3] == ("" if row["rates"]["closing_rate"] is None else str(row["rates"]["closing_rate"]))
    assert table[-1][0] == "合计" and int(table[-1][3]) == 5

    r = leader.get(f"/api/v1/statistics/cases?tenant=320700&{SEPT}&by=source&lang=en",
                   headers={"Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    assert r.status_code == 200 and r.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(r.get_data())).active
    values = [list(v) for v in sheet.iter_rows(values_only=True)]
    assert values[0][:3] == ["source", "filed", "invalid"]
    by_source = {v[0]: v for v in values[1:]}
    assert by_source["monitoring"][1:10] == [3, 0, 0, 3, 2, 1, 1, 1, 2]
    assert by_source["monitoring"][11:13] == [66.67, 33.33]  # closing and on-time closing rates, as numbers
    assert by_source["total"][1] == 7


def test_assessment_indicators_export_the_groups_they_answer(city):
    *_, leader = city
    body = leader.get("/api/v1/assessment/indicators?tenant=320700&period=2026-09&by=source").get_json()
    r = leader.get("/api/v1/assessment/indicators?tenant=320700&period=2026-09&by=source&format=xlsx")
    assert r.status_code == 200, r.get_json()
    assert r.headers["Content-Disposition"] == 'attachment; filename="indicators-320700-2026-09-source.xlsx"'
    values = list(load_workbook(io.BytesIO(r.get_data())).active.iter_rows(values_only=True))
    assert values[0][:3] == ("来源", "应结案数", "结案数")
    assert len(values) == 1 + len(body["groups"])
    names = {"citizen": "群众举报", "monitoring": "在线监测", "petition": "信访"}
    for group, line in zip(body["groups"], values[1:], strict=True):
        assert line[0] == names[group["key"]["source"]]
        assert line[1:3] == (group["counts"]["due"], group["counts"]["closed"])
    r = leader.get("/api/v1/assessment/indicators?tenant=320700&period=2026-09&by=tenant&format=csv&lang=en")
    table = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0][:3] == ["tenant", "due", "closed"] and table[1][0] == "320700"


def test_a_published_evaluation_exports_the_groups_the_caller_may_see(city):
    rt, client, clock, g, leader = city
    admin = login(rt, client, clock, "chief", ["admin"], None)
    r = admin.post("/api/v1/assessment/evaluations", json={"tenant": "320700", "period": "2026-08",
                                                           "by": "region:district"})
    assert r.status_code == 201, r.get_json()
    eid = r.get_json()["id"]
    groups = leader.get(f"/api/v1/assessment/evaluations/{eid}").get_json()["figures"]["groups"]
    assert [(x["key"]["region:district"], x["counts"]["closed"]) for x in groups] == [(g["district"], 1)]
    r = leader.get(f"/api/v1/assessment/evaluations/{eid}?format=csv&lang=en")
    assert r.headers["Content-Disposition"] == f'attachment; filename="evaluation-{eid}-320700-2026-08.csv"'
    table = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert table[0][:3] == ["district", "due", "closed"] and table[1][:3] == [g["district"], "1", "1"]
    other = login(rt, client, clock, "other-sup", ["supervisor"], g["other_district"])
    r = other.get(f"/api/v1/assessment/evaluations/{eid}?format=csv")
    assert len(list(csv.reader(io.StringIO(r.get_data(as_text=True))))) == 1  # the header only: not their district
    assert leader.get(f"/api/v1/assessment/evaluations/{eid}?format=doc").status_code == 422
