"""网格一张图 in headless Chromium against a real server with the demo city: a supervisor opens the
map, sees the grids as polygons and a new case as a marker, clicks it and reaches the case; the same
marker is reached with the keyboard and opened with Enter. Nothing is loaded from another origin
(no base tiles are configured, and Leaflet's CSS, icons and code come with the console)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from tests.browser.conftest import login
from workflows.grids import Grid, point_inside


def a_unit_without_demo_cases(rt) -> tuple[float, float]:
    """A point inside a basic unit away from the demo cases (which sit on every 37th unit), so that the
    new case's marker is not under another's."""
    with rt.db.session() as s:
        units = s.scalars(select(Grid.code).where(Grid.level == "unit", Grid.valid_to.is_(None))
                          .order_by(Grid.code)).all()
    return point_inside(rt.db, units[18])


def test_supervisor_finds_a_case_on_the_map_and_opens_it(chromium, live, screenshots):
    from playwright.sync_api import expect  # here: without playwright the test is skipped, not an import error

    lon, lat = a_unit_without_demo_cases(live.runtime)
    password = live.user("sup-map", ["supervisor"], "3207")
    alarm = requests.post(f"{live.url}/api/v1/alarms", headers={"X-API-Key": live.api_key("map-feed")}, timeout=10,
                          json={"tenant": "320700", "source": "monitoring", "externalId": "MAP-1",
                                "sourceRef": "MN-MAP", "category": "air.exceedance",
                                "occurredAt": "2026-01-01T08:00:00+08:00", "lon": lon, "lat": lat})
    assert alarm.status_code == 201, alarm.text
    case_id = alarm.json()["id"]

    desk = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = desk.new_page()
    problems: list[str] = []
    elsewhere: list[str] = []
    grid_calls: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    own = (live.url, "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(own) else elsewhere.append(r.url))
    page.on("request", lambda r: grid_calls.append(r.url) if "/api/v1/grids/geojson" in r.url else None)
    login(page, live.url, "sup-map", password)
    page.get_by_role("link", name="一张图", exact=True).click()
    page.wait_for_url("**/map")

    page.locator("path.grid").first.wait_for(timeout=15_000)
    marker = page.locator(f".leaflet-marker-icon.case[data-case='{case_id}']")
    marker.wait_for(timeout=15_000)
    assert page.locator("path.grid").count() > 1
    assert "stage-review" in marker.get_attribute("class")
    assert marker.get_attribute("aria-label").startswith(f"案卷 {case_id}")
    page.wait_for_selector("[data-testid=map-status]:has-text('显示')")
    asked = [parse_qs(urlsplit(u).query) for u in grid_calls if "bbox=" in u]
    assert asked and all(q["zoom"][0].isdigit() and len(q["bbox"][0].split(",")) == 4 for q in asked)
    page.screenshot(path=str(screenshots / "map.png"))

    marker.click()
    popup = page.locator(".leaflet-popup")
    popup.wait_for()
    assert case_id in popup.inner_text()
    expect(popup).to_have_css("opacity", "1")  # faded in
    page.wait_for_load_state("networkidle")  # opening it panned the map to show it whole
    page.screenshot(path=str(screenshots / "map-popup.png"))
    popup.get_by_role("link", name="查看案卷").click()
    page.wait_for_url(f"**/cases/{case_id}")
    page.wait_for_selector(f"h1#case-title:has-text('{case_id}')", timeout=15_000)

    page.go_back()  # and once more by keyboard: Tab reaches the marker, Enter opens it
    marker.wait_for(timeout=15_000)
    marker.focus()
    page.keyboard.press("Enter")
    page.locator(".leaflet-popup").wait_for()
    assert case_id in page.locator(".leaflet-popup").inner_text()
    page.wait_for_load_state("networkidle")  # the popup may have panned the map: its reload is done

    def zoom_of(url: str) -> int:
        return int(parse_qs(urlsplit(url).query)["zoom"][0])

    before = zoom_of(grid_calls[-1])
    with page.expect_request(lambda r: "/api/v1/grids/geojson" in r.url and zoom_of(r.url) == before + 1):
        page.locator("[data-testid=map]").focus()
        page.keyboard.press("Equal")  # '+' zooms in; the grids are asked for again, for the new view
    page.locator("path.grid").first.wait_for()
    assert problems == [] and elsewhere == []
    desk.close()
