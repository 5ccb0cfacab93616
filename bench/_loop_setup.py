"""Setup and read-outs of `python -m bench.loop`: the database prepared as `gridloop run` does, the
template of the bulk closed cases, the server-side counts after the loops, and the photos."""

from __future__ import annotations

import io
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._loop_support import Unit, load_units

TENANT = "320700"
CATEGORY = "air.exceedance"
SUP = "bench-sup"


def _settings(url: str, redis_url: str, **kw):
    from api.settings import Settings

    return Settings(database_url=url, redis_url=redis_url, secret_key="bench", seed_demo=True, **kw)


def prepare(url: str, password: str, storage_dir: Path) -> tuple[str, list[Unit], list[tuple[str, bool]]]:
    """Migrate, seed and deploy as `gridloop run` does; create the supervisor and the system key."""
    from sqlalchemy import select

    from api import accounts
    from api.wiring import make_runtime, prepare_database
    from workflows.people import Category

    os.environ.setdefault("GRIDLOOP_ADMIN_PASSWORD", "bench-" + secrets.token_urlsafe(12))  # no generated one logged
    settings = _settings(url, "", storage_dir=str(storage_dir))  # the demo cases upload photos
    rt = make_runtime(settings)
    try:
        prepare_database(rt, settings)
        now = datetime.now(UTC)
        accounts.create_user(rt.db, now, username=SUP, password=password, roles=["supervisor"], scope="3207",
                             display_name="bench city supervisor")
        key = accounts.create_api_key(rt.db, now, name="bench-monitoring", roles=["system"])
        units = load_units(rt.db, TENANT)
        with rt.db.session() as s:
            rows = s.scalars(select(Category).where(Category.tenant == TENANT))
            categories = [(c.code, bool(c.urgent)) for c in rows]
    finally:
        rt.db.dispose()
    return key, units, categories


def template_instance(pg_url: str, case_id: str) -> tuple[str, int]:
    """The state and definition of the completed instance of `case_id` (a warm-up loop's case)."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT p.state, p.definition_id, p.status FROM env_case c JOIN process_instance p "
                           "ON p.id = c.instance_id WHERE c.id = %s", (case_id,)).fetchone()
    if row is None or row[2] != "completed":
        raise RuntimeError(f"the warm-up case {case_id} has no completed instance ({row and row[2]})")
    return row[0], row[1]


def server_side_counts(pg_url: str, case_ids: list[str]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        status = dict(conn.execute("SELECT status, count(*) FROM env_case WHERE id = ANY(%s) GROUP BY status",
                                   (case_ids,)).fetchall())
        process = dict(conn.execute("SELECT p.status, count(*) FROM env_case c JOIN process_instance p ON "
                                    "p.id = c.instance_id WHERE c.id = ANY(%s) GROUP BY p.status",
                                    (case_ids,)).fetchall())
        incidents = conn.execute("SELECT count(*) FROM incident WHERE status = 'open'").fetchone()[0]
        total = conn.execute("SELECT count(*) FROM env_case").fetchone()[0]
        state_bytes = conn.execute("SELECT avg(octet_length(p.state))::int FROM env_case c JOIN process_instance p "
                                   "ON p.id = c.instance_id WHERE c.id = ANY(%s)", (case_ids,)).fetchone()[0]
    return {"loop_case_status": status, "loop_process_status": process, "open_incidents": incidents,
            "env_case_rows": total, "state_bytes_completed": state_bytes}


def _pg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def noisy_jpeg(about_bytes: int) -> bytes:
    """A real JPEG (the API decodes every photo) of random pixels, about `about_bytes` long and
    different each time."""
    from PIL import Image

    side = max(8, int((about_bytes / 1.25) ** 0.5))  # ~1.25 bytes a pixel at quality 95
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "JPEG", quality=95)
    return out.getvalue()
