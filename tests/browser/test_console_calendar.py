"""The holiday calendar while another year loads, in headless Chromium against a real server. The form of
the year shown before is not left to type into (the new year's days would replace what was typed when
they arrive, and a save would go to the new year: CI once saved 2031 with an empty source that way), and
an answer for a year no longer asked, arriving late, does not replace the year asked after it."""

from __future__ import annotations

from tests.browser.conftest import admin_at


def _ask(page, year: int) -> None:
    page.locator("#cal-year").fill(str(year))
    page.locator("form.filters button[type=submit]").click()


def _rendered(page) -> None:
    """Let the page finish what a response it just received sets off (promise callbacks, a render)."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_a_year_still_loading_shows_no_form_and_a_late_answer_is_dropped(chromium, live):
    from playwright.sync_api import expect

    problems: list[str] = []
    page = admin_at(chromium, live, "/admin/calendar", problems)
    page.locator("form.admin-form").wait_for()  # this year's

    held = []
    page.route("**/api/v1/calendar/2030", lambda route: held.append(route))
    with page.expect_request("**/api/v1/calendar/2030"):
        _ask(page, 2030)
    expect(page.locator("#cal-holidays")).to_have_count(0)  # no form while 2030 is on its way

    _ask(page, 2031)  # changed their mind; 2031 answers first
    page.locator("form.admin-form[data-year='2031']").wait_for()
    with page.expect_response("**/api/v1/calendar/2030") as late:
        held[0].continue_()
    late.value.finished()
    _rendered(page)
    assert page.locator("form.admin-form").get_attribute("data-year") == "2031"
    assert page.locator("#cal-year").input_value() == "2031"
    assert problems == []
