"""督办 from the case page: a supervisor writes a note and urges an open case; the page says who was
told and who could not be (the demo's staff have no channel), an empty note cannot be sent, and the
timeline tells the note once the page is read again."""

from __future__ import annotations

import requests

from tests.api.test_closed_loop_http import point_in_first_unit
from tests.browser.conftest import login


def test_a_supervisor_urges_an_open_case_from_its_page(chromium, live, screenshots):
    _unit, lon, lat = point_in_first_unit(live.runtime)
    password = live.user("sup-urge", ["supervisor"], "3207")
    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": live.api_key("urge-feed")}, timeout=10,
                          json={"tenant": "320700", "source": "monitoring", "externalId": "URGE-1",
                                "category": "noise", "occurredAt": "2026-01-01T08:00:00+08:00",
                                "lon": lon, "lat": lat})
    assert alarm.status_code == 201, alarm.text
    case_id = alarm.json()["id"]
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    login(page, live.url, "sup-urge", password)
    page.get_by_role("link", name="首页", exact=True).wait_for()
    page.goto(f"{live.url}/cases/{case_id}")
    button = page.get_by_role("button", name="督办", exact=True)
    button.wait_for()
    assert button.is_disabled()  # no note, nothing to send
    page.get_by_label("督办意见").fill("今天内到现场")
    button.click()
    status = page.get_by_role("status").filter(has_text="已督办")
    status.wait_for()
    assert "未能通知" in status.inner_text()
    page.screenshot(path=str(screenshots / "case-urged.png"))
    page.reload()
    page.locator("ol.timeline li", has_text="今天内到现场").wait_for()
    context.close()
