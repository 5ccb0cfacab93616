"""The console is served by GridLoop itself: the page at `/` and at every path of the app's own
routes, hashed assets cached for a year, API paths still answering their JSON 404, and nothing
served names another origin (no CDN: it works with no internet)."""

import re

import pytest

from api.views.console import ASSETS

EXTERNAL = re.compile(rb"https?://[^\s\"'<>)]*")
ALLOWED = (b"http://www.w3.org/",)  # XML namespaces (SVG, XHTML, MathML) are names, not addresses


def _served_paths(client) -> list[str]:
    """Every file the console serves, found by following the page and the build's output folder."""
    page = client.get("/").get_data(as_text=True)
    linked = re.findall(r'(?:src|href)="(/[^"]+)"', page)
    shipped = [f"/{p.relative_to(ASSETS).as_posix()}" for p in ASSETS.rglob("*") if p.is_file()]
    return sorted({"/", *linked, *(p for p in shipped if p != "/index.html")})


def test_the_page_is_served_at_the_root_and_links_only_its_own_assets(client):
    r = client.get("/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert r.headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    html = r.get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and 'id="app"' in html
    scripts = re.findall(r'src="(/assets/app-[A-Z0-9]+\.js)"', html)
    assert len(scripts) == 1
    asset = client.get(scripts[0])
    assert asset.status_code == 200 and asset.mimetype in ("text/javascript", "application/javascript")
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_no_served_file_names_an_external_url(client):
    paths = _served_paths(client)
    assert len(paths) >= 8  # page, script, styles, service worker, manifest, three icons
    for path in paths:
        r = client.get(path)
        assert r.status_code == 200, path
        found = [u for u in EXTERNAL.findall(r.get_data()) if not u.startswith(ALLOWED)]
        assert found == [], f"{path} names {found}"


@pytest.mark.parametrize("path", ["/cases", "/cases/C20260101-abc", "/m/tasks/x", "/tasks/123?case=C1"])
def test_the_apps_own_routes_get_the_page(client, path):
    r = client.get(path)
    assert r.status_code == 200 and b'id="app"' in r.data


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api", "/api/v1/cases/x/nope", "/assets/app-NOPE.js",
                                  "/open311/v2/nothing"])
def test_api_and_asset_paths_keep_their_404(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert b'id="app"' not in r.data


def test_an_unknown_api_path_answers_the_json_error_shape(client):
    r = client.get("/api/v1/nothing-here")
    assert r.get_json()["error"]["code"] in ("not_found", "404")
    assert client.post("/api/v1/nothing-here", json={}).status_code == 404  # not a 405 from the page's route


def test_the_service_worker_and_manifest_are_revalidated(client):
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["Cache-Control"] == "no-cache"
    assert b"/assets/app-" in sw.data  # it caches the shell of this build
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json" and manifest.get_json()["start_url"] == "/m"


def test_me_tells_the_console_who_is_calling(users, rt):
    from workflows.demo_seed import seed_demo

    seed_demo(rt.db, rt.clock.now())
    me = users["sup"].get("/api/v1/me").get_json()
    assert me["username"] == "sup" and me["roles"] == ["supervisor"] and me["scope"] == "3207"
    assert me["tenants"] == ["320700"] and me["maxPhotoBytes"] > 0
    assert users["insp_other"].get("/api/v1/me").get_json()["tenants"] == ["320700"]
    assert users["admin"].get("/api/v1/me").get_json()["tenants"] == ["320700"]
    assert users["system"].get("/api/v1/me").status_code == 403
    assert users["anonymous"].get("/api/v1/me").status_code == 401


def test_the_map_library_ships_with_the_console_and_names_no_address(client):
    """Leaflet's code, CSS and marker images are in the console's own files (no CDN); its source names
    many addresses in comments (dropped by minifying) and one in code (the attribution link, turned into
    plain text by console/build.mjs), so the served bytes name none."""
    page = client.get("/").get_data(as_text=True)
    (script,) = re.findall(r'src="(/assets/app-[A-Z0-9]+\.js)"', page)
    (styles,) = re.findall(r'href="(/assets/app-[A-Z0-9]+\.css)"', page)
    js, css = client.get(script).get_data(), client.get(styles).get_data()
    assert b"leaflet-container" in js and b".leaflet-container" in css  # Leaflet is bundled here
    assert b"url(data:image/png;base64," in css  # its control and marker images, inline
    assert b"leafletjs.com" not in js + css and b"openstreetmap" not in js + css
    assert [u for u in EXTERNAL.findall(js + css) if not u.startswith(ALLOWED)] == []
