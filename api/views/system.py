"""Login, health, metrics, and the OpenAPI document with its docs page."""

from __future__ import annotations

import hmac
import html
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, select, text

from engine import definitions, timers
from engine.models import HumanTask, Incident, Message, OutboxEntry, ProcessInstance
from engine.scheduler import HEARTBEAT_KEY, STANDBY_FIRED_KEY
from notifications.models import STATUSES as NOTIFICATION_STATUSES
from notifications.models import Notification
from notifications.queueing import open_incidents as open_notice_incidents
from workflows.working_time import CHINA

from .. import accounts, schemas
from ..auth import current, issue_tokens, public, roles, token_claims
from ..errors import error_body
from ..http import answer, doc, json_body, optional_json_body, runtime
from ..openapi import build_spec
from ..ratelimit import FixedWindowLimiter, Rate, client_ip, shared_redis
from ..user_admin import logout_user

bp = Blueprint("system", __name__)


@bp.post("/api/v1/auth/token")
@public
@doc("Exchange username and password for a bearer token", body=schemas.LoginSchema,
     response=schemas.TokenSchema)
def login():
    args = json_body(schemas.LoginSchema())
    limits, ip = current_app.extensions[LOGIN_LIMITS], client_ip(request, _settings().proxy_hops)
    keys = [(limiter, key) for limiter, key in zip(limits, (args["username"].lower(), ip), strict=True) if limiter]
    wait = max((limiter.blocked(key) for limiter, key in keys), default=0)
    if wait:  # too many failures: refused before the password is even checked
        body, status = error_body(429, "too_many_attempts", f"too many failed logins; retry in {wait} s")
        return body, status, {"Retry-After": str(wait)}
    user = accounts.authenticate(runtime().db, args["username"], args["password"])
    if user is None:
        for limiter, key in keys:
            limiter.hit(key)
        return error_body(401, "invalid_credentials", "unknown user or wrong password")
    return answer(schemas.TokenSchema(), issue_tokens(user))


LOGIN_LIMITS = "gridloop.login_limits"


@bp.record_once
def _login_limits(state) -> None:
    """Failed logins are counted per username and per client address (GRIDLOOP_LOGIN_RATE_*)."""
    app, settings = state.app, state.app.config["GRIDLOOP_SETTINGS"]
    redis, rt = shared_redis(app), app.extensions["gridloop"]

    def limiter(text: str, name: str) -> FixedWindowLimiter | None:
        rate = Rate.parse(text)
        return None if rate is None else FixedWindowLimiter(rate, redis=redis, prefix=f"gridloop:login:{name}:",
                                           clock=lambda: rt.clock.now().timestamp())

    app.extensions[LOGIN_LIMITS] = (limiter(settings.login_rate_user, "user"), limiter(settings.login_rate_ip, "ip"))


def _settings():
    return current_app.config["GRIDLOOP_SETTINGS"]


@bp.post("/api/v1/auth/refresh")
@public
@doc("Exchange a refresh token for a new access and refresh token", body=schemas.RefreshSchema,
     response=schemas.TokenSchema)
def refresh():
    args = json_body(schemas.RefreshSchema())
    user, session = token_claims(args["refresh_token"], refresh=True)
    return answer(schemas.TokenSchema(), issue_tokens(user, session))


@bp.post("/api/v1/auth/logout")
@roles("admin", "supervisor", "inspector", "leader")
@doc("End the caller's login session: its access and refresh tokens stop working at once "
     "(`allSessions: true`: every session of the caller, on every device)", body=schemas.LogoutSchema,
     response=schemas.LoggedOutSchema)
def logout():
    args = optional_json_body(schemas.LogoutSchema())
    p = current()
    ended = logout_user(runtime(), p.name, None if args["all_sessions"] else p.session)
    return answer(schemas.LoggedOutSchema(), {"sessions_ended": ended})


def _counts() -> dict[str, int]:
    rt = runtime()
    with rt.db.session() as s:
        out = {f"instances_{status}": n for status, n in s.execute(
            select(ProcessInstance.status, func.count()).group_by(ProcessInstance.status))}
        out["tasks_open"] = s.scalar(select(func.count()).where(HumanTask.status == "open")) or 0
        out["incidents_open"] = s.scalar(select(func.count()).where(Incident.status == "open")) or 0
        out["outbox_pending"] = s.scalar(select(func.count()).where(OutboxEntry.relayed_at.is_(None))) or 0
        stale = rt.clock.now() - rt.job_lease
        out["outbox_stuck"] = s.scalar(select(func.count()).where(
            OutboxEntry.done_at.is_(None), OutboxEntry.relayed_at < stale)) or 0
        out["messages_buffered"] = s.scalar(select(func.count()).where(Message.status == "buffered")) or 0
        out["notification_incidents_open"] = _notice_incidents(s)
    return out


SCHEDULER_LATE_S = 120  # a due timer or outbox row waiting this long means no scheduler is working


def _scheduler_lag() -> dict[str, float]:
    """Seconds past due of the oldest timer not fired and of the oldest outbox row not relayed (0 when
    none). Read from the database, so every process tells the same truth, also when no scheduler is
    alive to report on itself."""
    rt = runtime()
    now = rt.clock.now()
    with rt.db.session() as s:
        timer = s.scalar(select(func.min(ProcessInstance.next_wakeup_at)).where(
            ProcessInstance.status == "running", ProcessInstance.next_wakeup_at < now))
        job = s.scalar(select(func.min(OutboxEntry.available_at)).where(
            OutboxEntry.relayed_at.is_(None), OutboxEntry.available_at <= now))
    return {name: max((now - due).total_seconds(), 0.0) if due is not None else 0.0
            for name, due in (("scheduler_oldest_due_timer_seconds", timer), ("outbox_oldest_pending_seconds", job))}


def _scheduler_figure(key: str, unset: float | None = None) -> float | None:
    """A figure `gridloop scheduler` publishes in Redis; `unset` before it did, None without Redis."""
    redis_conn = current_app.config.get("GRIDLOOP_REDIS")
    if redis_conn is None:
        return None
    try:
        value = redis_conn.get(key)
    except Exception:  # Redis down is reported by its own check
        return None
    return unset if value is None else float(value)


def _last_tick_age() -> float | None:
    """Seconds since the active scheduler last completed a tick, as it told Redis."""
    at = _scheduler_figure(HEARTBEAT_KEY)
    return None if at is None else max(runtime().clock.now().timestamp() - at, 0.0)


def _scheduler_report() -> tuple[dict[str, float | None], list[str]]:
    """The scheduler's lag as /health shows it, and why it is late (no reason: it keeps up)."""
    lag, tick_age = _scheduler_lag(), _last_tick_age()
    figures = {"oldest_due_timer_s": round(lag["scheduler_oldest_due_timer_seconds"], 1),
               "outbox_oldest_pending_s": round(lag["outbox_oldest_pending_seconds"], 1),
               "last_tick_age_s": None if tick_age is None else round(tick_age, 1)}
    return figures, _scheduler_late(lag, tick_age)


def _scheduler_late(lag: dict[str, float], tick_age: float | None) -> list[str]:
    """Why /health is degraded for the scheduler, in words an operator acts on."""
    reasons = []
    if lag["scheduler_oldest_due_timer_seconds"] > SCHEDULER_LATE_S:
        reasons.append(f"a timer is {lag['scheduler_oldest_due_timer_seconds']:.0f} s overdue (over "
                       f"{SCHEDULER_LATE_S} s): no scheduler is firing timers; is `gridloop scheduler` running?")
    if lag["outbox_oldest_pending_seconds"] > SCHEDULER_LATE_S:
        reasons.append(f"a job has waited {lag['outbox_oldest_pending_seconds']:.0f} s to be relayed (over "
                       f"{SCHEDULER_LATE_S} s): no scheduler is relaying the outbox, or the job queue refuses it")
    if tick_age is not None and tick_age > SCHEDULER_LATE_S:
        reasons.append(f"the active scheduler last completed a tick {tick_age:.0f} s ago (over {SCHEDULER_LATE_S} s): "
                       "it is stalled or gone")
    return reasons


def _notice_incidents(s) -> int:
    """Open incidents of notices that had nobody to reach, failed on every channel or ran out of
    retries (job incidents, also counted in incidents_open)."""
    return open_notice_incidents(s)


def _notification_counts(s) -> dict[str, int]:
    """Notifications by status, every status named (0 when there are none)."""
    found = dict(s.execute(select(Notification.status, func.count()).group_by(Notification.status)).all())
    return {status: found.get(status, 0) for status in NOTIFICATION_STATUSES}


@bp.get("/health")
@public
@doc("Liveness and dependencies: database, Redis (when configured), timer backlog; notifications by status")
def health():
    rt = runtime()
    checks: dict[str, object] = {}
    status = 200
    try:
        with rt.db.session() as s:
            s.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this endpoint is for load balancers
        checks["database"], status = f"error: {type(exc).__name__}", 503
    redis_conn = current_app.config.get("GRIDLOOP_REDIS")
    if redis_conn is not None:
        try:
            redis_conn.ping()
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"], status = f"error: {type(exc).__name__}", 503
    else:
        checks["jobs"] = "in-process"
    warnings: list[str] = []
    late: list[str] = []
    scheduler: dict[str, float | None] | None = None
    if status == 200:
        due = timers.earliest_wakeup(rt)
        checks["overdue_timers"] = bool(due and due < rt.clock.now())
        scheduler, late = _scheduler_report()
        checks["scheduler"] = "late" if late else "ok"
        warnings = current_app.extensions["gridloop.calendar"].warnings(rt.clock.now().astimezone(CHINA).date())
    body: dict[str, Any] = {"status": "ok" if status == 200 else "degraded", "checks": checks, "warnings": warnings}
    if scheduler is not None:
        body["scheduler"] = scheduler
    if late:  # served, but timers and jobs wait: degraded (200; only a dead dependency is 503)
        body["status"] = "degraded"
        body.setdefault("reasons", []).extend(late)
    if status == 200:
        with rt.db.session() as s:
            failed = _notice_incidents(s)
            body["notifications"] = {"by_status": _notification_counts(s), "incidents_open": failed}
        if failed:  # served, but people are not being told: degraded (200; only a dead dependency is 503)
            body["status"] = "degraded"
            body.setdefault("reasons", []).append(
                f"{failed} notice{'s' if failed > 1 else ''} could not be sent (open notification incidents: "
                "GET /api/v1/incident)")
    return jsonify(body), status


@bp.get("/metrics")
@public
@doc("Prometheus metrics", content_type="text/plain")
def metrics():
    token = _settings().metrics_token
    if token and not hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return error_body(401, "unauthenticated", "metrics need the metrics token (GRIDLOOP_METRICS_TOKEN)")
    lines = []
    for name, value in sorted(_counts().items()):
        metric = f"gridloop_{name}"
        lines += [f"# TYPE {metric} gauge", f"{metric} {value}"]
    for name, seconds in _scheduler_lag().items():
        lines += [f"# TYPE gridloop_{name} gauge", f"gridloop_{name} {seconds:.3f}"]
    tick_age = _last_tick_age()
    if tick_age is not None:
        lines += ["# TYPE gridloop_scheduler_last_tick_age_seconds gauge",
                  f"gridloop_scheduler_last_tick_age_seconds {tick_age:.3f}"]
    helped = _scheduler_figure(STANDBY_FIRED_KEY, unset=0)
    if helped is not None:
        lines += ["# HELP gridloop_scheduler_standby_fired_total Timers a standby scheduler fired because the "
                  "active one was late with them",
                  "# TYPE gridloop_scheduler_standby_fired_total counter",
                  f"gridloop_scheduler_standby_fired_total {helped:.0f}"]
    with runtime().db.session() as s:
        by_status = _notification_counts(s)
    lines.append("# TYPE gridloop_notifications gauge")
    lines += [f'gridloop_notifications{{status="{status}"}} {n}' for status, n in by_status.items()]
    lines += _process_error_lines()
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


def _process_error_lines() -> list[str]:
    """Changes that failed in a model (a script's or condition's error, a sandbox budget), per key and
    version: stored on the definition, so every web process reports the same count."""
    lines = ["# HELP gridloop_process_errors_total Changes refused because the process model failed",
             "# TYPE gridloop_process_errors_total counter"]
    for key, version, n in definitions.process_error_counts(runtime()):
        lines.append(f'gridloop_process_errors_total{{key="{key}",version="{version}"}} {n}')
    return lines


@bp.get("/api/v1/openapi.json")
@public
@doc("This document")
def openapi_json():
    return jsonify(build_spec(current_app))


@bp.get("/api/v1/docs")
@public
@doc("A readable list of the endpoints", content_type="text/html")
def docs_page():
    spec = build_spec(current_app)
    rows = []
    for path, ops in sorted(spec["paths"].items()):
        for method, op in ops.items():
            roles_ = ", ".join(op.get("x-roles", [])) or "public"
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td><td>{html.escape(roles_)}</td></tr>")
    page_html = (
        "<!doctype html><meta charset=utf-8><title>GridLoop API</title>"
        "<style>body{font:14px system-ui;margin:2em}td{padding:4px 10px;border-bottom:1px solid #ddd}</style>"
        f"<h1>GridLoop API {html.escape(spec['info']['version'])}</h1>"
        "<p>Machine-readable: <a href='/api/v1/openapi.json'>openapi.json</a></p>"
        "<table><tr><th>method</th><th>path</th><th>what</th><th>roles</th></tr>" + "".join(rows) + "</table>"
    )
    return Response(page_html, mimetype="text/html")
