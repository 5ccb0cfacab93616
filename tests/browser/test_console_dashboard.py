"""The leaders' dashboard (统计分析) in headless Chromium against a real server with the demo city and
its cases: the demo leader (leader-320706) logs in, sees the charts drawn (ECharts on canvas) with
the overall figures and each chart's table matching GET /statistics/cases, drills from the city to
a district and into 海州区's towns, exports the current level as CSV (its numbers read back equal the
API's), and sees the assessment of the month. Nothing is loaded from another origin."""

from __future__ import annotations

import csv
import io

import requests
from sqlalchemy import select

from api import user_admin
from api.accounts import User
from tests.browser.conftest import wait_until
from workflows.grids import Grid

DISTRICT = "320706"  # 海州区, the demo logins' district


def _demo_leader_password(live) -> str:
    """The demo leader's password is logged once at the first start; the test sets a new one the way an
    administrator would (POST /users/{id}/reset-password's use case)."""
    with live.runtime.db.session() as s:
        uid = s.scalar(select(User.id).where(User.username == "leader-320706"))
    assert uid is not None, "the demo has no leader login"
    _row, password = user_admin.reset_password(live.runtime, "test", uid, None)
    return password


def _api(live, token: str, path: str) -> dict:
    r = requests.get(f"{live.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"}, timeout=20)
    assert r.status_code == 200, r.text
    return r.json()


def _table(page, testid: str) -> dict[str, dict[str, str]]:
    rows = page.locator(f"[data-testid={testid}] tbody tr")
    out = {}
    for i in range(rows.count()):
        row = rows.nth(i)
        out[row.get_attribute("data-key")] = {c.get_attribute("data-col"): c.text_content()
                                              for c in row.locator("td").all()}
    return out


def _canvas_drawn(page, testid: str) -> bool:
    """Whether the chart's canvas holds anything but blank pixels."""
    return page.evaluate("""(id) => {
        const c = document.querySelector(`[data-testid=${id}] canvas`);
        if (!c || !c.width) return false;
        const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) return true;
        return false;
    }""", testid)


def test_a_leader_reads_the_dashboard_drills_into_a_district_and_exports_csv(chromium, live, screenshots):
    # the city's leader (no scope) starts from the city; the demo's 海州区 leader from the district only
    district_token = requests.post(f"{live.url}/api/v1/auth/token", timeout=10, json={
        "username": "leader-320706", "password": _demo_leader_password(live)}).json()["access_token"]
    start_of_year = "2026-01-01"
    top = _api(live, district_token, f"/statistics/cases?tenant=320700&from={start_of_year}&to=2026-12-31&by=grid")
    assert [r["key"] for r in top["rows"]] == [DISTRICT]
    password = live.user("city-leader", ["leader"], None)
    token = requests.post(f"{live.url}/api/v1/auth/token", json={"username": "city-leader", "password": password},
                          timeout=10).json()["access_token"]

    desk = chromium.new_context(viewport={"width": 1400, "height": 1000}, locale="zh-CN", accept_downloads=True)
    page = desk.new_page()
    problems: list[str] = []
    elsewhere: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith((live.url, "data:", "blob:")) else elsewhere.append(r.url))
    page.goto(live.url + "/")
    page.get_by_label("用户名").fill("city-leader")
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.get_by_role("link", name="统计分析", exact=True).click()
    page.wait_for_url("**/dashboard")
    page.locator("[data-testid=kpi-filed]").wait_for(timeout=20_000)
    for chart in ("grid", "rates", "stage", "source", "category", "trend"):
        page.locator(f"[data-testid=chart-{chart}] canvas").wait_for(timeout=15_000)
        wait_until(page, f"""() => {{
            const c = document.querySelector('[data-testid=chart-{chart}] canvas');
            const px = c && c.width && c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            return px && px.some((v, i) => i % 4 === 3 && v !== 0);
        }}""")
        assert _canvas_drawn(page, f"chart-{chart}"), chart

    start = page.locator("input[type=date]").first.input_value()
    end = page.locator("input[type=date]").nth(1).input_value()
    base = f"/statistics/cases?tenant=320700&from={start}&to={end}"
    by_source = _api(live, token, f"{base}&by=source")
    total = by_source["total"]
    assert total["counts"]["filed"] > 0  # the demo cases
    for k in ("filed", "closed", "closed_on_time", "open", "overdue"):
        assert page.locator(f"[data-testid=kpi-{k}]").inner_text() == str(total["counts"][k]), k
    rate = total["rates"]["closing_rate"]
    shown_rate = page.locator("[data-testid=kpi-closing_rate]").inner_text()  # JS writes 0.0 as "0"
    assert (shown_rate == "—") if rate is None else (float(shown_rate.rstrip("%")) == rate)
    stage = _table(page, "table-stage")
    assert {k: int(v["filed"]) for k, v in stage.items()} == {
        r["key"]: r["counts"]["filed"] for r in _api(live, token, f"{base}&by=stage")["rows"]}
    assert {k: int(v["filed"]) for k, v in _table(page, "table-source").items()} == {
        r["key"]: r["counts"]["filed"] for r in by_source["rows"]}
    page.screenshot(path=str(screenshots / "dashboard-overview.png"), full_page=True)

    # the city, then its districts, then 海州区's towns (each name in the table drills like a bar does)
    city = _api(live, token, f"{base}&by=grid")["rows"]
    assert list(_table(page, "table-grid")) == [r["key"] for r in city] == ["320700"]
    page.locator("[data-testid=by-grid] details summary").click()  # the chart's figures as a table
    # a click on the city's 受理数 bar (the first of three in the only category; the plot is inset 48 px
    # left, 16 right, 72 below) drills down
    box = page.locator("[data-testid=chart-grid]").bounding_box()
    plot = box["width"] - 64
    page.mouse.click(box["x"] + 48 + plot * (0.1 + 0.8 / 6), box["y"] + box["height"] - 72 - 8)
    page.locator("[data-testid=table-grid] tr[data-key='320706']").wait_for(timeout=5_000)
    page.get_by_role("button", name="返回上一级").click()
    page.locator("[data-testid=table-grid] tr[data-key='320700'] button").click()  # and by its name
    page.locator("[data-testid=table-grid] tr[data-key='320706']").wait_for()
    districts = _api(live, token, f"{base}&by=grid&parent=320700")["rows"]
    assert {k: int(v["filed"]) for k, v in _table(page, "table-grid").items()} == {
        r["key"]: r["counts"]["filed"] for r in districts}
    page.locator(f"[data-testid=table-grid] tr[data-key='{DISTRICT}'] button").click()
    page.locator("[data-testid=grid-parent]").filter(has_text="海州区").wait_for()
    towns = _api(live, token, f"{base}&by=grid&parent={DISTRICT}")["rows"]
    shown = _table(page, "table-grid")
    assert {k: int(v["filed"]) for k, v in shown.items()} == {r["key"]: r["counts"]["filed"] for r in towns}
    assert all(len(k) == 9 for k in shown)  # towns
    page.wait_for_timeout(300)
    page.screenshot(path=str(screenshots / "dashboard-district.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_role("button", name="导出 CSV: 按网格").click()
    download = info.value
    assert download.suggested_filename == f"statistics-320700-grid-{start}-{end}-{DISTRICT}.csv"
    text = open(download.path(), encoding="utf-8-sig").read()  # noqa: SIM115 - read once
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][:4] == ["网格", "名称", "层级", "受理数"]
    assert {line[0]: int(line[3]) for line in lines[1:-1]} == {r["key"]: r["counts"]["filed"] for r in towns}
    assert lines[-1][0] == "合计" and int(lines[-1][3]) == sum(r["counts"]["filed"] for r in towns)

    page.get_by_role("button", name="返回上一级").click()
    page.locator("[data-testid=table-grid] tr[data-key='320706']").wait_for()

    assessment = page.locator("[data-testid=assessment]")
    assessment.scroll_into_view_if_needed()
    month = end[:7]  # the demo's cases are this month's
    assessment.get_by_label("考核期间").fill(month)
    assessment.get_by_label("评价对象").select_option("region:district")
    groups = _api(live, token, f"/assessment/indicators?tenant=320700&period={month}&by=region:district")["groups"]
    assert groups, "the demo's closed case is due this month"
    rows = "document.querySelectorAll('[data-testid=assessment-groups] tbody tr').length"
    wait_until(page, f"() => {rows} == {len(groups)}")
    shown = [[c.text_content() for c in r.locator("th, td").all()]
             for r in page.locator("[data-testid=assessment-groups] tbody tr").all()]
    with live.runtime.db.session() as s:  # districts by name, not by code
        names = dict(s.execute(select(Grid.code, Grid.name).where(Grid.valid_to.is_(None))).all())
    assert [(r[0], int(r[1]), int(r[2])) for r in shown] == [
        (names[g["key"]["region:district"]], g["counts"]["due"], g["counts"]["closed"]) for g in groups]
    page.screenshot(path=str(screenshots / "dashboard-assessment.png"), full_page=True)
    assert not problems, problems
    assert not elsewhere, elsewhere
    desk.close()


def test_an_inspector_has_no_dashboard(chromium, live):
    password = live.user("insp-dash", ["inspector"], "320706001")
    page = chromium.new_page(locale="zh-CN")
    page.goto(live.url + "/dashboard")
    page.get_by_label("用户名").fill("insp-dash")
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector("p.error, main h1", timeout=15_000)
    assert page.get_by_role("link", name="统计分析", exact=True).count() == 0
    page.close()
