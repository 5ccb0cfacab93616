"""The console is served by GridLoop itself: the page at `/` and at every path of the app's own
routes, hashed assets cached for a year, API paths still answering their JSON 404, and nothing
served names another origin (no CDN: it works with no internet)."""

import re

import pytest

from api.views.console import ASSETS

EXTERNAL = re.compile(rb"https?://[^\s\"'<>)]*")
ALLOWED = (b"http://www.w3.org/",)  # XML namespaces (SVG, XHTML, MathML) are names, not addresses
# The BPMN modeler (bpmn-js, in its own lazily loaded bundle) reads and writes BPMN XML: these are the
# namespaces of BPMN 2.0, its diagram interchange and bpmn.io's colour extension, exactly; names, not addresses.
BPMN_NAMESPACES = {
    b"http://www.omg.org/spec/BPMN/20100524/MODEL", b"http://www.omg.org/spec/BPMN/20100524/DI",
    b"http://www.omg.org/spec/DD/20100524/DC", b"http://www.omg.org/spec/DD/20100524/DI",
    b"http://www.omg.org/spec/BPMN/non-normative/color/1.0", b"http://bpmn.io/schema/bpmn/biocolor/1.0",
    b"http://bpmn.io/schema/bpmn",  # the targetNamespace of a new, empty diagram
}
# bpmn-js's licence: "The source code responsible for displaying the bpmn.io project watermark that links
# back to https://bpmn.io as part of rendered diagrams MUST NOT be removed or changed." So the modeler
# bundle keeps its three links to bpmn.io (the logo on the canvas and the notice it opens). They are links
# a user may click (a new tab), never fetched: nothing loads from bpmn.io, and the CSP allows only 'self'.
WATERMARK = re.compile(rb'<a href="https?://bpmn\.io" target="_blank"')
WATERMARK_LINKS = 3


def _external(path: str, body: bytes) -> list[bytes]:
    if path.startswith("/assets/modeler-") and path.endswith(".js"):
        assert len(WATERMARK.findall(body)) == WATERMARK_LINKS, "the bpmn.io watermark must be shipped unchanged"
        body = WATERMARK.sub(b"", body)
    return [u for u in EXTERNAL.findall(body)
            if not u.startswith(ALLOWED) and not (path.startswith("/assets/modeler-") and u in BPMN_NAMESPACES)]


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
        found = _external(path, r.get_data())
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
    """Leaflet's code, CSS and marker images are in the console's own files (no CDN), its code in the
    map page's chunk (loaded on first visit, not by 首页); its source names many addresses in comments
    (dropped by minifying) and one in code (the attribution link, turned into plain text by
    console/build.mjs), so the served bytes name none."""
    page = client.get("/").get_data(as_text=True)
    (script,) = re.findall(r'src="(/assets/app-[A-Z0-9]+\.js)"', page)
    (styles,) = re.findall(r'href="(/assets/app-[A-Z0-9]+\.css)"', page)
    (chunk,) = [f"/assets/{p.name}" for p in (ASSETS / "assets").glob("Map-*.js")]
    js, css, lazy = (client.get(path).get_data() for path in (script, styles, chunk))
    assert b"leaflet-container" in lazy and b"leaflet-container" not in js  # Leaflet: the map's chunk only
    assert b".leaflet-container" in css and b"url(data:image/png;base64," in css  # its CSS and images, inline
    served = js + css + lazy
    assert b"leafletjs.com" not in served and b"openstreetmap" not in served
    assert [u for u in EXTERNAL.findall(served) if not u.startswith(ALLOWED)] == []


def test_the_modeler_is_its_own_bundle_loaded_by_the_models_pages_only(client):
    """bpmn-js (about 0.6 MB) must not weigh on 首页's first load nor on the phone's offline shell."""
    page = client.get("/").get_data(as_text=True)
    (app,) = re.findall(r'src="(/assets/app-[A-Z0-9]+\.js)"', page)
    app_js = client.get(app).data
    modeler = sorted(p.name for p in (ASSETS / "assets").glob("modeler-*.js"))
    assert len(modeler) == 1
    assert b"bjs-powered-by" not in app_js and b"bpmn:definitions" not in app_js  # bpmn-js is not in the app
    lazy = b"".join(p.read_bytes() for p in (ASSETS / "assets").glob("*.js") if not p.name.startswith("modeler-"))
    assert f"/assets/{modeler[0]}".encode() in lazy  # the app's model pages know where to find it
    shell = client.get("/sw.js").data
    assert b"/assets/modeler-" not in shell  # nor is it cached for offline use
    assert b"modeler-" not in client.get("/").data
    # the model pages themselves are chunks loaded on first visit, outside the shell too
    pages = sorted(p.name for p in (ASSETS / "assets").glob("Model*.js"))
    assert [n.split("-")[0] for n in pages] == ["ModelEdit", "ModelHeat", "Models"]
    assert not any(n.encode() in shell or n.encode() in page.encode() for n in pages)
    assert all(f'import("./{n}")'.encode() in app_js for n in pages)  # imported when first visited


def test_echarts_is_in_the_dashboard_chunk_only_and_names_no_address(client):
    """The leaders' dashboard draws with ECharts (tree-shaken through echarts/core): its code is in the
    dashboard's chunk, loaded on first visit, and neither in the app script, 首页's page nor the shell."""
    page = client.get("/").get_data(as_text=True)
    (app,) = re.findall(r'src="(/assets/app-[A-Z0-9]+\.js)"', page)
    app_js = client.get(app).data
    (chunk,) = sorted(p.name for p in (ASSETS / "assets").glob("Dashboard-*.js"))
    dashboard = client.get(f"/assets/{chunk}").data
    assert b"echarts" in dashboard.lower() and b"echarts" not in app_js.lower()
    assert f'import("./{chunk}")'.encode() in app_js
    shell = client.get("/sw.js").data
    assert chunk.encode() not in shell and chunk.encode() not in page.encode()
    assert [u for u in EXTERNAL.findall(dashboard) if not u.startswith(ALLOWED)] == []
