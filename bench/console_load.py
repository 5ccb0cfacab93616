"""First load of 首页 in headless Chromium on the demo data: bytes transferred and the time until
the lists show (from navigation start), cold (empty cache) and warm (the same browser again: hashed
assets from cache, the service worker installed). Logged in beforehand (the session is placed in
sessionStorage) so the login form is not measured. Prints JSON.

    .venv/bin/python -m bench.console_load [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import requests

from tests.browser.live_server import LiveServer

CHROMIUM = "/usr/bin/chromium"
READY = "[data-list=alarms] .count"


def _load(context, url: str) -> dict:
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    sizes: dict[str, int] = {}
    cdp.on("Network.dataReceived", lambda e: sizes.__setitem__(e["requestId"], sizes.get(e["requestId"], 0)
                                                               + e.get("encodedDataLength", 0)))
    cdp.on("Network.loadingFinished", lambda e: sizes.__setitem__(e["requestId"], e["encodedDataLength"]))
    page.goto(url + "/")
    page.wait_for_selector(READY, timeout=30_000)
    ms = page.evaluate("performance.now()")
    shown = page.evaluate("document.querySelectorAll('.lists li.item').length")
    page.wait_for_timeout(300)  # let the last responses' byte counts arrive
    out = {"ms_until_lists": round(ms, 1), "bytes": sum(sizes.values()), "requests": len(sizes), "items_shown": shown}
    page.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, LiveServer(Path(tmp)) as live, sync_playwright() as pw:
        password = live.user("bench-sup", ["supervisor"], "3207")
        tokens = requests.post(f"{live.url}/api/v1/auth/token", timeout=10,
                               json={"username": "bench-sup", "password": password}).json()
        session = json.dumps({"access": tokens["access_token"], "refresh": tokens["refresh_token"],
                              "username": "bench-sup", "roles": tokens["roles"]})
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        cold, warm = [], []
        for _ in range(args.runs):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(f"sessionStorage.setItem('gridloop.session', {json.dumps(session)})")
            cold.append(_load(context, live.url))
            warm.append(_load(context, live.url))
            context.close()
        browser.close()
        assets = sorted(p.name for p in (Path(__file__).resolve().parents[1] / "api" / "console_assets" / "assets")
                        .iterdir())

    def summary(runs: list[dict]) -> dict:
        return {"ms_until_lists_median": statistics.median(r["ms_until_lists"] for r in runs),
                "ms_until_lists_max": max(r["ms_until_lists"] for r in runs),
                "bytes_median": statistics.median(r["bytes"] for r in runs),
                "requests": runs[0]["requests"], "items_shown": runs[0]["items_shown"]}

    print(json.dumps({"bench": "console_load", "database": "sqlite (demo city 320700 with its demo cases)",
                      "runs": args.runs, "cold": summary(cold), "warm": summary(warm), "assets": assets}, indent=2))


if __name__ == "__main__":
    main()
