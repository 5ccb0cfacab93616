"""The whole closed loop in headless Chromium, each role in its own browser context, against a real
server pointed at a fake enforcement system: a supervisor sees a new alarm arrive on 首页 without
reloading, reviews and dispatches it; the inspector, on a phone-sized screen with its position set
in the browser, signs for it, checks in, uploads a photo and reports a violation; the case is pushed
to enforcement, whose signed callback (the real HMAC signature) brings the result back; the
supervisor sees the photo, verifies, and the case closes. A leader and an administrator log in and
see their pages. Then the inspector reports a problem found on patrol through the phone's
上报问题 page and the supervisor sees it arrive on 首页 and reviews it with its photo.
Screenshots: var/screenshots/loop-*.png."""

from __future__ import annotations

import json
import time

import pytest
import requests
from PIL import Image

from api.views.enforcement import callback_signature
from tests.api.test_closed_loop_http import point_in_first_unit
from tests.browser.conftest import login
from tests.browser.live_server import LiveServer
from tests.browser.test_console_loop import PHONE, _big_photo
from tests.integrations.fake_enforcement import FakeEnforcement

SECRET = "full-loop-enforcement-secret"


@pytest.fixture(scope="module")
def enforcement():
    with FakeEnforcement(SECRET) as fake:
        yield fake


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory, enforcement):
    with LiveServer(tmp_path_factory.mktemp("loop"), enforcement_url=enforcement.url,
                    enforcement_secret=SECRET) as server:
        yield server


def _callback(url: str, body: dict, callback_id: str) -> requests.Response:
    """The enforcement system's callback as it sends it: HMAC-SHA256 over "<id>.<timestamp>.<body>"."""
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    return requests.post(f"{url}/api/v1/enforcement/callback", data=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-Callback-Id": callback_id, "X-Timestamp": ts,
        "X-Signature": callback_signature(SECRET, callback_id, ts, raw)})


def _wait(predicate, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_every_role_and_the_whole_loop_then_a_patrol_report(chromium, loop_server, enforcement, screenshots,
                                                           tmp_path):
    live = loop_server
    unit, lon, lat = point_in_first_unit(live.runtime)
    passwords = {name: live.user(name, roles, scope) for name, roles, scope in (
        ("sup-loop", ["supervisor"], "3207"), ("insp-loop", ["inspector"], unit),
        ("leader-loop", ["leader"], None), ("admin-loop", ["admin"], None))}
    problems: list[str] = []

    def shot(page, name: str, full: bool = True) -> None:
        page.screenshot(path=str(screenshots / f"loop-{name}.png"), full_page=full)

    # -- the supervisor's 首页 receives a new alarm by push
    desk = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    sup = desk.new_page()
    sup.on("pageerror", lambda e: problems.append(str(e)))
    login(sup, live.url, "sup-loop", passwords["sup-loop"])
    sup.wait_for_selector("[data-testid=stream-mode]:has-text('实时推送中')", timeout=15_000)
    sup.evaluate("window.__sameDocument = true")  # gone if the page reloads
    shot(sup, "01-supervisor-home")
    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": live.api_key()}, timeout=10, json={
        "tenant": "320700", "source": "monitoring", "externalId": "LOOP-1", "sourceRef": "MN-LOOP",
        "category": "air.exceedance", "occurredAt": "2026-01-01T08:00:00+08:00", "lon": lon, "lat": lat})
    assert alarm.status_code == 201, alarm.text
    case_id = alarm.json()["id"]
    item = sup.locator(f"[data-list=alarms] li:has-text('{case_id}')")
    item.wait_for(timeout=15_000)
    assert sup.evaluate("window.__sameDocument") is True
    shot(sup, "02-new-alarm-pushed")

    # -- review and dispatch through the rendered forms
    item.locator("a").click()
    sup.wait_for_selector("form.task-form")
    sup.get_by_label("有效，派遣").check()
    shot(sup, "03-review")
    sup.get_by_role("button", name="提交").click()
    sup.wait_for_url(f"**/cases/{case_id}")
    sup.get_by_role("link", name="首页", exact=True).click()
    waiting = sup.locator(f"[data-list=awaitingDispatch] li:has-text('{case_id}') a")
    waiting.wait_for(timeout=15_000)
    waiting.click()
    sup.wait_for_selector("form.task-form")
    sup.locator("input[name=inspector]").fill("insp-loop")
    shot(sup, "04-dispatch")
    sup.get_by_role("button", name="提交").click()
    sup.wait_for_url(f"**/cases/{case_id}")

    # -- the inspector on a phone: sign for, check in, photo, a violation
    phone = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN",
                                 geolocation={"longitude": lon, "latitude": lat}, permissions=["geolocation"])
    insp = phone.new_page()
    insp.on("pageerror", lambda e: problems.append(str(e)))
    login(insp, live.url, "insp-loop", passwords["insp-loop"])
    insp.wait_for_url("**/m")
    sign = insp.locator("a[data-task=sign_for]")
    sign.wait_for(timeout=15_000)
    shot(insp, "05-phone-my-tasks")
    sign.click()
    insp.get_by_role("button", name="签收").wait_for()
    shot(insp, "06-phone-sign-for")
    insp.get_by_role("button", name="签收").click()
    insp.wait_for_url("**/m")
    handle = insp.locator("a[data-task=handle]")
    handle.wait_for(timeout=15_000)
    handle.click()
    insp.get_by_role("button", name="现场签到").click()
    insp.wait_for_selector(".evidence-list li:has-text('已签到')")
    photo = tmp_path / "site.jpg"
    photo.write_bytes(_big_photo())
    insp.set_input_files("#photo-input", str(photo))
    insp.wait_for_selector(".evidence-list li:has-text('照片已上传')", timeout=30_000)
    insp.locator("input[name=handle_result][value=done]").check()
    insp.locator("input[name=finding_kind][value=violation]").check()
    insp.locator("[name=findings]").fill("治污设施停运，废气直排")
    shot(insp, "07-phone-violation")
    insp.get_by_role("button", name="提交").click()
    insp.wait_for_url("**/m")

    # -- pushed to enforcement; its signed callback comes back
    _wait(lambda: any(r.get("case_id") == case_id for r in enforcement.received), "the enforcement push")
    forged = requests.post(f"{live.url}/api/v1/enforcement/callback", timeout=10, json={"caseId": case_id},
                           headers={"X-Callback-Id": "x", "X-Timestamp": str(int(time.time())), "X-Signature": "0"})
    assert forged.status_code == 401
    sup.goto(f"{live.url}/cases/{case_id}")
    sup.wait_for_selector(".photos img")
    shot(sup, "08-case-awaiting-enforcement")
    answer = _callback(live.url, {"caseId": case_id, "result": "penalized", "amount": 50000, "ticket": "ZF-LOOP",
                                  "decision": "责令改正，罚款五万元"}, "cb-loop-1")
    assert answer.status_code == 200 and answer.json()["status"] == "delivered", answer.text

    # -- the supervisor sees the photo and verifies; the case closes
    sup.get_by_role("link", name="首页", exact=True).click()
    verify = sup.locator(f"[data-list=awaitingVerification] li:has-text('{case_id}') a")
    verify.wait_for(timeout=15_000)
    verify.click()
    sup.wait_for_selector("form.task-form")
    sup.wait_for_selector(".photos li[data-task=handle] img")
    assert sup.evaluate("document.querySelector('.photos li[data-task=handle] img').naturalWidth") > 0
    sup.locator("input[name=verified][value=true]").check()
    shot(sup, "09-verify-with-photo")
    sup.get_by_role("button", name="提交").click()
    sup.wait_for_url(f"**/cases/{case_id}")
    sup.reload()
    facts = sup.locator("dl.facts")
    facts.wait_for()
    assert "已结案" in facts.inner_text() and "closed" not in facts.inner_text()  # the outcome code is not shown
    detail = requests.get(f"{live.url}/api/v1/cases/{case_id}", timeout=10, headers=_bearer(live, "sup-loop",
                                                                                            passwords)).json()
    assert (detail["status"], detail["outcome"], detail["processStatus"]) == ("closed", "closed", "completed")
    assert detail["assessment"]["violation"] is True
    shot(sup, "10-case-closed")

    # -- a leader and an administrator log in
    for name, landing in (("leader-loop", "11-leader"), ("admin-loop", "12-admin")):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        page = ctx.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        login(page, live.url, name, passwords[name])
        page.wait_for_selector("[data-testid=stream-mode]", timeout=15_000)
        shot(page, f"{landing}-home")
        if name == "admin-loop":
            page.get_by_role("link", name="系统管理", exact=True).click()
            page.wait_for_url("**/admin**")
            page.wait_for_load_state("networkidle")
            shot(page, f"{landing}-administration")
        ctx.close()

    # -- the inspector reports a problem found on patrol; the supervisor sees it arrive
    sup.get_by_role("link", name="首页", exact=True).click()
    sup.wait_for_selector("[data-testid=stream-mode]:has-text('实时推送中')", timeout=15_000)
    sup.evaluate("window.__sameDocument = true")
    insp.get_by_role("link", name="上报问题").click()
    insp.wait_for_url("**/m/report")
    insp.wait_for_selector("[data-testid=where]:has-text('已定位')", timeout=15_000)
    assert float(insp.get_by_label("经度").input_value()) == pytest.approx(lon, abs=1e-5)
    insp.get_by_label("问题类别").select_option("solid_waste")
    insp.get_by_label("问题描述").fill("巡查发现河道旁倾倒建筑垃圾")
    shot(insp, "13-phone-report-empty")
    insp.get_by_role("button", name="提交上报").click()  # no photo yet: refused in the page
    insp.wait_for_selector("#err-photos")
    report_photo = tmp_path / "patrol.png"
    Image.new("RGB", (1600, 1200), (120, 90, 40)).save(report_photo)
    insp.set_input_files("#report-photo-input", str(report_photo))
    insp.wait_for_selector(".report-photos li img")
    width = insp.evaluate("document.querySelector('.report-photos img').naturalWidth")
    assert width == 1600  # under the 1920-pixel side: kept, sent as a JPEG
    shot(insp, "14-phone-report-filled")
    insp.get_by_role("button", name="提交上报").click()
    insp.wait_for_selector(".note:has-text('已立案')", timeout=15_000)
    shot(insp, "15-phone-report-filed")
    patrol_id = insp.locator(".note a").get_attribute("href").rsplit("/", 1)[1]

    reported = sup.locator(f"[data-list=reported] li:has-text('{patrol_id}')")
    reported.wait_for(timeout=15_000)
    assert sup.evaluate("window.__sameDocument") is True
    shot(sup, "16-home-patrol-report")
    reported.locator("a").click()
    sup.wait_for_selector("form.task-form")
    sup.wait_for_selector(".photos li[data-task=report] img")
    assert sup.locator("[data-testid=case-description]").inner_text() == "巡查发现河道旁倾倒建筑垃圾"
    assert sup.evaluate("document.querySelector('.photos li[data-task=report] img').naturalWidth") == 1600
    shot(sup, "17-review-patrol-report")
    case = requests.get(f"{live.url}/api/v1/cases/{patrol_id}", timeout=10,
                        headers=_bearer(live, "sup-loop", passwords)).json()
    assert (case["source"], case["grid"], case["category"]) == ("patrol", unit, "solid_waste")
    assert problems == []
    desk.close()
    phone.close()


def _bearer(live: LiveServer, username: str, passwords: dict[str, str]) -> dict[str, str]:
    r = requests.post(f"{live.url}/api/v1/auth/token", json={"username": username, "password": passwords[username]},
                      timeout=10)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_a_patrol_report_without_a_position_or_a_connection_is_typed_in_queued_and_files_one_case(
        chromium, loop_server, screenshots, tmp_path):
    live = loop_server
    unit, lon, lat = point_in_first_unit(live.runtime)
    password = live.user("insp-offline-report", ["inspector"], unit)
    sup_headers = _bearer(live, "sup-offline-report",
                          {"sup-offline-report": live.user("sup-offline-report", ["supervisor"], "3207")})

    def patrol_cases() -> list[dict]:
        items = requests.get(f"{live.url}/api/v1/cases?tenant=320700&limit=100", headers=sup_headers,
                             timeout=10).json()["items"]
        return [c for c in items if c["source"] == "patrol" and c["description"] == "夜间施工噪声"]

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN")  # no position
    page = phone.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    login(page, live.url, "insp-offline-report", password)
    page.wait_for_url("**/m")
    page.goto(f"{live.url}/m/report")
    page.wait_for_selector("[data-testid=where]:has-text('无法定位')", timeout=30_000)
    page.get_by_label("经度").fill(str(lon + 1))  # a place outside the inspector's grid
    page.get_by_label("纬度").fill(str(lat))
    page.get_by_label("问题类别").select_option("noise")
    page.get_by_label("问题描述").fill("夜间施工噪声")
    photo = tmp_path / "noise.jpg"
    Image.new("RGB", (640, 480), (200, 200, 30)).save(photo)
    page.set_input_files("#report-photo-input", str(photo))
    page.wait_for_selector(".report-photos li img")
    page.get_by_role("button", name="提交上报").click()
    page.wait_for_selector("#err-lon:has-text('outside your grid')")  # the server's 422, at its field
    assert page.get_by_label("经度").get_attribute("aria-invalid") == "true"
    page.screenshot(path=str(screenshots / "loop-18-phone-report-outside-grid.png"), full_page=True)
    assert patrol_cases() == []

    page.get_by_label("经度").fill(str(lon))
    phone.set_offline(True)
    page.get_by_role("button", name="提交上报").click()
    page.wait_for_selector(".note:has-text('离线')")
    page.wait_for_selector("[data-testid=queue]:has-text('1 项待同步')")
    page.screenshot(path=str(screenshots / "loop-19-phone-report-queued.png"), full_page=True)
    assert patrol_cases() == []
    phone.set_offline(False)
    page.wait_for_selector("[data-testid=queue]", state="detached", timeout=30_000)
    (case,) = patrol_cases()
    assert case["grid"] == unit and case["description"] == "夜间施工噪声"
    assert problems == []
    phone.close()
