"""The Flask application factory. Nothing happens at import time; tests build their own app."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, request
from werkzeug.exceptions import BadRequest

from engine.runtime import Runtime
from workflows.grids import GridIndexCache
from workflows.working_time import CalendarService

from .compression import register_compression
from .errors import register_error_handlers
from .http import RowIdConverter
from .settings import Settings

log = logging.getLogger("gridloop.http")


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None, redis=None,
               calendar: CalendarService | None = None) -> Flask:
    """The API over `runtime` (built from `settings` when not given; tests pass their own)."""
    from .views import (
        assessment,
        cases,
        categories,
        decisions,
        definitions,
        deployments,
        duty,
        enforcement,
        evidence,
        grids,
        home,
        instances,
        messages,
        migrations,
        notifications,
        open311,
        operations,
        petitions,
        staff,
        system,
        tasks,
        users,
    )
    from .views import calendar as calendar_views
    from .views import readings as reading_views
    from .views import sources as source_views
    from .views import warnings as warning_views
    from .wiring import make_database, make_runtime

    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(SECRET_KEY=settings.secret_key, ACCESS_TOKEN_TTL=settings.access_token_ttl_s,
                      REFRESH_TOKEN_TTL=settings.refresh_token_ttl_s,
                      MAX_CONTENT_LENGTH=settings.max_request_bytes, GRIDLOOP_SETTINGS=settings,
                      GRIDLOOP_REDIS=redis)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    if runtime is None:
        db = make_database(settings)
        calendar = calendar or CalendarService(db)
        runtime = make_runtime(settings, db=db, calendar=calendar)
    app.extensions["gridloop"] = runtime
    app.extensions["gridloop.calendar"] = calendar or CalendarService(runtime.db)
    app.extensions["gridloop.grids"] = GridIndexCache(runtime.db)
    for module in (system, definitions, instances, tasks, messages, operations, calendar_views, grids, cases,
                   enforcement, home, evidence, notifications, decisions, deployments, migrations, assessment):
        app.register_blueprint(module.bp)
    app.register_blueprint(warning_views.bp)
    app.register_blueprint(reading_views.bp)
    app.register_blueprint(source_views.bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(petitions.bp)
    app.register_blueprint(duty.bp)
    app.register_blueprint(categories.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(staff.bp)
    from .views import case_photos, patrol, patrol_plans

    app.register_blueprint(patrol.bp)
    app.register_blueprint(patrol_plans.bp)
    app.register_blueprint(case_photos.bp)
    from .views import statistics

    app.register_blueprint(statistics.bp)
    from .views import console, home_stream, map_layers, me, photo_files

    for module in (home_stream, photo_files, me, map_layers, console):  # the browser console and what it needs
        app.register_blueprint(module.bp)
    register_error_handlers(app)
    register_compression(app)
    _log_requests(app)
    return app


def _log_requests(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
            raise BadRequest("NUL characters are not allowed in the URL")

    @app.after_request
    def _done(response):
        principal = getattr(g, "principal", None)
        log.info("request", extra={
            "method": request.method, "path": request.path, "status": response.status_code,
            "ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
            "principal": principal.name if principal else None})
        return response
