"""Open311 GeoReport v2 at /open311/v2, in JSON and XML: services (the tenant's citizen-reportable
categories), posting a service request (a citizen's report → a case, or an occurrence of the open
case nearby) and its status. Reading is public, posting needs an API key with the "system" role;
every endpoint is rate limited per client IP, posting also per API key. Errors are Open311's
`[{code, description}]`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Blueprint, Response, current_app, g, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from engine.errors import EngineError, NotFound
from integrations import open311
from integrations.open311 import Open311Error
from workflows import reports
from workflows.cases import UnknownCategory
from workflows.evidence import EvidenceError

from .. import accounts
from ..auth import AuthError, Principal, public, user_from_token
from ..http import http_error_message, photo_request_limit, runtime
from ..idempotency import HEADER as IDEMPOTENCY_HEADER
from ..idempotency import idempotent
from ..ratelimit import FixedWindowLimiter, Rate, client_ip, shared_redis
from ..settings import Settings

log = logging.getLogger(__name__)

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
EXTENSION = "gridloop.open311"
REPORTER_ROLES = ("reporter", "system")  # a citizen app's key: `create-api-key NAME --role reporter`
MAX_SPAN = timedelta(days=90)  # the spec's query limit: 90 days or 1000 requests
MAX_RESULTS = 1000
MAX_IDS = 200
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)  # query date bounds
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Open311Config:
    """GRIDLOOP_OPEN311_* and GRIDLOOP_REPORT_DUPLICATE_* (README, "Citizens' reports"), read by Settings."""

    services: tuple[str, ...] = ("citizen.report", "noise", "solid_waste")
    duplicates: reports.DuplicatePolicy = field(default_factory=reports.DuplicatePolicy)
    per_ip: FixedWindowLimiter | None = None
    per_key: FixedWindowLimiter | None = None
    proxy_hops: int = 0  # trusted reverse proxies in front: the client is that far from the end of X-Forwarded-For

    @classmethod
    def from_settings(cls, settings: Settings, *, redis=None,
                      clock: Callable[[], float] | None = None) -> Open311Config:
        def limiter(name: str, text: str) -> FixedWindowLimiter | None:
            rate = Rate.parse(text)
            if rate is None:
                return None
            return FixedWindowLimiter(rate, redis=redis, prefix=f"gridloop:open311:{name}:",
                                      **({"clock": clock} if clock else {}))

        return cls(services=tuple(s.strip() for s in settings.open311_services.split(",") if s.strip()),
                   duplicates=reports.DuplicatePolicy(
                       radius_m=settings.report_duplicate_radius_m,
                       window=timedelta(hours=settings.report_duplicate_window_h)),
                   per_ip=limiter("ip", settings.open311_rate_ip), per_key=limiter("key", settings.open311_rate_key),
                   proxy_hops=settings.open311_proxy_hops)


@bp.record_once
def _configure(state) -> None:
    app = state.app
    redis = shared_redis(app)
    rt = app.extensions["gridloop"]
    app.extensions.setdefault(EXTENSION, Open311Config.from_settings(
        app.config["GRIDLOOP_SETTINGS"], redis=redis, clock=lambda: rt.clock.now().timestamp()))


def _config() -> Open311Config:
    return current_app.extensions[EXTENSION]


def _format() -> str:
    return "xml" if request.path.endswith(".xml") else "json"


def _answer(root: str, payload, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body, content_type = open311.render(_format(), root, payload)
    return Response(body, status=status, content_type=content_type, headers=dict(headers or {}))


def _both_formats(rule: str, **options) -> Callable:
    """Register the view at `rule.json` and `rule.xml` (XML is the spec's mandatory format)."""

    def decorate(view: Callable) -> Callable:
        for fmt in open311.FORMATS:
            bp.add_url_rule(f"{rule}.{fmt}", endpoint=view.__name__, view_func=view, **options)
        return view

    return decorate


# -- errors, limits and credentials ----------------------------------------------------------------

@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error):
    return _answer("errors", open311.error_list(exc.status, exc.description), exc.status, exc.headers)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    status = exc.code or 500
    return _answer("errors", open311.error_list(status, http_error_message(exc)), status)


@bp.errorhandler(EngineError)
def _engine_error(exc: EngineError):
    status = 404 if isinstance(exc, NotFound) else 400
    return _answer("errors", open311.error_list(status, exc.message), status)


def _client_ip() -> str:
    return client_ip(request, _config().proxy_hops)


def _limit(limiter: FixedWindowLimiter | None, key: str, what: str) -> None:
    if limiter is None:
        return
    wait = limiter.hit(key)
    if wait:
        raise Open311Error(429, f"too many requests from this {what}; retry in {wait} s",
                           headers={"Retry-After": str(wait)})


@bp.before_request
def _limit_client() -> None:
    _limit(_config().per_ip, _client_ip(), "client")


def _reporter() -> Principal:
    """Who posts: an API key (the `api_key` field, or X-API-Key) with a reporter role."""
    key = request.form.get("api_key") or request.headers.get("X-API-Key")
    header = request.headers.get("Authorization", "")
    if key:
        row = accounts.find_api_key(runtime().db, key.strip())
        if row is None:
            raise Open311Error(403, "invalid api_key")
        principal = Principal(f"system:{row.name}", row.role_set, None, "system")
    elif header.startswith("Bearer "):
        try:
            user = user_from_token(header.removeprefix("Bearer ").strip())
        except AuthError as exc:
            raise Open311Error(401, exc.message) from None
        principal = Principal(user.username, user.role_set, user.scope, "user")
    else:
        raise Open311Error(401, "api_key is required to post a service request")
    if not principal.has(*REPORTER_ROLES):
        raise Open311Error(403, "only a reporting system's api_key may post service requests")
    return principal


def _tenant(given: str | None) -> str:
    """jurisdiction_id is the tenant's code; without it, the only tenant."""
    known = reports.jurisdictions(runtime().db)
    if given:
        if given not in known:
            raise Open311Error(404, f"jurisdiction_id {given} is not served here")
        return given
    if len(known) == 1:
        return known[0]
    raise Open311Error(400 if known else 404, "jurisdiction_id is required" if known else "no jurisdiction is served")


def _services(tenant: str) -> dict[str, str]:
    return {c.code: c.name for c in reports.reportable_categories(runtime().db, tenant, _config().services)}


# -- services --------------------------------------------------------------------------------------

@_both_formats("/services", methods=["GET"])
@public
def list_services():
    services = _services(_tenant(request.args.get("jurisdiction_id")))
    return _answer("services", [open311.service(code, name) for code, name in services.items()])


@_both_formats("/services/<service_code>", methods=["GET"])
@public
def service_definition(service_code: str):
    if service_code not in _services(_tenant(request.args.get("jurisdiction_id"))):
        raise Open311Error(404, f"service_code {service_code} is not a service here")
    return _answer("service_definition", open311.service_definition(service_code))


# -- service requests ------------------------------------------------------------------------------

@_both_formats("/requests", methods=["POST"])
def create_request():
    if request.mimetype not in FORM_TYPES:  # before the credentials: the api_key is a form field
        raise Open311Error(415, "post the service request as application/x-www-form-urlencoded or "
                                "multipart/form-data (GeoReport v2), not " + (request.mimetype or "an empty body"))
    request.max_content_length = photo_request_limit()  # a photo may come with the request
    if request.headers.get(IDEMPOTENCY_HEADER):
        request.get_data(cache=True)  # before the form is parsed: the idempotency fingerprint covers the body
    principal = _reporter()
    _limit(_config().per_key, principal.name, "api_key")
    g.principal = principal
    return idempotent(_create)()


create_request.allowed_roles = REPORTER_ROLES


def _create():
    sub = open311.parse_submission(request.form)
    tenant = _tenant(request.form.get("jurisdiction_id"))
    if sub.service_code not in _services(tenant):
        raise Open311Error(400, f"service_code {sub.service_code} is not a service of jurisdiction {tenant}")
    rt, settings, cfg = runtime(), current_app.config["GRIDLOOP_SETTINGS"], _config()
    now = rt.clock.now()
    request_id = reports.new_request_id(now)
    photo = None
    upload = request.files.get("media")
    if upload is not None and upload.filename:
        data = upload.read(settings.max_photo_bytes + 1)
        try:
            photo = reports.store_report_photo(rt.db, now, request_id, g.principal.name, data, upload.mimetype,
                                               Path(settings.storage_dir), settings.max_photo_bytes)
        except EvidenceError as exc:
            raise Open311Error(exc.status, f"media: {exc.message}") from None
    report = reports.Report(
        tenant=tenant, request_id=request_id, category=sub.service_code, received_at=now, lon=sub.lon, lat=sub.lat,
        address=sub.address, description=sub.description, media_url=sub.media_url, reporter=sub.reporter,
        channel={k: v for k, v in (("device_id", sub.device_id), ("account_id", sub.account_id),
                                   ("client", g.principal.name)) if v}, photo=photo)
    try:
        intake = reports.file_report(rt, current_app.extensions["gridloop.grids"].get(tenant), report,
                                     g.principal.name, cfg.duplicates)
    except UnknownCategory:
        raise Open311Error(400, f"service_code {sub.service_code} is not a service here") from None
    log.info("open311 request", extra={"request_id": request_id, "case_id": intake.case.id,
                                       "outcome": intake.outcome})
    return _answer("service_requests", [open311.created(request_id, open311.notice(intake.outcome),
                                                        sub.account_id)], 201)


def _media_url(state: reports.ReportState) -> str | None:
    if state.media_url:
        return state.media_url
    return url_for("open311.media", request_id=state.request_id, _external=True) if state.has_photo else None


def _requests(q: reports.ReportQuery) -> Response:
    states = reports.report_states(runtime().db, q)
    return _answer("service_requests", [open311.service_request(s, _media_url(s)) for s in states])


@_both_formats("/requests/<request_id>", methods=["GET"])
@public
def get_request(request_id: str):
    tenant = _tenant(request.args.get("jurisdiction_id"))
    states = reports.report_states(runtime().db, reports.ReportQuery(tenant, request_ids=[request_id], limit=1))
    if not states:
        raise Open311Error(404, f"service request {request_id} does not exist")
    return _answer("service_requests", [open311.service_request(states[0], _media_url(states[0]))])


@_both_formats("/requests", methods=["GET"])
@public
def list_requests():
    args = request.args
    tenant = _tenant(args.get("jurisdiction_id"))
    ids = open311.comma_list(args.get("service_request_id"))
    if ids is not None:  # the spec: ids given, the other filters do not apply
        if len(ids) > MAX_IDS:
            raise Open311Error(400, f"at most {MAX_IDS} service_request_id values")
        return _requests(reports.ReportQuery(tenant, request_ids=ids, limit=MAX_IDS))
    statuses = open311.comma_list(args.get("status"))
    if statuses and not set(statuses) <= {"open", "closed"}:
        raise Open311Error(400, "status must be open, closed or both (comma-separated)")
    start, end = _date_arg("start_date"), _date_arg("end_date")
    if start is not None and end is not None:
        if end < start:
            raise Open311Error(400, "end_date is before start_date")
        if end - start > MAX_SPAN:
            raise Open311Error(400, "the date range may not span more than 90 days")
    elif start is not None:
        end = start + MAX_SPAN
    else:
        end = end or runtime().clock.now()
        start = end - MAX_SPAN
    return _requests(reports.ReportQuery(tenant, categories=open311.comma_list(args.get("service_code")),
                                         statuses=statuses, since=start, until=end, limit=MAX_RESULTS))


def _date_arg(name: str) -> datetime | None:
    """A query date within EARLIEST..LATEST (beyond, UTC cannot hold it or the 90-day window)."""
    at = open311.parse_datetime(request.args.get(name), name)
    if at is None:
        return None
    try:
        inside = EARLIEST <= at.astimezone(UTC) <= LATEST
    except (OverflowError, ValueError):
        inside = False
    if not inside:
        raise Open311Error(400, f"{name} must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return at


@bp.get("/media/<request_id>")
@public
def media(request_id: str):
    """The photo posted with a request (what its media_url points to)."""
    photo = reports.report_photo(runtime().db, request_id)
    if photo is None or not photo.path:
        raise Open311Error(404, f"service request {request_id} has no photo")
    path = Path(current_app.config["GRIDLOOP_SETTINGS"].storage_dir) / photo.path
    if not path.is_file():
        raise Open311Error(404, f"the photo of service request {request_id} is no longer kept")
    return send_file(path.resolve(), mimetype=photo.content_type, max_age=86400)
