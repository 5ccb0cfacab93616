"""Assessment over HTTP with cases driven through the real intake and process on a controlled clock:
each edge case of the indicators computed by hand (a case filed in one month and due in the next,
one due and still open, 缓办 under both denominator rules, a rework, an extension, a return, an
invalid and a merged case under both rules, a transfer between districts), who sees what, and
publishing with the configuration used.

The world is that of the full-loop tests (tests/api/test_closed_loop_http.py): the demo city 320700,
its clock at Tuesday 29 September 2026, 09:00 China time; air.exceedance is urgent (natural time,
4 h to handle), noise is not (working time, 16 working hours)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import shapely
from sqlalchemy import select

from tests.api import test_closed_loop_http as full_loop
from tests.api.test_case_clock import city, file_case
from tests.api.test_closed_loop_http import login, point_in_first_unit
from tests.api.test_loop_variants import a_unit_elsewhere, complete, due, existing, give_evidence, task_of
from workflows.grids import Grid
from workflows.people import Person

world = full_loop.world

T0 = datetime(2026, 9, 29, 1, 0, tzinfo=UTC)  # Tuesday 29 September, 09:00 China time
H = timedelta(hours=1)


# -- helpers ---------------------------------------------------------------------------------------------

def inspector_for(rt, client, clock, task: dict):
    """A caller for whoever the task went to, made once; a task offered to the grid's inspectors (nobody
    routed there) is claimed by one of them."""
    name = task["assignee"] or f"insp-{task['candidateScope']}"
    with rt.db.session() as s:
        grid = s.scalar(select(Person.grid_code).where(Person.username == name)) or task["candidateScope"]
    try:
        caller = login(rt, client, clock, name, ["inspector"], grid)
    except Exception:  # made by an earlier case of the same test
        caller = existing(client, name)
    if task["assignee"] is None:
        assert caller.post(f"/api/v1/task/{task['id']}/claim", json={}).status_code == 200
    return caller


def to_handle(rt, client, clock, sup, iid: str):
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch")
    inspector = inspector_for(rt, client, clock, task_of(sup, iid, "sign_for"))
    complete(inspector, iid, "sign_for")
    return inspector


def point_in(rt, code: str) -> tuple[float, float]:
    with rt.db.session() as s:
        geometry = s.scalar(select(Grid.geometry).where(Grid.code == code, Grid.valid_to.is_(None)))
    p = shapely.from_geojson(geometry).representative_point()
    return p.x, p.y


def finish(rt, sup, inspector, iid: str, grid: str | None = None, verified: bool = True) -> None:
    handle = task_of(inspector, iid, "handle")
    lon, lat = point_in(rt, grid) if grid else point_in_first_unit(rt)[1:]
    give_evidence(inspector, handle["id"], lon, lat)
    complete(inspector, iid, "handle", handle_result="done", finding_kind="rectified")
    complete(sup, iid, "verify", verified=verified)


def groups(caller, period: str, by: str = "tenant", **query) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in {"tenant": "320700", "period": period, "by": by, **query}.items())
    r = caller.get(f"/api/v1/assessment/indicators?{params}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()["groups"]


def counts(caller, period: str, *names: str) -> dict[str, int]:
    found = groups(caller, period)
    if not found:
        return dict.fromkeys(names, 0)
    (g,) = found
    return {n: g["counts"][n] for n in names}


def rate(caller, period: str, name: str) -> float | None:
    (g,) = groups(caller, period)
    return g["rates"][name]


def put_config(admin, effective_from: str, config: dict):
    return admin.put("/api/v1/assessment/config", json={"tenant": "320700", "effectiveFrom": effective_from,
                                                        "config": config})


def leader(rt, client, clock):
    return login(rt, client, clock, "boss", ["leader"], None)


# -- periods and 应结案数 ---------------------------------------------------------------------------------

def test_a_case_filed_in_september_and_due_in_october_is_octobers_to_close(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "N-1", category="noise")
    inspector = to_handle(rt, client, clock, sup, iid)
    assert due(task_of(inspector, iid, "handle")) == datetime(2026, 10, 8, 2, 0, tzinfo=UTC)  # 16 working h
    clock.set(datetime(2026, 10, 8, 1, 0, tzinfo=UTC))  # Thursday 8 October 09:00: an hour early
    finish(rt, sup, inspector, iid)
    assert counts(boss, "2026-09", "due", "closed", "decided", "filed") == {"due": 0, "closed": 0, "decided": 1,
                                                                            "filed": 1}
    assert counts(boss, "2026-10", "due", "closed", "closed_on_time", "handled_on_time") == {
        "due": 1, "closed": 1, "closed_on_time": 1, "handled_on_time": 1}
    assert rate(boss, "2026-10", "on_time_closing_rate") == 100.0
    assert groups(boss, "2026-Q4")[0]["counts"]["due"] == 1 and groups(boss, "2026")[0]["counts"]["due"] == 1


def test_a_case_due_this_month_and_still_open_counts_then_turns_overdue_and_is_carried(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "O-1")  # urgent: due 4 h after signing for
    to_handle(rt, client, clock, sup, iid)
    clock.advance(H)
    assert counts(boss, "2026-09", "due", "closed", "overdue") == {"due": 1, "closed": 0, "overdue": 0}
    assert rate(boss, "2026-09", "closing_rate") == 0.0
    clock.advance(4 * H)  # past the handling deadline (the overdue timer has not even run: live state decides)
    assert counts(boss, "2026-09", "due", "overdue") == {"due": 1, "overdue": 1}
    assert rate(boss, "2026-09", "overdue_rate") == 100.0
    clock.set(datetime(2026, 10, 2, 1, 0, tzinfo=UTC))
    assert counts(boss, "2026-10", "due", "closed", "overdue") == {"due": 1, "closed": 0, "overdue": 1}
    assert counts(boss, "2026-09", "due", "overdue") == {"due": 1, "overdue": 1}  # as it stood at September's end
    # a range of days works the same: 1–15 October
    r = boss.get("/api/v1/assessment/indicators?tenant=320700&from=2026-10-01&to=2026-10-15")
    assert r.status_code == 200 and r.get_json()["groups"][0]["counts"]["due"] == 1


def test_a_deferred_case_counts_or_not_by_the_citys_denominator_rule(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    admin = login(rt, client, clock, "root", ["admin"], None)
    _case, iid = file_case(rt, client, clock, "D-1")  # urgent: handling due 13:00 China time today
    inspector = to_handle(rt, client, clock, sup, iid)
    complete(inspector, iid, "handle", handle_result="defer", defer_reason="待法院裁定",
             defer_until=datetime(2026, 10, 20, 1, 0, tzinfo=UTC).isoformat())
    complete(sup, iid, "approve_deferral", deferral_approved=True)
    clock.advance(6 * H)  # the old deadline has passed, but the clock stands still while on hold
    include = counts(boss, "2026-09", "due", "closed", "overdue", "deferred", "deferred_excluded")
    assert include == {"due": 1, "closed": 0, "overdue": 0, "deferred": 1, "deferred_excluded": 0}

    assert put_config(admin, "2026-09-01", {"denominator": {"deferred": "exclude"}}).status_code == 200
    exclude = counts(boss, "2026-09", "due", "closed", "overdue", "deferred", "deferred_excluded")
    assert exclude == {"due": 0, "closed": 0, "overdue": 0, "deferred": 1, "deferred_excluded": 1}
    assert groups(boss, "2026-09")[0]["rates"]["closing_rate"] is None  # nothing left to close: no rate, not 0 %


# -- reworks, extensions, returns --------------------------------------------------------------------------

def test_a_rework_counts_in_the_rework_rate_and_the_case_still_closes(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "R-1")
    inspector = to_handle(rt, client, clock, sup, iid)
    finish(rt, sup, inspector, iid, verified=False)  # 返工: back to handling
    finish(rt, sup, inspector, iid)
    assert counts(boss, "2026-09", "due", "closed", "reworked") == {"due": 1, "closed": 1, "reworked": 1}
    assert rate(boss, "2026-09", "rework_rate") == 100.0
    (g,) = groups(boss, "2026-09", by="department")
    assert g["components"]["rework_free_rate"] == 0.0
    verifier = {r["key"]["post:supervisor"]: r["counts"] for r in groups(boss, "2026-09", by="post:supervisor")}
    assert verifier[sup.name]["verified"] == 1 and verifier[sup.name]["decided"] == 1


def test_an_extension_moves_the_case_into_the_month_of_its_new_deadline(world, clock):
    rt, client, _ = world
    clock.set(datetime(2026, 9, 30, 2, 0, tzinfo=UTC))  # Wednesday 30 September, 10:00: due 14:00 today
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "X-1")
    inspector = to_handle(rt, client, clock, sup, iid)
    complete(inspector, iid, "handle", handle_result="extension", extension_reason="需第三方检测")
    complete(sup, iid, "approve_extension", extension_approved=True, approved_hours=48)
    assert due(task_of(inspector, iid, "handle")) == datetime(2026, 10, 2, 6, 0, tzinfo=UTC)  # 14:00 China
    clock.set(datetime(2026, 10, 1, 1, 0, tzinfo=UTC))
    assert counts(boss, "2026-09", "due") == {"due": 0}
    assert counts(boss, "2026-10", "due", "extended", "overdue") == {"due": 1, "extended": 1, "overdue": 0}
    finish(rt, sup, inspector, iid)
    assert counts(boss, "2026-10", "due", "closed", "closed_on_time", "extended") == {
        "due": 1, "closed": 1, "closed_on_time": 1, "extended": 1}


def test_a_return_counts_against_the_dispatch_and_the_case_closes_after_redispatch(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    _case, iid = file_case(rt, client, clock, "B-1")
    inspector = to_handle(rt, client, clock, sup, iid)
    complete(inspector, iid, "handle", handle_result="return", return_reason="不属本网格")
    complete(sup, iid, "approve_return", return_approved=True)
    complete(sup, iid, "dispatch")
    again = inspector_for(rt, client, clock, task_of(sup, iid, "sign_for"))
    complete(again, iid, "sign_for")
    finish(rt, sup, again, iid)
    assert counts(boss, "2026-09", "due", "closed", "returned") == {"due": 1, "closed": 1, "returned": 1}
    (d,) = groups(boss, "2026-09", by="post:dispatcher")
    assert d["key"] == {"post:dispatcher": sup.name}
    assert (d["counts"]["dispatched"], d["counts"]["returned"], d["rates"]["accurate_dispatch_rate"]) == (1, 1, 0.0)


# -- invalid and merged cases; transfers -----------------------------------------------------------------

def test_invalid_and_merged_cases_count_only_when_the_city_says_so(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    admin = login(rt, client, clock, "root", ["admin"], None)
    target, keep = file_case(rt, client, clock, "M-0")
    to_handle(rt, client, clock, sup, keep)  # the case the duplicate is merged into: open, due today
    _a, invalid = file_case(rt, client, clock, "M-1")
    complete(sup, invalid, "review", review_result="invalid", invalid_reason="误报")
    _b, merged = file_case(rt, client, clock, "M-2")
    complete(sup, merged, "review", review_result="merge", merge_into=target["id"])
    before = counts(boss, "2026-09", "due", "closed", "decided", "invalid", "merged", "filed")
    assert before == {"due": 1, "closed": 0, "decided": 3, "invalid": 1, "merged": 1, "filed": 1}
    assert rate(boss, "2026-09", "accurate_filing_rate") == 66.67  # (3 decided − 1 invalid) / 3

    assert put_config(admin, "2026-09-01", {"denominator": {"invalid_and_merged": "include"}}).status_code == 200
    after = counts(boss, "2026-09", "due", "closed", "closed_on_time")
    assert after == {"due": 3, "closed": 2, "closed_on_time": 2}  # closed by their (timely) review


def test_a_case_transferred_to_another_district_counts_there(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    case, iid = file_case(rt, client, clock, "T-1")
    there = a_unit_elsewhere(rt, case["grid"])
    complete(sup, iid, "review", review_result="valid")
    complete(sup, iid, "dispatch", dispatch_action="transfer", transfer_grid=there, transfer_reason="企业在邻区")
    inspector = to_handle(rt, client, clock, sup, iid)
    finish(rt, sup, inspector, iid, grid=there)
    by_district = {g["key"]["region:district"]: g["counts"]["closed"]
                   for g in groups(boss, "2026-09", by="region:district")}
    assert by_district == {there[:6]: 1}
    assert case["grid"][:6] != there[:6]
    combined = groups(boss, "2026-09", by="region:district,post:inspector")
    assert [g["key"] for g in combined] == [{"region:district": there[:6], "post:inspector": inspector.name}]


# -- who sees what ---------------------------------------------------------------------------------------

def test_inspectors_see_their_own_row_and_supervisors_their_subtree(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    case, iid = file_case(rt, client, clock, "V-1")
    inspector = to_handle(rt, client, clock, sup, iid)
    finish(rt, sup, inspector, iid)
    mine = groups(inspector, "2026-09", by="post:inspector")
    assert [g["key"] for g in mine] == [{"post:inspector": inspector.name}]
    assert inspector.get("/api/v1/assessment/indicators?tenant=320700&period=2026-09&by=tenant").status_code == 403
    elsewhere = a_unit_elsewhere(rt, case["grid"])[:6]
    other = login(rt, client, clock, "sup-far", ["supervisor"], elsewhere)
    assert groups(other, "2026-09") == []  # the case is not in their subtree
    r = other.get(f"/api/v1/assessment/indicators?tenant=320700&period=2026-09&grid={case['grid'][:6]}")
    assert r.status_code == 404
    assert groups(boss, "2026-09")[0]["counts"]["closed"] == 1


# -- configuration and publishing ------------------------------------------------------------------------

def test_bad_configuration_is_refused_naming_the_field(world, clock):
    rt, client, _ = world
    admin = login(rt, client, clock, "root", ["admin"], None)
    bad = {
        "config.schemes.department": {"schemes": {"department": {"closing_rate": 50, "on_time_handling_rate": 40}}},
        "config.schemes.region": {"schemes": {"region": {"closing_rate": 50, "happiness": 50}}},
        "config.schemes.mayor": {"schemes": {"mayor": {"closing_rate": 100}}},
        "config.bands.filed_score": {"bands": {"filed_score": [{"min": 0, "max": 60, "score": 100},
                                                               {"min": 50, "max": None, "score": 0}]}},
        "config.bands.dispatch_score": {"bands": {"dispatch_score": [{"min": 0, "max": 10, "score": 0},
                                                                     {"min": 20, "max": None, "score": 100}]}},
        "config.denominator.deferred": {"denominator": {"deferred": "sometimes"}},
        "config.grades": {"grades": [{"grade": "A", "min": 90}, {"grade": "B", "min": 60}]},
        "config.config": {"weights": {}},
    }
    for field, config in bad.items():
        r = put_config(admin, "2026-10-01", config)
        assert r.status_code == 422, (field, r.get_json())
        assert field in r.get_json()["error"]["fields"], (field, r.get_json())
    assert "sum to 100" in str(put_config(admin, "2026-10-01", bad["config.schemes.department"]).get_json())
    assert "overlap" in str(put_config(admin, "2026-10-01", bad["config.bands.filed_score"]).get_json())
    assert "gap" in str(put_config(admin, "2026-10-01", bad["config.bands.dispatch_score"]).get_json())
    assert put_config(admin, "not a date", {}).status_code == 422
    assert admin.get("/api/v1/assessment/config?tenant=320700").get_json()["history"] == []  # nothing stored
    sup = city(rt, client, clock)
    assert put_config(sup, "2026-10-01", {}).status_code == 403


def test_a_published_evaluation_keeps_its_configuration_and_reproduces(world, clock):
    rt, client, _ = world
    sup, boss = city(rt, client, clock), leader(rt, client, clock)
    admin = login(rt, client, clock, "root", ["admin"], None)
    case, iid = file_case(rt, client, clock, "P-1")
    inspector = to_handle(rt, client, clock, sup, iid)
    finish(rt, sup, inspector, iid)
    body = {"tenant": "320700", "period": "2026-09", "by": "region:district"}
    assert admin.post("/api/v1/assessment/evaluations", json=body).status_code == 422  # September is not over
    clock.set(datetime(2026, 10, 2, 1, 0, tzinfo=UTC))
    r = admin.post("/api/v1/assessment/evaluations", json=body)
    assert r.status_code == 201, r.get_json()
    published = r.get_json()
    (g,) = published["figures"]["groups"]
    # 立案数分值 10 (1 case: 100) + 结案率 30 + 按期结案率 30 + (1 − 返工率) 30, all 100 %
    assert (g["score"], g["grade"]) == (100.0, "A")
    assert admin.post("/api/v1/assessment/evaluations", json=body).status_code == 409
    assert admin.post("/api/v1/assessment/evaluations", json={**body, "by": "mood"}).status_code == 422

    # the configuration may not reach back into September any more; from October it may
    weights = {"schemes": {"region": {"closing_rate": 50, "overdue_free_rate": 50}}}
    refused = put_config(admin, "2026-09-15", weights)
    assert refused.status_code == 422 and "effectiveFrom" in refused.get_json()["error"]["fields"]
    assert put_config(admin, "2026-10-01", weights).status_code == 200
    stored = boss.get(f"/api/v1/assessment/evaluations/{published['id']}").get_json()
    assert stored["figures"]["groups"] == published["figures"]["groups"]
    assert stored["config"]["schemes"]["region"]["filed_score"] == 10
    again = boss.get(f"/api/v1/assessment/evaluations/{published['id']}/reproduction").get_json()
    assert again["matches"] is True
    listed = boss.get("/api/v1/assessment/evaluations?tenant=320700").get_json()
    assert [e["id"] for e in listed] == [published["id"]]
    # who reads it: the inspector has no row in a regional evaluation; a far supervisor no district
    assert inspector.get(f"/api/v1/assessment/evaluations/{published['id']}").get_json()["figures"]["groups"] == []
    far = login(rt, client, clock, "sup-far", ["supervisor"], a_unit_elsewhere(rt, case["grid"])[:6])
    assert far.get(f"/api/v1/assessment/evaluations/{published['id']}").get_json()["figures"]["groups"] == []
    assert sup.get(f"/api/v1/assessment/evaluations/{published['id']}").get_json()["figures"]["groups"] != []
