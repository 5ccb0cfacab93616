"""Configuration from environment variables, with defaults that run on a bare machine."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from notifications.config import NotifySettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKER_MODES = ("simple", "fork")
SANDBOX_ISOLATIONS = ("inprocess", "subprocess")
AUDIT_KEY_MIN_CHARS = 32


_N = TypeVar("_N", int, float)


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GRIDLOOP_{name}", default)


def _number(name: str, default: str, kind: type[_N]) -> _N:
    """GRIDLOOP_<name> as a number (unset or empty: `default`); a value that is not one is refused
    naming the variable."""
    value = _env(name, "") or default
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"GRIDLOOP_{name} must be {what}: {value!r}") from None


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///var/gridloop.db"
    redis_url: str = ""  # empty: the embedded in-process job runner
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    # The audit trail's HMAC key (engine/audit) and the retired keys verification still accepts.
    audit_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    audit_retired_keys: tuple[str, ...] = field(default=(), repr=False)
    audit_checkpoint_interval_s: int = 300  # the scheduler signs the chain heads this often (0: never)
    access_token_ttl_s: int = 3600
    refresh_token_ttl_s: int = 14 * 86400
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    log_level_spiff: str = "WARNING"  # SpiffWorkflow's own loggers: INFO logs every task's data
    log_json: bool = True
    bpmn_dir: Path = PROJECT_ROOT / "bpmn"
    deploy_bundled: bool = True
    seed_demo: bool | None = None  # None: only on the embedded default database
    message_ttl_s: int = 86400
    login_rate_user: str = "10/300"  # failed logins per username per window (seconds); "0": no limit
    login_rate_ip: str = "50/300"  # failed logins per client address per window
    proxy_hops: int = 0  # trusted reverse proxies in front (the client address is read from X-Forwarded-For)
    metrics_token: str = field(default="", repr=False)  # set: /metrics needs "Authorization: Bearer <token>"
    job_lease_s: int = 600  # a job not done this long after it was handed out is handed out again
    max_request_bytes: int = 4 * 1024 * 1024
    web_workers: int = 2
    job_threads: int = 2
    worker_mode: str = "simple"  # `gridloop worker`: "simple" runs jobs in a long-lived process; "fork": one per job
    worker_max_jobs: int = 1000  # simple mode: the process exits after this many jobs and a fresh one takes over
    worker_max_rss_mb: int = 512  # ... or once its resident memory passes this after a job (0: no limit)
    sandbox_isolation: str = "inprocess"  # "subprocess": scripts run in pre-started children with rlimits
    sandbox_memory_mb: int = 512  # ... each child's address space (RLIMIT_AS)
    storage_dir: str = "var/uploads"
    max_photo_bytes: int = 8 * 1024 * 1024
    checkin_tolerance_m: float = 50.0
    enforcement_url: str = ""
    enforcement_secret: str = field(default="", repr=False)
    notify: NotifySettings = field(default_factory=NotifySettings)
    ingest_host: str = "127.0.0.1"  # the HJ 212 listener (`gridloop ingest`)
    ingest_port: int = 9212
    ingest_idle_timeout_s: float = 300.0
    ingest_max_connections: int = 2000
    ingest_max_frame: int = 4096  # most bytes of a packet's data segment
    ingest_strict: bool = False  # refuse what deployed loggers send beyond the standard (no CRLF, times with ms)
    reading_retention_days: int = 400
    admin_password: str = field(default="", repr=False)  # the first `admin`'s; empty: generated and logged once
    operator: str = "admin"  # who runs a CLI command ($USER): the actor of what `gridloop deploy` deploys
    enforcement_timeout_s: float = 10.0
    enforcement_field_map: str = ""  # JSON {their_field: our_param}; empty: identity
    enforcement_ticket_field: str = "ticket"
    open311_services: str = "citizen.report,noise,solid_waste"
    open311_rate_ip: str = "120/60"
    open311_rate_key: str = "300/60"
    open311_proxy_hops: int = 0
    report_duplicate_radius_m: float = 100.0
    report_duplicate_window_h: float = 24.0
    map_tiles_url: str = ""  # a tile URL template ({z}/{x}/{y}, optional {s}); empty: the map has no base layer
    map_tiles_attribution: str = ""  # shown in the map's corner, as the tile provider's terms ask
    map_tiles_subdomains: str = "abc"  # what {s} takes, one character each (天地图: 01234567)

    def __post_init__(self) -> None:
        if self.map_tiles_url:
            map_tiles_origin(self.map_tiles_url)  # refuse a bad template when the process starts
        if not re.fullmatch(r"[A-Za-z0-9]{1,16}", self.map_tiles_subdomains):
            raise ValueError(f"GRIDLOOP_MAP_TILES_SUBDOMAINS must be 1 to 16 letters or digits: "
                             f"{self.map_tiles_subdomains!r}")
        if self.worker_mode not in WORKER_MODES:
            raise ValueError(f"GRIDLOOP_WORKER_MODE must be one of {', '.join(WORKER_MODES)}: {self.worker_mode!r}")
        if self.worker_max_jobs < 1:
            raise ValueError(f"GRIDLOOP_WORKER_MAX_JOBS must be at least 1: {self.worker_max_jobs}")
        for key in (self.audit_key, *self.audit_retired_keys):
            if len(key) < AUDIT_KEY_MIN_CHARS:
                raise ValueError(f"an audit key (GRIDLOOP_AUDIT_KEY, its file or a retired key) must have at least "
                                 f"{AUDIT_KEY_MIN_CHARS} characters")
        if self.audit_checkpoint_interval_s < 0:
            raise ValueError("GRIDLOOP_AUDIT_CHECKPOINT_INTERVAL must be 0 (never) or more seconds")
        if self.worker_max_rss_mb < 0:
            raise ValueError(f"GRIDLOOP_WORKER_MAX_RSS_MB must be 0 (no limit) or more: {self.worker_max_rss_mb}")
        if self.sandbox_isolation not in SANDBOX_ISOLATIONS:
            raise ValueError(f"GRIDLOOP_SANDBOX_ISOLATION must be one of {', '.join(SANDBOX_ISOLATIONS)}: "
                             f"{self.sandbox_isolation!r}")
        if self.sandbox_memory_mb < 64:
            raise ValueError(f"GRIDLOOP_SANDBOX_MEMORY_MB must be at least 64: {self.sandbox_memory_mb}")

    @classmethod
    def from_env(cls) -> Settings:
        d = cls()
        audit_key, audit_retired = _audit_keys()
        return cls(
            database_url=_env("DATABASE_URL", d.database_url),
            redis_url=_env("REDIS_URL", d.redis_url),
            secret_key=_env("SECRET_KEY", "") or _stable_dev_secret(),
            audit_key=audit_key,
            audit_retired_keys=audit_retired,
            audit_checkpoint_interval_s=_number("AUDIT_CHECKPOINT_INTERVAL", str(d.audit_checkpoint_interval_s), int),
            access_token_ttl_s=_number("ACCESS_TOKEN_TTL", str(d.access_token_ttl_s), int),
            refresh_token_ttl_s=_number("REFRESH_TOKEN_TTL", str(d.refresh_token_ttl_s), int),
            host=_env("HOST", d.host),
            port=_number("PORT", str(d.port), int),
            log_level=_env("LOG_LEVEL", d.log_level).upper(),
            log_level_spiff=_env("LOG_LEVEL_SPIFF", d.log_level_spiff).upper(),
            log_json=_env("LOG_JSON", "true").lower() in ("1", "true", "yes"),
            bpmn_dir=Path(_env("BPMN_DIR", str(d.bpmn_dir))),
            deploy_bundled=_env("DEPLOY_BUNDLED", "true").lower() in ("1", "true", "yes"),
            seed_demo=_flag(_env("SEED_DEMO", "")),
            message_ttl_s=_number("MESSAGE_TTL", str(d.message_ttl_s), int),
            job_lease_s=_number("JOB_LEASE", str(d.job_lease_s), int),
            login_rate_user=_env("LOGIN_RATE_USER", d.login_rate_user),
            login_rate_ip=_env("LOGIN_RATE_IP", d.login_rate_ip),
            proxy_hops=_number("PROXY_HOPS", "0", int),
            metrics_token=_env("METRICS_TOKEN", ""),
            max_request_bytes=_number("MAX_REQUEST_BYTES", str(d.max_request_bytes), int),
            web_workers=_number("WEB_WORKERS", str(d.web_workers), int),
            job_threads=_number("JOB_THREADS", str(d.job_threads), int),
            worker_mode=_env("WORKER_MODE", d.worker_mode).lower(),
            worker_max_jobs=_number("WORKER_MAX_JOBS", str(d.worker_max_jobs), int),
            worker_max_rss_mb=_number("WORKER_MAX_RSS_MB", str(d.worker_max_rss_mb), int),
            sandbox_isolation=_env("SANDBOX_ISOLATION", d.sandbox_isolation).lower(),
            sandbox_memory_mb=_number("SANDBOX_MEMORY_MB", str(d.sandbox_memory_mb), int),
            storage_dir=_env("STORAGE_DIR", d.storage_dir),
            max_photo_bytes=_number("MAX_PHOTO_BYTES", str(d.max_photo_bytes), int),
            checkin_tolerance_m=_number("CHECKIN_TOLERANCE_M", str(d.checkin_tolerance_m), float),
            enforcement_url=_env("ENFORCEMENT_URL", ""),
            enforcement_secret=_env("ENFORCEMENT_SECRET", ""),
            notify=NotifySettings.from_env(),
            ingest_host=_env("INGEST_HOST", d.ingest_host),
            ingest_port=_number("INGEST_PORT", str(d.ingest_port), int),
            ingest_idle_timeout_s=_number("INGEST_IDLE_TIMEOUT", str(d.ingest_idle_timeout_s), float),
            ingest_max_connections=_number("INGEST_MAX_CONNECTIONS", str(d.ingest_max_connections), int),
            ingest_max_frame=_number("INGEST_MAX_FRAME", str(d.ingest_max_frame), int),
            ingest_strict=_env("INGEST_STRICT", "false").lower() in ("1", "true", "yes"),
            reading_retention_days=_number("READING_RETENTION_DAYS", str(d.reading_retention_days), int),
            admin_password=_env("ADMIN_PASSWORD", ""),
            operator=os.environ.get("USER") or d.operator,
            enforcement_timeout_s=_number("ENFORCEMENT_TIMEOUT", str(d.enforcement_timeout_s), float),
            enforcement_field_map=_env("ENFORCEMENT_FIELD_MAP", ""),
            enforcement_ticket_field=_env("ENFORCEMENT_TICKET_FIELD", "") or d.enforcement_ticket_field,
            open311_services=_env("OPEN311_SERVICES", d.open311_services),
            open311_rate_ip=_env("OPEN311_RATE_IP", d.open311_rate_ip),
            open311_rate_key=_env("OPEN311_RATE_KEY", d.open311_rate_key),
            open311_proxy_hops=_number("OPEN311_PROXY_HOPS", "0", int),
            report_duplicate_radius_m=_number("REPORT_DUPLICATE_RADIUS_M", str(d.report_duplicate_radius_m), float),
            report_duplicate_window_h=_number("REPORT_DUPLICATE_WINDOW_H", str(d.report_duplicate_window_h), float),
            map_tiles_url=_env("MAP_TILES_URL", ""),
            map_tiles_attribution=_env("MAP_TILES_ATTRIBUTION", ""),
            map_tiles_subdomains=_env("MAP_TILES_SUBDOMAINS", d.map_tiles_subdomains),
        )

    @property
    def job_timeout_s(self) -> int:
        """RQ's limit on one job: well inside the lease, so a hung job is killed before it is re-run."""
        return max(1, min(300, self.job_lease_s // 2))

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def wants_demo(self) -> bool:
        return self.seed_demo if self.seed_demo is not None else self.database_url == Settings.database_url


TILE_URL = re.compile(r"^(https?)://([A-Za-z0-9-]*\{s\}[A-Za-z0-9-]*\.)?([A-Za-z0-9.-]+(?::[0-9]{1,5})?)/\S*\Z")


def map_tiles_origin(template: str) -> str:
    """The origin a tile URL template loads from, as a Content-Security-Policy source (a first label
    naming the subdomain, `t{s}.`, becomes `*.`); ValueError for a template that is not an http(s) URL
    with {z}, {x} and {y}."""
    m = TILE_URL.match(template)
    if m is None or not all(p in template for p in ("{z}", "{x}", "{y}")):
        raise ValueError("GRIDLOOP_MAP_TILES_URL must be an http(s) URL template with {z}, {x} and {y} "
                         f"(a {{s}} subdomain allowed): {template!r}")
    return f"{m.group(1)}://{'*.' if m.group(2) else ''}{m.group(3)}"


def _flag(value: str) -> bool | None:
    return None if value == "" else value.lower() in ("1", "true", "yes")


def _audit_keys() -> tuple[str, tuple[str, ...]]:
    """The audit key and the retired ones: GRIDLOOP_AUDIT_KEY (+ GRIDLOOP_AUDIT_RETIRED_KEYS, comma-
    separated), or a key file (GRIDLOOP_AUDIT_KEY_FILE, default var/audit_key, generated on first
    use): one key per line, the first signs new events, the others are retired."""
    key = _env("AUDIT_KEY", "")
    if key:
        return key, tuple(k.strip() for k in _env("AUDIT_RETIRED_KEYS", "").split(",") if k.strip())
    file = _env("AUDIT_KEY_FILE", "")
    text = Path(file).read_text() if file else _stable_dev_secret("audit_key")
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise ValueError(f"the audit key file {file} holds no key")
    return keys[0], tuple(keys[1:])


def _stable_dev_secret(name: str = "secret_key") -> str:
    """Without GRIDLOOP_SECRET_KEY, keep one random secret in var/ so tokens survive restarts of the
    embedded server. Production sets the variable (the same value on every web process). The same
    for the audit key (var/audit_key)."""
    path = Path("var") / name  # beside the embedded database (sqlite:///var/gridloop.db)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as f:
        f.write(value)
    return value
