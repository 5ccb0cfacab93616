"""Who the caller is: what the console needs to choose its pages (roles) and its city (tenant)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import select

from workflows.grids import Grid

from .. import accounts
from ..auth import current, roles
from ..http import doc, runtime

bp = Blueprint("me", __name__, url_prefix="/api/v1")


@bp.get("/me")
@roles("admin", "supervisor", "inspector", "leader")
@doc("The calling user: name, roles, grid scope, the cities (tenants) they work in, the photo size limit and "
     "the map's base tiles (GRIDLOOP_MAP_TILES_URL; null: none)")
def me():
    p, rt = current(), runtime()
    user = accounts.find_user(rt.db, p.name)
    with rt.db.session() as s:
        cities = s.scalars(select(Grid.tenant).where(Grid.level == "city", Grid.valid_to.is_(None))
                           .distinct().order_by(Grid.tenant)).all()
    tenants = [t for t in cities if p.scope is None or p.scope.startswith(t[:4]) or t.startswith(p.scope)]
    settings = current_app.config["GRIDLOOP_SETTINGS"]
    return jsonify({"username": p.name, "displayName": user.display_name if user else None,
                    "roles": sorted(p.roles), "scope": p.scope, "tenants": tenants,
                    "maxPhotoBytes": settings.max_photo_bytes,
                    "map": {"tilesUrl": settings.map_tiles_url or None,
                            "tilesAttribution": settings.map_tiles_attribution or None,
                            "tilesSubdomains": settings.map_tiles_subdomains}})
