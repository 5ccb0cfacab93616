"""The process-model pages in headless Chromium against a real server with the bundled models and the
demo city: an administrator sees env_case with its version and instance counts, opens it in the
modeler (bpmn-js, loaded only for this page), changes the review reminder's timer in the properties
form, deploys version 2 and sees it listed as the latest; an edit the deploy refuses shows the problem
on the element it names, and nothing is deployed. Screenshots var/screenshots/models-*.png."""

from __future__ import annotations

import re

import requests

from tests.browser.conftest import login

DESK = {"width": 1400, "height": 900}


def _login(page, url: str, username: str, password: str) -> None:
    login(page, url, username, password)
    page.wait_for_selector("header.top")


def _token(url: str, username: str, password: str) -> dict[str, str]:
    r = requests.post(f"{url}/api/v1/auth/token", json={"username": username, "password": password}, timeout=10)
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _versions(url: str, headers: dict[str, str], key: str) -> list[dict]:
    r = requests.get(f"{url}/api/v1/process-definition?key={key}", headers=headers, timeout=10)
    return sorted(r.json(), key=lambda d: d["version"])


def _select(page, element_id: str) -> None:
    """Select an element the way a click on the canvas does, through the modeler the page opened."""
    page.evaluate("""(id) => {
        const m = document.querySelector('[data-testid=modeler]').bpmnModeler;
        m.get('selection').select(m.get('elementRegistry').get(id));
    }""", element_id)
    page.wait_for_selector(f"[data-testid=properties][data-element={element_id}]")


def test_admin_edits_a_timer_deploys_version_2_and_sees_a_refused_edit_on_its_element(chromium, live, screenshots):
    password = live.user("admin-models", ["admin"], None)
    api = _token(live.url, "admin-models", password)
    (v1,) = _versions(live.url, api, "env_case")

    ctx = chromium.new_context(viewport=DESK, locale="zh-CN")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    offsite: list[str] = []
    page.on("request", lambda r: offsite.append(r.url) if not r.url.startswith((live.url, "data:", "blob:")) else None)

    _login(page, live.url, "admin-models", password)
    assert not any("/assets/modeler-" in u for u in scripts)  # 首页 does not load the modeler
    page.get_by_role("link", name="流程模型").click()
    key = page.locator("section[data-key=env_case]")
    key.wait_for()
    row = key.locator("tr[data-version='1']")
    assert row.locator(".badge.latest").inner_text() == "当前版本"
    row.locator("[data-testid=counts]").wait_for()
    assert re.search(r"\d+", row.locator("[data-testid=counts]").inner_text())
    assert not any("/assets/modeler-" in u for u in scripts)  # nor does the list
    page.screenshot(path=str(screenshots / "models-list.png"), full_page=True)

    row.get_by_role("link", name="编辑").click()
    page.wait_for_url(f"**/models/{v1['id']}/edit")
    page.wait_for_selector("[data-testid=modeler] .djs-container [data-element-id=review_reminder]")
    assert any("/assets/modeler-" in u for u in scripts)  # loaded now, for this page
    assert page.locator(".bjs-powered-by").is_visible()  # bpmn-js's watermark, as its licence requires

    _select(page, "review_reminder")
    assert page.locator("#prop-timer-expr").input_value() == "review_remind_at"
    page.locator("#prop-timer-kind").select_option("timeDuration")
    page.locator("#prop-timer-expr").fill('"PT30M"')
    page.locator("#prop-timer-expr").press("Tab")  # change fires: the model is edited
    page.locator("#deploy-name").fill("review reminder after 30 minutes")
    page.screenshot(path=str(screenshots / "models-editor-timer.png"), full_page=True)
    page.get_by_role("button", name="部署为新版本").click()
    result = page.locator("[data-testid=deploy-result]")
    result.wait_for()
    assert result.inner_text() == "已部署为第 2 版"

    v1_after, v2 = _versions(live.url, api, "env_case")
    assert v2["version"] == 2 and v2["latest"] and not v1_after["latest"]
    xml = requests.get(f"{live.url}/api/v1/process-definition/{v2['id']}/xml", headers=api, timeout=10).text
    reminder = re.search(r'<bpmn:boundaryEvent id="review_reminder".*?</bpmn:boundaryEvent>', xml, re.S).group()
    assert "<bpmn:timeDuration>\"PT30M\"</bpmn:timeDuration>" in reminder and "timeDate" not in reminder
    assert xml.count("<bpmndi:BPMNShape") > 50 and "gridloop:form" in xml  # the diagram and our extensions kept

    page.get_by_role("link", name="返回流程模型").click()
    new_row = page.locator("section[data-key=env_case] tr[data-version='2']")
    new_row.wait_for()
    assert new_row.locator(".badge.latest").inner_text() == "当前版本"
    old_row = page.locator("section[data-key=env_case] tr[data-version='1']")
    assert old_row.locator(".badge.latest").count() == 0
    assert old_row.get_by_role("button", name="设为当前版本（回退）").count() == 1
    page.screenshot(path=str(screenshots / "models-v2-listed.png"), full_page=True)

    # A broken edit: the overdue timer names a variable no form gives; the deploy refuses it.
    new_row.get_by_role("link", name="编辑").click()
    page.wait_for_url(f"**/models/{v2['id']}/edit")
    page.wait_for_selector("[data-testid=modeler] [data-element-id=dispatch_overdue]")
    _select(page, "dispatch_overdue")
    page.locator("#prop-timer-expr").fill("dispatch_deadline_typo")
    page.locator("#prop-timer-expr").press("Tab")
    page.get_by_role("button", name="部署为新版本").click()
    page.wait_for_selector("[data-testid=problems]")
    assert page.locator("[data-testid=deploy-result]").inner_text().startswith("部署被拒绝")
    listed = page.locator("[data-testid=problems] li[data-element=dispatch_overdue]")
    assert listed.count() >= 1 and "dispatch_deadline_typo" in listed.first.inner_text()
    assert page.locator(".djs-element.gl-problem[data-element-id=dispatch_overdue]").count() == 1
    badge = page.locator(".gl-problem-badge[data-element=dispatch_overdue]")
    assert badge.is_visible() and "dispatch_deadline_typo" in badge.get_attribute("title")
    page.screenshot(path=str(screenshots / "models-refused-on-element.png"), full_page=True)
    assert [d["version"] for d in _versions(live.url, api, "env_case")] == [1, 2]  # nothing deployed

    # Migration: plan v1 → v2 and read each waiting element's verdict; execute when the plan allows.
    page.get_by_role("link", name="返回流程模型").click()
    section = page.locator("section[data-key=env_case]")
    section.locator("[data-testid=migration-env_case] summary").click()
    section.get_by_role("button", name="生成迁移计划").click()
    plan = section.locator(".plan")
    plan.wait_for()
    expected = requests.post(f"{live.url}/api/v1/migration/plan", headers=api, timeout=10, json={
        "sourceDefinitionId": v1["id"], "targetDefinitionId": v2["id"]}).json()
    assert plan.get_attribute("data-valid") == str(expected["valid"]).lower()
    assert plan.locator("tbody tr").count() == len(expected["elements"]) > 0
    for element in expected["elements"]:
        verdict = plan.locator("tbody tr", has=page.locator(f"th:text-is('{element['sourceElementId']}')"))
        assert verdict.locator("td").nth(2).inner_text() == str(element["waiting"])
    page.screenshot(path=str(screenshots / "models-migration-plan.png"), full_page=True)
    if expected["valid"] and expected["instances"]:
        plan.get_by_role("button", name="执行迁移").click()
        plan.get_by_text("已迁移").wait_for()
        stats = requests.get(f"{live.url}/api/v1/process-definition/{v2['id']}/statistics", headers=api, timeout=10)
        assert stats.json()["counts"]["running"] >= expected["instances"]

    # Roll back: v1 becomes the latest again, with a reason.
    section.locator("tr[data-version='1']").get_by_role("button", name="设为当前版本（回退）").click()
    page.get_by_label("原因").fill("v2's reminder comes too early; back to v1 while we look")
    page.get_by_role("button", name="确认").click()
    section.locator("tr[data-version='1'] .badge.latest").wait_for()
    assert section.locator("tr[data-version='2'] .badge.latest").count() == 0
    assert [d["latest"] for d in _versions(live.url, api, "env_case")] == [True, False]

    # A safe edit (a task renamed in the properties form) as version 3; v1's running cases move to it.
    section.locator("tr[data-version='1']").get_by_role("link", name="编辑").click()
    page.wait_for_selector("[data-testid=modeler] [data-element-id=verify]")
    _select(page, "verify")
    page.locator("#prop-name").fill("核查结案 Verify and close (renamed)")
    page.locator("#prop-name").press("Tab")
    page.get_by_role("button", name="部署为新版本").click()
    page.locator("[data-testid=deploy-result]:has-text('已部署为第 3 版')").wait_for()
    v3 = _versions(live.url, api, "env_case")[2]
    page.get_by_role("link", name="返回流程模型").click()
    section.locator("[data-testid=migration-env_case] summary").click()
    section.get_by_label("从版本").select_option(label="v1")
    section.get_by_label("到版本").select_option(label="v3")
    section.get_by_role("button", name="生成迁移计划").click()
    running = requests.get(f"{live.url}/api/v1/process-definition/{v1['id']}/statistics", headers=api,
                           timeout=10).json()["counts"]["running"]
    section.locator(".plan[data-valid=true]").wait_for()
    assert section.locator(".plan [role=status]").inner_text() == f"计划可执行：{running} 个实例"
    section.get_by_role("button", name="执行迁移").click()
    section.get_by_text(f"已迁移 {running} 个，失败 0 个，剩余 0 个").wait_for()
    page.screenshot(path=str(screenshots / "models-migrated.png"), full_page=True)
    moved = requests.get(f"{live.url}/api/v1/process-definition/{v3['id']}/statistics", headers=api, timeout=10)
    assert running > 0 and moved.json()["counts"]["running"] == running
    section.locator("tr[data-version='1'] [data-testid=counts]:has-text('运行中 0')").wait_for()  # the list reloaded

    page.goto(f"{live.url}/models/{v3['id']}/heatmap")  # the moved cases bring their task history
    page.wait_for_selector("[data-testid=heatmap] .djs-container")
    page.wait_for_selector(".heat-table tbody tr")
    page.screenshot(path=str(screenshots / "models-heatmap.png"), full_page=True)

    assert offsite == []
    assert [e for e in errors if "Content Security Policy" in e or "Refused" in e] == []
    assert [e for e in errors if "status of 400" not in e] == []  # the refused deploy's answer, logged by Chromium
    ctx.close()


def test_a_leader_reads_models_but_cannot_edit(chromium, live):
    password = live.user("leader-models", ["leader"], None)
    ctx = chromium.new_context(viewport=DESK, locale="zh-CN")
    page = ctx.new_page()
    _login(page, live.url, "leader-models", password)
    page.goto(f"{live.url}/models")
    page.locator("section[data-key=env_case]").wait_for()
    assert page.get_by_role("link", name="编辑").count() == 0
    assert page.get_by_role("button", name="停用").count() == 0
    page.goto(f"{live.url}/models/1/edit")
    page.wait_for_selector("main .error")
    assert page.locator("[data-testid=modeler]").count() == 0
    ctx.close()
