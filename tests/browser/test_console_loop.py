"""The console as its users work in it, in headless Chromium against a real server with the demo
city: a supervisor sees a new alarm arrive on 首页 without reloading, reviews and dispatches it
through the rendered forms (a 422 shown at its field first); the inspector, on a phone-sized
screen with its position set in the browser, signs for it, checks in, uploads a photo (made smaller
in the browser) and completes handling; the supervisor sees the photo full size on the case."""

from __future__ import annotations

import io
import random

import requests
from PIL import Image
from sqlalchemy import select

from tests.api.test_closed_loop_http import point_in_first_unit
from tests.browser.conftest import login
from workflows.grids import Grid
from workflows.people import Category

PHONE = {"width": 390, "height": 844}


def _big_photo() -> bytes:
    """A 3000 x 2000 JPEG of noise (about 3 MB, over the 2 MB the phone view aims for)."""
    rnd = random.Random(12)
    img = Image.frombytes("RGB", (3000, 2000), bytes(rnd.getrandbits(8) for _ in range(3000 * 2000 * 3)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def _names(live, unit: str) -> tuple[str, str]:
    """The names the console should show for the unit grid and air.exceedance."""
    with live.runtime.db.session() as s:
        grid = s.scalar(select(Grid.name).where(Grid.code == unit, Grid.valid_to.is_(None)))
        category = s.scalar(select(Category.name).where(Category.code == "air.exceedance"))
    assert grid and category and grid != unit
    return grid, category


def test_alarm_reviewed_dispatched_handled_on_a_phone_and_its_photo_seen(chromium, live, screenshots, tmp_path):
    unit, lon, lat = point_in_first_unit(live.runtime)
    grid_name, category_name = _names(live, unit)
    sup_password = live.user("sup-console", ["supervisor"], "3207")
    insp_password = live.user("insp-console", ["inspector"], unit)
    key = live.api_key()

    desk = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    sup = desk.new_page()
    problems: list[str] = []
    sup.on("pageerror", lambda e: problems.append(str(e)))
    login(sup, live.url, "sup-console", sup_password)
    sup.wait_for_selector("[data-testid=stream-mode]:has-text('实时推送中')", timeout=15_000)
    sup.evaluate("window.__sameDocument = true")  # gone if the page reloads
    sup.screenshot(path=str(screenshots / "01-home-supervisor.png"), full_page=True)

    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": key}, timeout=10, json={
        "tenant": "320700", "source": "monitoring", "externalId": "BROWSER-1", "sourceRef": "MN-B1",
        "category": "air.exceedance", "occurredAt": "2026-01-01T08:00:00+08:00", "lon": lon, "lat": lat,
        "description": "烟囱冒黑烟"})
    assert alarm.status_code == 201, alarm.text
    case_id = alarm.json()["id"]
    item = sup.locator(f"[data-list=alarms] li:has-text('{case_id}')")
    item.wait_for(timeout=15_000)
    item.locator(f".cat:has-text('{category_name}')").wait_for(timeout=15_000)  # names, not codes
    assert "air.exceedance" not in item.inner_text() and grid_name in item.inner_text()
    assert sup.evaluate("window.__sameDocument") is True
    assert item.locator(".badge.new").count() == 1
    sup.screenshot(path=str(screenshots / "02-home-new-alarm.png"), full_page=True)

    item.locator("a").click()  # one click to act
    sup.wait_for_selector("form.task-form")
    sup.get_by_role("button", name="提交").click()  # nothing chosen: the server's 422, at its field
    sup.wait_for_selector("fieldset[aria-invalid=true] .field-error")
    sup.screenshot(path=str(screenshots / "03-review-form-422.png"), full_page=True)
    sup.get_by_label("有效，派遣").check()
    sup.get_by_role("button", name="提交").click()
    sup.wait_for_url(f"**/cases/{case_id}")

    sup.get_by_role("link", name="首页", exact=True).click()
    waiting = sup.locator(f"[data-list=awaitingDispatch] li:has-text('{case_id}') a")
    waiting.wait_for(timeout=15_000)
    waiting.click()
    sup.wait_for_selector("form.task-form")
    sup.locator("input[name=inspector]").fill("insp-console")
    sup.screenshot(path=str(screenshots / "04-dispatch-form.png"), full_page=True)
    sup.get_by_role("button", name="提交").click()
    sup.wait_for_url(f"**/cases/{case_id}")

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                 geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"])
    insp = phone.new_page()
    insp.on("pageerror", lambda e: problems.append(str(e)))
    login(insp, live.url, "insp-console", insp_password)
    insp.wait_for_url("**/m")
    sign = insp.locator("a[data-task=sign_for]")
    sign.wait_for(timeout=15_000)
    insp.locator(f"a[data-task=sign_for] .meta:has-text('{grid_name}')").wait_for(timeout=15_000)
    insp.screenshot(path=str(screenshots / "05-phone-my-tasks.png"), full_page=True)
    sign.click()
    insp.get_by_role("button", name="签收").click()
    insp.wait_for_url("**/m")
    handle = insp.locator("a[data-task=handle]")
    handle.wait_for(timeout=15_000)
    handle.click()
    where = insp.locator("[data-testid=task-location]")  # where to go and what was reported
    where.wait_for(timeout=15_000)
    insp.locator(f"[data-testid=task-location]:has-text('{grid_name}')").wait_for(timeout=15_000)
    assert f"{lon:.5f}, {lat:.5f}" in where.inner_text()
    assert insp.locator("[data-testid=task-description]").inner_text() == "烟囱冒黑烟"
    insp.get_by_role("button", name="现场签到").click()
    insp.wait_for_selector(".evidence-list li:has-text('已签到')")
    photo = tmp_path / "site.jpg"
    photo.write_bytes(_big_photo())
    insp.set_input_files("#photo-input", str(photo))
    insp.wait_for_selector(".evidence-list li:has-text('照片已上传')", timeout=30_000)
    insp.locator("input[name=handle_result][value=done]").check()
    insp.locator("input[name=finding_kind][value=rectified]").check()
    insp.screenshot(path=str(screenshots / "06-phone-handle.png"), full_page=True)
    insp.get_by_role("button", name="提交").click()
    insp.wait_for_url("**/m")

    sup.goto(f"{live.url}/cases/{case_id}")
    thumb = sup.locator(".photos img")
    thumb.wait_for(timeout=15_000)
    assert sup.evaluate("document.querySelector('.photos img').naturalWidth") > 0
    sup.screenshot(path=str(screenshots / "07-case-detail.png"), full_page=True)
    sup.locator(f"dl.facts dd:has-text('{category_name}')").wait_for(timeout=15_000)
    facts = sup.locator("dl.facts").inner_text()
    assert grid_name in facts and "在线监测" in facts and "办理中" in facts
    assert "air.exceedance" not in facts and "monitoring" not in facts
    limits = sup.locator("ul.limits").inner_text()
    assert "派遣" in limits and "核查" in limits
    assert not any(key in limits for key in ("sign_for", "handle", "feedback", "verify", "review"))
    sup.locator(".photos button.thumb").first.click()
    full = sup.locator("dialog.photo-dialog img.full")
    full.wait_for()
    width = sup.evaluate("document.querySelector('dialog img.full').naturalWidth")
    assert 1000 < width <= 1920  # resized in the phone's browser, kept as sent
    sup.screenshot(path=str(screenshots / "08-photo-full-size.png"))
    sup.keyboard.press("Escape")
    timeline = sup.locator("ol.timeline").inner_text()
    assert "insp-console 完成「现场处置" in timeline and "sup-console 完成「甄别" in timeline

    sup.get_by_role("link", name="案卷", exact=True).click()
    sup.wait_for_selector("table.cases")
    row = sup.locator(f"table.cases tr:has-text('{case_id}')")
    row.locator(f"td:has-text('{category_name}')").wait_for(timeout=15_000)
    assert grid_name in row.inner_text() and "monitoring" not in row.inner_text()
    sup.screenshot(path=str(screenshots / "09-cases.png"), full_page=True)
    sup.get_by_label("语言").select_option("en")
    sup.wait_for_selector("h1:has-text('Cases')")
    sup.screenshot(path=str(screenshots / "10-cases-english.png"), full_page=True)
    assert problems == []
    desk.close()
    phone.close()


def _token(live, username: str, password: str) -> dict[str, str]:
    r = requests.post(f"{live.url}/api/v1/auth/token", json={"username": username, "password": password}, timeout=10)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _complete(live, headers, instance_id: str, element: str, variables: dict) -> str:
    items = requests.get(f"{live.url}/api/v1/task?processInstanceId={instance_id}", headers=headers,
                         timeout=10).json()["items"]
    (task,) = [t for t in items if t["taskDefinitionKey"] == element]
    r = requests.post(f"{live.url}/api/v1/task/{task['id']}/complete", json={"variables": variables},
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return task["id"]


def test_writes_made_offline_wait_and_are_replayed_once(chromium, live, screenshots, tmp_path):
    unit, lon, lat = point_in_first_unit(live.runtime)
    sup = _token(live, "sup-offline", live.user("sup-offline", ["supervisor"], "3207"))
    insp_password = live.user("insp-offline", ["inspector"], unit)
    insp = _token(live, "insp-offline", insp_password)
    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": live.api_key("offline-feed")}, timeout=10,
                          json={"tenant": "320700", "source": "monitoring", "externalId": "OFFLINE-1",
                                "category": "noise", "occurredAt": "2026-01-01T08:00:00+08:00",
                                "lon": lon, "lat": lat}).json()
    pid = alarm["processInstanceId"]
    _complete(live, sup, pid, "review", {"review_result": "valid"})
    _complete(live, sup, pid, "dispatch", {"inspector": "insp-offline"})
    _complete(live, insp, pid, "sign_for", {})
    items = requests.get(f"{live.url}/api/v1/task?processInstanceId={pid}", headers=insp, timeout=10).json()["items"]
    (handle,) = [t for t in items if t["taskDefinitionKey"] == "handle"]

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                 geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"])
    page = phone.new_page()
    login(page, live.url, "insp-offline", insp_password)
    page.wait_for_url("**/m")
    page.goto(f"{live.url}/m/tasks/{handle['id']}")
    page.get_by_role("button", name="现场签到").wait_for()
    phone.set_offline(True)
    page.get_by_role("button", name="现场签到").click()
    page.wait_for_selector(".note:has-text('离线')")
    photo = tmp_path / "offline.png"
    Image.new("RGB", (800, 600), (30, 120, 60)).save(photo)
    page.set_input_files("#photo-input", str(photo))
    page.wait_for_selector("[data-testid=queue]:has-text('2 项待同步')")
    page.screenshot(path=str(screenshots / "11-phone-offline-queue.png"), full_page=True)
    evidence_url = f"{live.url}/api/v1/task/{handle['id']}/evidence"
    assert requests.get(evidence_url, headers=insp, timeout=10).json() == []

    phone.set_offline(False)
    page.wait_for_selector("[data-testid=queue]", state="detached", timeout=30_000)
    kinds = sorted(e["kind"] for e in requests.get(evidence_url, headers=insp, timeout=10).json())
    assert kinds == ["checkin", "photo"]  # each once
    phone.close()
