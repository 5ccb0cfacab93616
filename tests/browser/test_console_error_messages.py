"""The server's refusals read in the console's language, in headless Chromium against a real server:
a wrong password, a holiday calendar with a bad date (named by the textarea line it is on, not as
JSON with a 0-based index), in English the server's words come through
as sent, with the same 1-based lines. (A range refusal keeping its limit: test_console_admin's
time limit.)"""

from __future__ import annotations

import requests

from tests.browser.conftest import desk_page, login
from tests.browser.live_server import PASSWORD


def _refuse_a_holiday(page, url: str) -> str:
    """Save 2031's holidays with a bad date on the third line (after a blank one); the field's error."""
    page.goto(f"{url}/admin/calendar")
    page.locator("#cal-year").fill("2031")
    page.locator("form.filters button[type=submit]").click()
    page.locator("form.admin-form[data-year='2031']").wait_for()  # not the current year's form, still loading
    holidays = page.locator("#cal-holidays")
    page.locator("#cal-source").fill("国务院办公厅通知")
    holidays.fill("2031-01-01 元旦\n\n2031-13-40 错日\n2031-10-01 国庆")
    page.locator("form.admin-form button[type=submit]").click()
    page.wait_for_selector("#cal-holidays[aria-invalid=true]")
    return page.locator("#cal-holidays-err").inner_text()


def test_refusals_read_in_chinese_with_their_parameters(chromium, live, screenshots):
    # what the API says (and what the page must not show raw): index 1 of the list sent
    token = requests.post(f"{live.url}/api/v1/auth/token", json={"username": "admin", "password": PASSWORD},
                          timeout=10).json()["access_token"]
    raw = requests.put(f"{live.url}/api/v1/calendar/2031", headers={"Authorization": f"Bearer {token}"}, timeout=10,
                       json={"holidays": [{"date": "2031-01-01", "name": "x"}, {"date": "2031-13-40", "name": "y"}]})
    assert raw.status_code == 422
    assert raw.json()["error"]["fields"]["holidays"] == {"1": {"date": ["Not a valid date."]}}

    problems: list[str] = []
    page = desk_page(chromium, problems)

    login(page, live.url, "admin", "not-the-password")
    alert = page.locator("form.login [role=alert], form.login .error").first
    alert.wait_for()
    assert "用户名或密码错误" in alert.inner_text()
    assert "unknown user" not in alert.inner_text()

    login(page, live.url, "admin", PASSWORD)
    page.wait_for_selector("header.top")
    text = _refuse_a_holiday(page, live.url)
    assert "第 3 行" in text and "不是有效的日期" in text, text
    assert "{" not in text and "Not a valid" not in text, text
    page.screenshot(path=str(screenshots / "error-calendar-zh.png"), full_page=True)

    assert problems == []


def test_english_shows_the_server_words_with_lines_counted_from_one(chromium, live):
    problems: list[str] = []
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.add_init_script("localStorage.setItem('gridloop.lang', 'en')")
    page = context.new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(live.url + "/")
    page.locator("#username").fill("admin")
    page.locator("#password").fill(PASSWORD)
    page.locator("form.login button[type=submit]").click()
    page.wait_for_selector("header.top")
    text = _refuse_a_holiday(page, live.url)
    assert "line 3 (date): Not a valid date." in text, text
    assert problems == []
