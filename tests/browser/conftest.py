"""Browser tests drive Debian's Chromium through Playwright against a real GridLoop on a loopback
port. Without Chromium (or the playwright package) they are skipped, saying so — unless CI=true,
where that is a failure. Screenshots go to var/screenshots/ (named in the README)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.live_server import PASSWORD, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="package")
def chromium() -> Iterator[object]:
    reason = _unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests need Chromium in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason} (CI=true makes this a failure)")
    from playwright.sync_api import sync_playwright

    # Package scope, not session: Playwright's sync API keeps an asyncio loop running while it is
    # open, and later tests that call asyncio.run() (the HJ 212 ingest server) would fail.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with LiveServer(tmp_path_factory.mktemp("live")) as server:
        yield server


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def login(page, url: str, username: str, password: str) -> None:
    """Sign in on the console's login form, as a person would (the caller waits for what it expects next)."""
    page.goto(url + "/")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def desk_page(chromium, problems: list[str], timezone_id: str | None = None):
    """A desktop-sized page in Chinese; its uncaught script errors are appended to `problems`.
    `timezone_id`: the browser's zone (default: this machine's), which date and time inputs are in."""
    page = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN",
                                timezone_id=timezone_id).new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def admin_at(chromium, live: LiveServer, path: str, problems: list[str]):
    """A desk page signed in as the live server's admin, opened at `path`."""
    page = desk_page(chromium, problems)
    login(page, live.url, "admin", PASSWORD)
    page.wait_for_selector("header.top")
    page.goto(f"{live.url}{path}")
    return page


def wait_until(page, js: str, timeout_ms: int = 15_000) -> None:
    """Poll a JavaScript function (a string "() => …") until it returns true. Not
    page.wait_for_function: that compiles its predicate with eval in the page, which the console's
    Content-Security-Policy (script-src 'self') refuses; page.evaluate is not subject to it."""
    waited = 0
    while not page.evaluate(js):
        if waited >= timeout_ms:
            raise AssertionError(f"still false after {timeout_ms} ms: {js}")
        page.wait_for_timeout(100)
        waited += 100
