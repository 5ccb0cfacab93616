"""The administration console in headless Chromium against a real server with the demo city: an admin
creates an inspector (a wrong scope refused at its field first; the generated password shown once,
and it logs in on a phone), disables another user — whose open console loses its session and who
cannot log in again — opens each administration page, and logs out, after which the old token is
refused by the API too; keeps the staff register (a refusal at its field, then saved and changed), which a
supervisor sees as their one administration page."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests

from tests.api.test_closed_loop_http import point_in_first_unit
from tests.browser.conftest import admin_at, desk_page, login, wait_until
from tests.browser.live_server import PASSWORD

CHINA = ZoneInfo("Asia/Shanghai")
ADMIN_PAGES = ["staff", "grids", "duty", "categories", "calendar", "sources", "warning-policies", "incidents",
               "notices"]


def test_admin_creates_an_inspector_and_disables_a_user_who_then_cannot_log_in(chromium, live, screenshots):
    unit, _, _ = point_in_first_unit(live.runtime)
    other_password = live.user("insp-leaving", ["inspector"], unit)
    problems: list[str] = []

    leaving = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
    login(leaving, live.url, "insp-leaving", other_password)
    leaving.wait_for_url("**/m")

    desk = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    admin = desk.new_page()
    admin.on("pageerror", lambda e: problems.append(str(e)))
    login(admin, live.url, "admin", PASSWORD)
    admin.get_by_role("link", name="系统管理").click()
    admin.wait_for_url("**/admin")
    admin.wait_for_selector("tr[data-user='insp-leaving']")
    # the demo's logins are there, linked to the roster's people
    assert admin.locator("tr[data-user='sup-320706']").count() == 1
    assert admin.locator("tr[data-user='leader-320706']").count() == 1
    admin.screenshot(path=str(screenshots / "admin-users.png"), full_page=True)

    form = admin.locator("form[aria-labelledby=new-user]")
    form.get_by_label("用户名").fill("wang-fang")
    form.get_by_label("姓名").fill("王芳")
    form.get_by_label("网格范围").fill("no-such-grid")
    form.get_by_role("button", name="创建").click()
    scope = form.locator("#u-scope[aria-invalid=true]")
    scope.wait_for()
    assert "no-such-grid" in form.locator("#u-scope-err").inner_text()
    admin.screenshot(path=str(screenshots / "admin-user-refused.png"), full_page=True)
    form.get_by_label("网格范围").fill(unit)
    form.get_by_role("button", name="创建").click()
    shown = admin.locator("[data-testid=one-time-password] code")
    shown.wait_for()
    new_password = shown.inner_text()
    admin.wait_for_selector("tr[data-user='wang-fang']")
    assert "网格员" in admin.locator("tr[data-user='wang-fang']").inner_text()
    admin.screenshot(path=str(screenshots / "admin-user-created.png"), full_page=True)

    row = admin.locator("tr[data-user='insp-leaving']")
    row.get_by_role("button", name="停用").click()
    admin.wait_for_selector("tr[data-user='insp-leaving'].inactive")
    assert "已停用" in row.inner_text()
    admin.screenshot(path=str(screenshots / "admin-user-disabled.png"), full_page=True)

    leaving.reload()  # their open console: the session is over, back to the login form
    leaving.get_by_role("button", name="登录").wait_for()
    login(leaving, live.url, "insp-leaving", other_password)
    leaving.wait_for_selector("[role=alert]:has-text('登录失败')")
    leaving.screenshot(path=str(screenshots / "admin-disabled-cannot-log-in.png"), full_page=True)

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN").new_page()
    login(phone, live.url, "wang-fang", new_password)
    phone.wait_for_url("**/m")

    for name in ADMIN_PAGES:
        admin.goto(f"{live.url}/admin/{name}")
        admin.wait_for_selector("main h1")
        admin.wait_for_load_state("networkidle")
        assert admin.locator("main p.error").count() == 0, (name, admin.locator("main p.error").all_inner_texts())
        admin.screenshot(path=str(screenshots / f"admin-{name}.png"), full_page=True)

    token = admin.evaluate("JSON.parse(sessionStorage.getItem('gridloop.session')).access")
    assert requests.get(f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10).ok
    admin.get_by_role("button", name="退出").click()
    admin.get_by_role("button", name="登录").wait_for()
    for _ in range(50):  # the logout request is sent as the page forgets the token
        refused = requests.get(f"{live.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if refused.status_code == 401:
            break
        admin.wait_for_timeout(100)
    assert refused.status_code == 401
    assert problems == []


def test_admin_changes_a_time_limit_and_a_warning_policy_with_errors_shown_first(chromium, live, screenshots):
    problems: list[str] = []
    admin = admin_at(chromium, live, "/admin/categories", problems)
    admin.locator("tr:has-text('noise')").get_by_role("button", name="修改").click()
    review = admin.locator("#tr-review")
    review.fill("0")
    admin.get_by_role("button", name="保存").click()
    admin.wait_for_selector("#tr-review[aria-invalid=true]")
    limit = admin.locator("#tr-review-err").inner_text()
    assert "527040" in limit and "不小于 1" in limit, limit  # the limits, at its field, in Chinese
    admin.screenshot(path=str(screenshots / "admin-time-limit-refused.png"), full_page=True)
    review.fill("45")
    admin.get_by_role("button", name="保存").click()
    admin.wait_for_selector("tr:has-text('noise') td:has-text('45′')")
    admin.screenshot(path=str(screenshots / "admin-time-limit-saved.png"), full_page=True)

    admin.goto(f"{live.url}/admin/warning-policies")
    form = admin.locator("form[aria-labelledby=new-policy]")
    form.get_by_label("网格前缀").fill("320706")
    form.get_by_label("确认时限（分钟）").fill("0")
    form.get_by_role("button", name="添加").click()
    form.locator("#wp-ackMinutes[aria-invalid=true]").wait_for()
    form.get_by_label("确认时限（分钟）").fill("20")
    form.get_by_role("button", name="添加").click()
    row = admin.locator("tr:has-text('320706')")
    row.wait_for()
    admin.screenshot(path=str(screenshots / "admin-warning-policy.png"), full_page=True)
    row.get_by_role("button", name="删除").click()
    row.wait_for(state="detached")
    assert problems == []


def test_admin_registers_a_reachable_inspector_in_the_staff_register(chromium, live, screenshots):
    unit, _, _ = point_in_first_unit(live.runtime)
    problems: list[str] = []
    admin = admin_at(chromium, live, "/admin/staff", problems)
    admin.get_by_label("只看无法通知的").check()
    admin.get_by_role("button", name="筛选").click()
    rows = admin.locator("table.admin-table tbody tr")
    admin.wait_for_selector("table.admin-table caption:has-text('条')")
    assert rows.count() > 0 and rows.count() == admin.locator("tbody tr:has-text('无法通知')").count()

    form = admin.locator("form[aria-label=登记人员]")
    form.get_by_label("姓名").fill("王芳")
    form.get_by_label("网格").fill(unit)
    form.get_by_label("用户名").fill("wang.fang")
    form.get_by_label("短信").check()  # SMS with no number: refused at the channels, nothing written
    form.get_by_role("button", name="创建").click()
    form.locator("fieldset[aria-invalid=true]").wait_for()
    assert "第 1 项：选择短信须填写手机号" in form.locator("#sn-channels-err").inner_text()
    assert "请修改标出的字段" in form.locator("[role=alert]").inner_text()
    admin.screenshot(path=str(screenshots / "admin-staff-refused.png"), full_page=True)
    form.get_by_label("手机号").fill("138 0013 8000")
    form.get_by_role("button", name="创建").click()
    wait_until(admin, "() => document.querySelector('#sn-name').value === ''")  # saved: the form is empty again

    admin.get_by_label("只看无法通知的").uncheck()  # now reachable: found by name, not among the unreachable
    admin.locator("#sf-q").fill("王芳")
    admin.get_by_role("button", name="筛选").click()
    row = admin.locator("tbody tr:has-text('王芳')")
    row.wait_for()
    assert all(x in row.inner_text() for x in ("wang.fang", "网格员", unit, "+8613800138000", "短信", "在用"))
    row.get_by_role("button", name="修改").click()
    edit = admin.locator("form[aria-label='修改 王芳']")
    assert edit.get_by_label("用户名").is_disabled()  # given once
    edit.get_by_label("手机号").fill("13900139000")
    edit.get_by_role("button", name="保存").click()
    admin.wait_for_selector("tbody tr:has-text('+8613900139000')")
    admin.screenshot(path=str(screenshots / "admin-staff-saved.png"), full_page=True)

    sup = desk_page(chromium, problems)
    login(sup, live.url, "sup-staff", live.user("sup-staff", ["supervisor"], unit))
    sup.get_by_role("link", name="系统管理", exact=True).click()
    sup.wait_for_selector("tbody tr:has-text('王芳')")  # their area's register is their administration page
    assert sup.locator("nav.subnav a").all_inner_texts() == ["人员名册", "值班表"]
    assert problems == []


def test_a_supervisor_rosters_someone_picked_from_the_register_and_a_leader_only_reads_it(chromium, live, screenshots):
    unit, _, _ = point_in_first_unit(live.runtime)
    tomorrow = (datetime.now(CHINA) + timedelta(days=1)).date().isoformat()
    problems: list[str] = []
    # a laptop left on UTC: times are typed, and shown, in China time all the same
    sup = desk_page(chromium, problems, timezone_id="UTC")
    login(sup, live.url, "sup-duty", live.user("sup-duty", ["supervisor"], unit[:6]))
    sup.wait_for_selector("header.top")
    sup.goto(f"{live.url}/admin/duty")
    form = sup.locator("form[aria-labelledby=new-shift]")
    person = form.get_by_label("值班人员")
    assert person.is_disabled() and "先填写网格编码" in form.inner_text()  # nobody to pick before the grid
    form.get_by_label("网格").fill(unit)
    form.locator("#ds-personId option:nth-child(2)").wait_for(state="attached")  # the unit's people, from the register
    picked = person.locator("option").nth(1).inner_text()
    person.select_option(index=1)
    form.get_by_label("开始").fill(f"{tomorrow}T20:00")
    form.get_by_label("结束").fill(f"{tomorrow}T19:00")  # before it starts: refused at its field
    form.get_by_role("button", name="添加").click()
    form.locator("#ds-endsAt[aria-invalid=true]").wait_for()
    assert form.locator("#ds-endsAt-err").inner_text() == "须晚于开始时间"  # the refusal in the reader's language
    form.get_by_label("结束").fill(f"{tomorrow}T23:59")
    form.get_by_role("button", name="添加").click()
    wait_until(sup, "() => !document.querySelector('#ds-endsAt[aria-invalid=true]')")
    form.get_by_role("button", name="添加").click()  # sent twice: the second overlaps the first, said at 开始
    form.locator("#ds-startsAt[aria-invalid=true]").wait_for()
    assert "时间重叠" in form.locator("#ds-startsAt-err").inner_text()

    filters = sup.locator("form.filters")
    filters.get_by_label("网格", exact=True).fill(unit)
    filters.get_by_label("日期").fill(tomorrow)
    filters.get_by_role("button", name="显示").click()
    name = picked.split(" · ")[0]
    row = sup.locator("tbody tr").filter(has_text=name).filter(has_text="23:59")  # the demo rosters them too
    row.wait_for()
    assert "20:00" in row.inner_text()
    assert "白班" in row.inner_text() and row.get_by_role("button", name="提前结束").count() == 1
    sup.screenshot(path=str(screenshots / "admin-duty-rostered.png"), full_page=True)

    leader = desk_page(chromium, problems, timezone_id="America/New_York")
    login(leader, live.url, "leader-duty", live.user("leader-duty", ["leader"], unit[:6]))
    leader.wait_for_selector("header.top")
    leader.goto(f"{live.url}/admin/duty")
    leader.locator("form.filters").get_by_label("网格", exact=True).fill(unit)
    leader.locator("form.filters").get_by_label("日期").fill(tomorrow)
    leader.get_by_role("button", name="显示").click()
    leader.locator("tbody tr").filter(has_text=name).filter(has_text="23:59").wait_for()
    assert leader.locator("form[aria-labelledby=new-shift]").count() == 0  # reads the roster, changes nothing
    assert leader.get_by_role("button", name="提前结束").count() == 0
    assert problems == []
