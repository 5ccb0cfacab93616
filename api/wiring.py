"""Builds the engine runtime for a process from its settings."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from engine import audit, decisions, definitions
from engine.clock import Clock, SystemClock
from engine.db import Database
from engine.parsing import ModelError
from engine.runtime import Runtime
from engine.sandbox.isolation import IsolatedEvaluator
from integrations.enforcement import EnforcementClient
from notifications.config import build_providers
from notifications.delivery import DeliveryPolicy
from notifications.install import install as install_notifications
from workflows.demo_cases import seed_demo_cases
from workflows.demo_patrol import seed_demo_targets
from workflows.demo_seed import DEMO_ROSTER_DAYS, seed_demo
from workflows.install import install
from workflows.notices import contacts as notice_contacts
from workflows.tenants import tenant_prefix
from workflows.working_time import CalendarService, seed_from_package

from . import database
from .demo_logins import ensure_demo_logins
from .settings import Settings

log = logging.getLogger(__name__)


def make_database(settings: Settings) -> Database:
    url = settings.database_url
    if url.startswith("sqlite:///"):
        _private_file(Path(url.removeprefix("sqlite:///").split("?", 1)[0]))
    return Database(url)


def _private_file(path: Path) -> None:
    """Create the embedded database file readable by its owner alone (it holds password hashes and
    the audit trail); SQLite gives its -wal and -shm files the same mode. An existing file is left
    as the operator made it."""
    if path.name in ("", ":memory:") or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process created it first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def make_runtime(settings: Settings, *, db: Database | None = None, clock: Clock | None = None,
                 calendar: CalendarService | None = None) -> Runtime:
    """The engine runtime with the domain's operations registered (they read `calendar`)."""
    rt = Runtime(db=db or make_database(settings), clock=clock or SystemClock(),
                 message_ttl=timedelta(seconds=settings.message_ttl_s),
                 job_lease=timedelta(seconds=settings.job_lease_s), tenant_of=tenant_prefix,
                 audit_keys=audit.AuditKeys.of(settings.audit_key, settings.audit_retired_keys),
                 sandbox=IsolatedEvaluator(memory_mb=settings.sandbox_memory_mb)
                 if settings.sandbox_isolation == "subprocess" else None)
    calendar = calendar or CalendarService(rt.db)
    notify = settings.notify
    install(rt, calendar=calendar.calendar,
            enforcement=EnforcementClient.configured(
                settings.enforcement_url, settings.enforcement_secret, timeout_s=settings.enforcement_timeout_s,
                field_map=settings.enforcement_field_map, ticket_field=settings.enforcement_ticket_field),
            quiet=notify.quiet, public_url=notify.public_url)
    install_notifications(rt, build_providers(notify, settings.redis_url),
                          DeliveryPolicy(quiet=notify.quiet, batch=notify.batch), contacts=notice_contacts)
    return rt


def chores(rt: Runtime, settings: Settings) -> list[Callable[[], object]]:
    """What the active scheduler does about once a minute besides timers and the outbox."""
    from workflows.monitoring_rules import check_offline
    from workflows.readings import purge_older_than

    from .accounts import purge_sessions
    from .idempotency import purge

    def offline() -> int:
        with rt.db.transaction() as s:
            return check_offline(s, rt.clock.now())

    last_purge = [float("-inf")]

    def old_readings() -> int:  # hourly: the delete scans by data time
        if settings.reading_retention_days <= 0 or time.monotonic() - last_purge[0] < 3600:
            return 0
        last_purge[0] = time.monotonic()
        deleted = purge_older_than(rt.db, rt.clock.now() - timedelta(days=settings.reading_retention_days))
        if deleted:
            log.info("readings purged", extra={"deleted": deleted, "retention_days": settings.reading_retention_days})
        return deleted

    last_checkpoint = [float("-inf")]  # at once, then every interval

    def audit_checkpoint() -> int:  # signs the chain heads that moved (engine/audit/store.py)
        interval = settings.audit_checkpoint_interval_s
        if interval <= 0 or time.monotonic() - last_checkpoint[0] < interval:
            return 0
        last_checkpoint[0] = time.monotonic()
        return 1 if audit.take_checkpoint(rt.db, rt.audit_keys, "scheduler", rt.clock.now()) else 0

    return [lambda: purge(rt), offline, old_readings, lambda: purge_sessions(rt.db, rt.clock.now()),
            audit_checkpoint]


def prepare_database(rt: Runtime, settings: Settings) -> None:
    """Migrate the schema and deploy the bundled models (an identical file keeps its version); then
    sign an audit checkpoint (the first one seals the events written before the trail had a key)."""
    database.upgrade(rt.db)
    ensure_admin(rt, settings.admin_password)
    seeded = seed_from_package(rt.db, rt.clock.now())
    if seeded:
        log.info("holiday calendar seeded", extra={"years": seeded})
    demo = seed_demo(rt.db, rt.clock.now(), days_on_duty=DEMO_ROSTER_DAYS) if settings.wants_demo else None
    if demo is not None and demo.seeded:
        log.info("demo tenant seeded", extra={"tenant": demo.tenant, "grids": demo.grids,
                                              "inspectors": demo.inspectors, "supervisors": demo.supervisors})
    if demo is not None:
        for login in ensure_demo_logins(rt, demo.tenant):
            log.warning("created demo login %r (%s of %s) with a generated password (shown once): %s",
                        login.username, login.role, login.scope, login.password)
    if settings.deploy_bundled:
        deploy_directory(rt, settings.bpmn_dir, actor="system:bundled")
    if demo is not None:  # after the deployment: they run through env_case
        cases = seed_demo_cases(rt, demo.tenant, Path(settings.storage_dir))
        if cases:
            log.info("demo cases filed", extra={"tenant": demo.tenant, "cases": cases})
        targets = seed_demo_targets(rt, demo.tenant)
        if targets:
            log.info("demo patrol targets added", extra={"tenant": demo.tenant, "targets": targets})
    audit.take_checkpoint(rt.db, rt.audit_keys, "system:startup", rt.clock.now())


def ensure_admin(rt: Runtime, password: str = "") -> None:
    """On a fresh database, create `admin` so that a newcomer can log in. The password is `password`
    (GRIDLOOP_ADMIN_PASSWORD), or is generated and logged once."""
    from sqlalchemy import func, select

    from . import accounts

    with rt.db.session() as s:
        if s.scalar(select(func.count()).select_from(accounts.User)):
            return
    chosen = password or accounts.generate_password()  # passes the password policy
    problem = accounts.password_problem("admin", chosen)
    if problem:
        raise accounts.AccountError(f"GRIDLOOP_ADMIN_PASSWORD is refused: {problem}")
    accounts.create_user(rt.db, rt.clock.now(), username="admin", password=chosen, roles=["admin"],
                         display_name="Administrator")
    if not password:
        log.warning("created user 'admin' with a generated password (shown once): %s", chosen)


def deploy_directory(rt: Runtime, directory: Path, actor: str) -> list[str]:
    """The decision tables first (*.dmn): a model's business rule tasks need theirs deployed."""
    deployed = []
    for path in sorted(directory.glob("*.dmn")):
        try:
            tables = decisions.deploy(rt, path.read_bytes(), actor)
        except ModelError as exc:
            log.error("bundled decision table refused", extra={"file": path.name, "problems": str(exc)})
            raise
        deployed += [f"{d.key} v{d.version}{' (new)' if created else ''}" for d, created in tables]
    for path in sorted(directory.glob("*.bpmn")):
        try:
            d, created = definitions.deploy(rt, path.read_bytes(), actor)
        except ModelError as exc:
            log.error("bundled model refused", extra={"file": path.name, "problems": str(exc)})
            raise
        deployed.append(f"{d.key} v{d.version}{' (new)' if created else ''}")
    return deployed
