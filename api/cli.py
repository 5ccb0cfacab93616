"""`gridloop` — one command for the processes (run, web, worker, scheduler) and the chores
(db upgrade, deploy, calendar, create-user, create-api-key, audit). Configuration comes from GRIDLOOP_* variables."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from .cli_audit import audit_group
from .logs import configure_logging
from .settings import Settings


def _settings() -> Settings:
    try:
        s = Settings.from_env()
    except ValueError as exc:  # a setting out of range or not a number: say which, without a traceback
        raise click.UsageError(str(exc)) from None
    configure_logging(s.log_level, s.log_json, s.log_level_spiff)
    return s


def _runtime(settings: Settings):
    from .wiring import make_runtime

    return make_runtime(settings)


@click.group()
def main() -> None:
    """GridLoop: closed-loop environmental supervision on BPMN."""


main.add_command(audit_group)


@main.command()
def run() -> None:
    """All in one process: API on GRIDLOOP_HOST:GRIDLOOP_PORT, scheduler and in-process jobs.
    Migrates the database and deploys the bundled models first."""
    from .server import GridLoopServer
    from .wiring import prepare_database

    s = _settings()
    rt = _runtime(s)
    prepare_database(rt, s)
    rt.db.dispose()  # the server's worker builds its own runtime (create_app), after the fork
    click.echo(f"GridLoop on http://{s.host}:{s.port}  (database {s.database_url}; docs /api/v1/docs)", err=True)
    GridLoopServer(s, all_in_one=True).run()


@main.command()
def web() -> None:
    """API only (run several; needs the scheduler and workers as separate processes)."""
    from .server import GridLoopServer

    s = _settings()
    if not s.redis_url:
        raise click.UsageError("GRIDLOOP_REDIS_URL is not set: without Redis nothing would run timers or jobs; "
                               "use `gridloop run` for the embedded all-in-one server")
    GridLoopServer(s, all_in_one=False).run()


@main.command()
def ingest() -> None:
    """HJ 212 TCP listener on GRIDLOOP_INGEST_HOST:GRIDLOOP_INGEST_PORT: data loggers' readings are
    stored (and the threshold rules run); SIGTERM stores what is queued, acknowledges it, then exits.
    Old readings are purged by the scheduler (GRIDLOOP_READING_RETENTION_DAYS)."""
    import asyncio

    from integrations.ingest import IngestConfig, IngestServer
    from workflows.readings import intake_for

    s = _settings()
    if not 0 < s.ingest_max_frame <= 9999:
        raise click.UsageError("GRIDLOOP_INGEST_MAX_FRAME must be 1..9999 (the 4-digit length field)")
    rt = _runtime(s)
    intake = intake_for(rt.db, rt.clock)  # with workflows.monitoring_rules.evaluate as a hook
    config = IngestConfig(host=s.ingest_host, port=s.ingest_port, idle_timeout_s=s.ingest_idle_timeout_s,
                          max_connections=s.ingest_max_connections, max_length=s.ingest_max_frame,
                          lenient=not s.ingest_strict)
    server = IngestServer(config, authenticate=intake.verdict, sink=intake.store_packets)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await server.serve(stop)

    click.echo(f"HJ 212 ingest on {s.ingest_host}:{s.ingest_port} (database {s.database_url})", err=True)
    asyncio.run(serve())


@main.command()
@click.argument("queues", nargs=-1)
def worker(queues: tuple[str, ...]) -> None:
    """An RQ worker for the given queues (default: engine notify integrations). GRIDLOOP_WORKER_MODE=simple
    runs jobs in a long-lived child process, replaced after GRIDLOOP_WORKER_MAX_JOBS jobs, past
    GRIDLOOP_WORKER_MAX_RSS_MB, after a timed-out job or when its watchdog ends it; fork: RQ's stock
    worker, a forked work horse per job. RQ logs each job by id, not with its arguments (payloads may
    carry a case's or a citizen's data)."""
    from engine import worker as engine_worker

    s = _settings()
    if not s.redis_url:
        raise click.UsageError("GRIDLOOP_REDIS_URL is not set; the embedded `gridloop run` needs no worker")
    names = list(queues or ("engine", "notify", "integrations"))
    if s.worker_mode == "fork":
        from redis import Redis

        from engine.rq_worker import ForkingWorker

        engine_worker.bind(_runtime(s))
        ForkingWorker(names, connection=Redis.from_url(s.redis_url), log_job_description=False).work(
            with_scheduler=False, logging_level=s.log_level)
        return
    from engine.rq_worker import EXIT_HUNG
    from engine.supervisor import supervise

    from . import wiring  # noqa: F401  (imported once here, shared by every child)

    raise SystemExit(supervise(lambda: _long_lived_worker(s, names), respawn_at_once=frozenset({0, EXIT_HUNG})))


def _long_lived_worker(s: Settings, queues: list[str]) -> int:
    """One child of `gridloop worker` in simple mode: its own runtime and Redis connection."""
    from redis import Redis

    from engine import worker as engine_worker
    from engine.rq_worker import LongLivedWorker, Recycle

    engine_worker.bind(_runtime(s))
    recycle = Recycle(max_jobs=s.worker_max_jobs, max_rss_mb=s.worker_max_rss_mb)
    worker = LongLivedWorker(queues, connection=Redis.from_url(s.redis_url), recycle=recycle,
                             log_job_description=False)
    worker.work(with_scheduler=False, logging_level=s.log_level)
    return worker.exit_code


@main.command()
def scheduler() -> None:
    """Timers, outbox relay and housekeeping; several may run, one is active (advisory lock)."""
    from redis import Redis

    from engine.queues import RQJobQueue
    from engine.scheduler import HEARTBEAT_KEY, STANDBY_FIRED_KEY, Scheduler

    from .wiring import chores

    s = _settings()
    if not s.redis_url:
        raise click.UsageError("GRIDLOOP_REDIS_URL is not set; the embedded `gridloop run` has its own scheduler")

    rt = _runtime(s)
    redis = Redis.from_url(s.redis_url, socket_timeout=10, socket_connect_timeout=5)  # a hung Redis fails the tick
    jobs = RQJobQueue(redis, job_timeout=s.job_timeout_s)
    sched = Scheduler(rt, jobs, housekeeping=chores(rt, s),  # /health and /metrics read these two
                      heartbeat=lambda at: redis.set(HEARTBEAT_KEY, at.timestamp(), ex=7 * 86400),
                      standby_fired=lambda n: redis.incrby(STANDBY_FIRED_KEY, n))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sched.start()
    stop.wait()
    sched.stop()


@main.command("enforcement-sim", add_help_option=False,
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def enforcement_sim(args: tuple[str, ...]) -> None:
    """The reference enforcement system, a separate process for demos and tests (see --help)."""
    from integrations.reference_enforcement.cli import main as simulator_main

    raise SystemExit(simulator_main(list(args)))


@main.group()
def db() -> None:
    """Database chores."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations."""
    from . import database

    database.upgrade(_runtime(_settings()).db)
    click.echo("database is up to date")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def deploy(files: tuple[Path, ...]) -> None:
    """Deploy BPMN files and DMN decision tables (*.dmn, deployed first; identical content keeps its version)."""
    from engine import decisions, definitions
    from engine.models import DecisionDefinition, ProcessDefinition
    from engine.parsing import ModelError

    settings = _settings()
    rt = _runtime(settings)
    for path in sorted(files, key=lambda p: p.suffix.lower() != ".dmn"):
        deployed: list[tuple[DecisionDefinition, bool]] | list[tuple[ProcessDefinition, bool]]
        try:
            if path.suffix.lower() == ".dmn":
                deployed = decisions.deploy(rt, path.read_bytes(), f"cli:{settings.operator}")
            else:
                deployed = [definitions.deploy(rt, path.read_bytes(), f"cli:{settings.operator}")]
        except ModelError as exc:
            for p in exc.problems:
                click.echo(f"{path}: {p.element_id or '-'}: {p.message}", err=True)
            raise SystemExit(1) from None
        for d, created in deployed:
            click.echo(f"{path}: {d.key} version {d.version}{'' if created else ' (unchanged)'}")


@main.group()
def calendar() -> None:
    """The holiday calendar working-time SLAs count on (statutory holidays, swapped working days)."""


@calendar.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--year", type=click.IntRange(2000, 2100), default=None,
              help="the year the file is for (default: the year of its first date)")
def calendar_load(file: Path, year: int | None) -> None:
    """Load (replace) a year from FILE: the JSON body of PUT /api/v1/calendar/{year}, i.e. {"source",
    "holidays": [{"date", "name"}], "workdays": [{"date", "name"}]}. Checked as the API checks it;
    refused, it changes nothing. Running servers see it within 5 minutes."""
    import json

    from marshmallow import ValidationError

    from .views.calendar import YearSchema, load_checked

    settings = _settings()
    try:
        body = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(body, dict):
            raise click.UsageError(f"{file}: the file must hold a JSON object")
        args = YearSchema().load(body)
        dates = [e["date"] for e in (*args["holidays"], *args["workdays"])]
        if year is None and not dates:
            raise click.UsageError(f"{file}: no dates: give --year to load a year without holidays")
        year = year or dates[0].year
        rt = _runtime(settings)
        load_checked(rt.db, rt.clock.now(), year, args, f"cli:{settings.operator}")
    except ValidationError as exc:  # the API's 422 fields, one line each
        for name, messages in _flat(exc.messages):
            click.echo(f"{file}: {name}: {messages}", err=True)
        raise SystemExit(1) from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise click.UsageError(f"{file}: not valid JSON: {exc}") from None
    click.echo(f"{file}: {year} loaded: {len(args['holidays'])} holidays, {len(args['workdays'])} swapped "
               f"working days (source {args['source']!r})")


def _flat(messages, prefix: str = ""):
    """marshmallow's nested messages as (dotted name, text) lines."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flat(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix or "-", "; ".join(map(str, messages)) if isinstance(messages, list) else str(messages)


@calendar.command("show")
@click.argument("year", type=click.IntRange(2000, 2100))
def calendar_show(year: int) -> None:
    """A year's holidays and swapped working days, and where they came from."""
    from .views.calendar import year_of

    shown = year_of(_runtime(_settings()).db, year)
    if shown["source"] is None:
        click.echo(f"{year}: no holiday data (SLAs count weekends only); load it with `gridloop calendar load FILE`")
        raise SystemExit(1)
    click.echo(f"{year}: source {shown['source']!r}, loaded by {shown['loaded_by']} at "
               f"{shown['loaded_at'].isoformat(timespec='seconds')}")
    for kind, label in (("holidays", "holiday"), ("workdays", "working day")):
        for day in shown[kind]:
            click.echo(f"{day['date']}  {label:<11}  {day['name'] or ''}")


@main.command("import-grids")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", required=True, help="the city's 6-digit administrative code, e.g. 320700")
@click.option("--dry-run", is_flag=True, help="validate only")
def import_grids_cmd(file: Path, tenant: str, dry_run: bool) -> None:
    """Import (replace) a tenant's grids from a GeoJSON FeatureCollection."""
    import json

    from workflows.geojson_import import GridImportError, import_grids, validate_feature_collection

    rt = _runtime(_settings())
    collection = json.loads(file.read_text(encoding="utf-8"))
    try:
        if dry_run:
            grids, warnings = validate_feature_collection(tenant, collection)
            click.echo(f"{file}: valid, {len(grids)} grids, {len(warnings)} warnings")
            return
        report = import_grids(rt.db, rt.clock.now(), tenant, collection)
    except GridImportError as exc:
        for p in exc.problems:
            click.echo(f"{file}: feature {p.get('index')} ({p.get('code')}): {p.get('problem')}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{file}: {report.counts}; added {len(report.added)}, changed {len(report.changed)}, "
               f"retired {len(report.retired)}, unchanged {report.unchanged}")


@main.command("seed-demo")
def seed_demo_cmd() -> None:
    """Load the demo tenant 320700 (synthetic grids, people on duty, categories) and, once env_case is
    deployed, a few cases in different stages; idempotent."""
    from workflows.demo_cases import seed_demo_cases
    from workflows.demo_patrol import seed_demo_targets
    from workflows.demo_seed import DEMO_ROSTER_DAYS, seed_demo

    from .demo_logins import ensure_demo_logins

    settings = _settings()
    rt = _runtime(settings)
    s = seed_demo(rt.db, rt.clock.now(), days_on_duty=DEMO_ROSTER_DAYS)
    logins = ensure_demo_logins(rt, s.tenant)
    cases = seed_demo_cases(rt, s.tenant, Path(settings.storage_dir))
    targets = seed_demo_targets(rt, s.tenant)
    click.echo(f"tenant {s.tenant}: {s.grids} grids, {s.inspectors} inspectors, {s.supervisors} supervisors"
               f"{'' if s.seeded else ' (already there)'}; {cases} demo cases filed; {targets} patrol targets added")
    for login in logins:  # shown this once
        click.echo(f"demo login {login.username} ({login.role} of {login.scope}): password {login.password}")


@main.command("create-user")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, help="admin, supervisor, inspector, leader")
@click.option("--scope", default=None, help="grid code (prefix) the user works in")
@click.option("--name", "display_name", default=None)
@click.password_option(envvar="GRIDLOOP_NEW_USER_PASSWORD")
def create_user(username: str, roles: tuple[str, ...], scope: str | None, display_name: str | None,
                password: str) -> None:
    """Create a user (password from the prompt or GRIDLOOP_NEW_USER_PASSWORD)."""
    from . import accounts

    rt = _runtime(_settings())
    try:
        accounts.create_user(rt.db, rt.clock.now(), username=username, password=password, roles=list(roles),
                             scope=scope, display_name=display_name)
    except accounts.AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(f"user {username} created with roles {', '.join(sorted(roles))}")


@main.command("reset-password")
@click.argument("username")
@click.option("--generate", is_flag=True, help="generate a one-time password and print it (else: prompt)")
@click.option("--password", envvar="GRIDLOOP_NEW_USER_PASSWORD", default=None, hidden=True)
def reset_password_cmd(username: str, generate: bool, password: str | None) -> None:
    """Set USERNAME's password (from the prompt, GRIDLOOP_NEW_USER_PASSWORD, or --generate); the
    user's login sessions end. Audited like POST /api/v1/users/{id}/reset-password."""
    from engine.errors import EngineError

    from . import accounts
    from .user_admin import reset_password

    settings = _settings()
    rt = _runtime(settings)
    user = accounts.find_user(rt.db, username)
    if user is None:
        raise click.UsageError(f"user {username!r} does not exist")
    if generate:
        password = None
    elif not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        _, generated = reset_password(rt, f"cli:{settings.operator}", user.id, password)
    except EngineError as exc:
        raise click.UsageError(exc.message) from None
    click.echo(f"password of {username} reset" + (f": {generated} (shown once)" if generated else ""))


@main.command("create-api-key")
@click.argument("name")
@click.option("--role", "roles", multiple=True, default=("system",), show_default=True)
def create_api_key(name: str, roles: tuple[str, ...]) -> None:
    """Create an API key for a system; the key is printed once."""
    from . import accounts

    rt = _runtime(_settings())
    try:
        key = accounts.create_api_key(rt.db, rt.clock.now(), name=name, roles=list(roles))
    except accounts.AccountError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(key)
