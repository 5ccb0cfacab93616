"""The console: the single-page app built from console/ (npm) into api/console_assets/, served at `/`
on the API's origin. Hashed assets are cached for a year; the page, the service worker and the
manifest are revalidated each time, so a new build is picked up at once. Any other path that is not
the API's is the app's own route (client-side routing) and gets the page; API paths keep their JSON 404."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, send_from_directory
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

from ..auth import public
from ..settings import map_tiles_origin

ASSETS = Path(__file__).resolve().parent.parent / "console_assets"
SHELL_FILES = ("sw.js", "manifest.webmanifest", "icon.svg", "icon-192.png", "icon-512.png")
CSP = ("default-src 'self'; img-src 'self' blob: data:{tiles}; connect-src 'self'; script-src 'self'; "
       "style-src 'self'; worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


class ConsolePath(BaseConverter):
    """A path the app routes itself: anything but the API's, the assets' and the operators' paths."""

    regex = r"(?!(?:api|open311|assets)(?:/|$))(?!(?:health|metrics)$)[^/].*?"
    part_isolating = False


bp = Blueprint("console", __name__)


@bp.record_once
def _converter(setup) -> None:
    setup.app.url_map.converters["console_path"] = ConsolePath


def _built(name: str):
    if not (ASSETS / "index.html").is_file():
        raise NotFound("the console is not built: cd console && npm ci && npm run build")
    return send_from_directory(ASSETS, name, max_age=0)


def _tile_source() -> str:
    """The map's base tiles are the one thing loaded from elsewhere, and only when configured."""
    template = current_app.config["GRIDLOOP_SETTINGS"].map_tiles_url
    return f" {map_tiles_origin(template)}" if template else ""


def _page():
    response = _built("index.html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = CSP.format(tiles=_tile_source())
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/")
@public
def index():
    return _page()


@bp.get("/<console_path:path>")
@public
def client_route(path: str):
    if path in SHELL_FILES:
        response = _built(path)
        response.headers["Cache-Control"] = "no-cache"
        if path == "manifest.webmanifest":
            response.mimetype = "application/manifest+json"
        return response
    return _page()


@bp.get("/assets/<path:name>")
@public
def asset(name: str):
    response = send_from_directory(ASSETS / "assets", name, max_age=365 * 86400)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"  # the name carries the hash
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
