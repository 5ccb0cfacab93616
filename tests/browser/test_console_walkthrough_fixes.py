"""Rough edges a new user met in the console, each checked in headless Chromium against a real server
with the demo city: a refused choice (radios) takes the keyboard focus like a refused text field; a
check-in refused outside the grid says why once, without "定位中…" left beside it; the patrol report's
back link names the page it goes to; and a user without a grid scope is not listed as seeing
everything (they see only what is assigned to them) unless they are an admin or a leader."""

from __future__ import annotations

import requests

from tests.api.test_closed_loop_http import point_in_first_unit
from tests.browser.conftest import login, wait_until
from tests.browser.live_server import PASSWORD

PHONE = {"width": 390, "height": 844}


def _token(live, username: str, password: str) -> dict[str, str]:
    r = requests.post(f"{live.url}/api/v1/auth/token", json={"username": username, "password": password}, timeout=10)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _task(live, headers, instance_id: str, element: str) -> dict:
    items = requests.get(f"{live.url}/api/v1/task?processInstanceId={instance_id}", headers=headers,
                         timeout=10).json()["items"]
    (task,) = [t for t in items if t["taskDefinitionKey"] == element]
    return task


def _complete(live, headers, instance_id: str, element: str, variables: dict) -> None:
    task = _task(live, headers, instance_id, element)
    r = requests.post(f"{live.url}/api/v1/task/{task['id']}/complete", json={"variables": variables},
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def test_refused_choice_focus_checkin_refusal_report_back_link(chromium, live, screenshots):
    unit, lon, lat = point_in_first_unit(live.runtime)
    sup_password = live.user("sup-walk", ["supervisor"], "3207")
    insp_password = live.user("insp-walk", ["inspector"], unit)
    sup = _token(live, "sup-walk", sup_password)
    insp = _token(live, "insp-walk", insp_password)
    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": live.api_key("walk-feed")}, timeout=10,
                          json={"tenant": "320700", "source": "monitoring", "externalId": "WALK-1",
                                "category": "noise", "occurredAt": "2026-01-01T08:00:00+08:00",
                                "lon": lon, "lat": lat})
    assert alarm.status_code == 201, alarm.text
    pid = alarm.json()["processInstanceId"]
    problems: list[str] = []

    # The supervisor submits the review with nothing chosen: the server's 422 lands on the radios,
    # and the keyboard focus on the first of them (the fieldset that is marked too cannot take it).
    desk = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = desk.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    login(page, live.url, "sup-walk", sup_password)
    page.wait_for_selector("[data-testid=stream-mode]")
    review = _task(live, sup, pid, "review")
    page.goto(f"{live.url}/tasks/{review['id']}")
    page.wait_for_selector("form.task-form")
    page.get_by_role("button", name="提交").click()
    page.wait_for_selector("fieldset[aria-invalid=true] .field-error")
    assert page.locator("fieldset[aria-invalid=true] .field-error").first.inner_text() == "必填"  # not "required"
    wait_until(page, "() => !!document.activeElement && document.activeElement.name === 'review_result'")
    assert page.evaluate("document.activeElement.type") == "radio"
    desk.close()

    _complete(live, sup, pid, "review", {"review_result": "valid"})
    _complete(live, sup, pid, "dispatch", {"inspector": "insp-walk"})
    _complete(live, insp, pid, "sign_for", {})
    handle = _task(live, insp, pid, "handle")

    # The inspector checks in about 0.1° east of the grid: refused, said once, and no "locating…".
    phone = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                 geolocation={"longitude": lon + 0.1, "latitude": lat}, permissions=["geolocation"])
    m = phone.new_page()
    m.on("pageerror", lambda e: problems.append(str(e)))
    login(m, live.url, "insp-walk", insp_password)
    m.wait_for_url("**/m")
    m.goto(f"{live.url}/m/tasks/{handle['id']}")
    m.get_by_role("button", name="现场签到").click()
    error = m.locator("p.error[role=alert]")
    error.wait_for(timeout=30_000)
    text = error.inner_text()
    assert "签到位置在网格" in text and "之外" in text and "outside grid" not in text, text  # in the reader's language
    assert text.count("签到位置在网格") == 1, text
    assert m.locator("p.note").count() == 0  # "定位中…" gone with the refusal
    assert requests.get(f"{live.url}/api/v1/task/{handle['id']}/evidence", headers=insp, timeout=10).json() == []
    m.screenshot(path=str(screenshots / "walk-checkin-refused.png"), full_page=True)

    # 上报问题's back link goes to 我的任务 and says so.
    m.goto(f"{live.url}/m/report")
    back = m.locator("section.report a[href='/m']")
    back.wait_for()
    assert back.inner_text() == "← 我的任务"
    back.click()
    m.wait_for_url("**/m")
    assert problems == []
    phone.close()


def test_a_user_without_scope_is_not_listed_as_seeing_everything(chromium, live):
    live.user("sup-noscope", ["supervisor"], None)
    live.user("leader-noscope", ["leader"], None)
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    login(page, live.url, "admin", PASSWORD)
    page.wait_for_selector("header")
    page.goto(f"{live.url}/admin/users")
    row = page.locator("tr[data-user='sup-noscope'] td").nth(3)
    row.wait_for()
    assert row.inner_text() == "无（只看分配给本人的）"
    assert page.locator("tr[data-user='leader-noscope'] td").nth(3).inner_text() == "全部"
    assert page.locator("tr[data-user='admin'] td").nth(3).inner_text() == "全部"
    assert "只看分配给本人的工作" in page.locator("form[aria-labelledby=new-user] .hint").first.inner_text() \
        or "只看分配给本人的工作" in page.locator("form[aria-labelledby=new-user]").inner_text()
    context.close()
