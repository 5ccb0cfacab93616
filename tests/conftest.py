"""Fixtures shared by every test: real databases (PostgreSQL and SQLite), a runtime with a manual
clock, and the reference process. With CI=true PostgreSQL and Redis are required, never skipped."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from api import database
from api.schema_registry import metadata
from engine.clock import ManualClock
from engine.db import Database
from engine.runtime import Runtime

pytest_plugins = ["tests.city"]

FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get("GRIDLOOP_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_TEST_DB = os.environ.get("GRIDLOOP_TEST_PG_DB", "gridloop_test")
REDIS_URL = os.environ.get("GRIDLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _postgres_url() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{PG_TEST_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
    except psycopg.OperationalError as exc:
        if IN_CI:
            raise RuntimeError(f"PostgreSQL is required in CI and unreachable: {exc}") from exc
        return None
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{PG_TEST_DB}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Database]:
    url = _postgres_url()
    if url is None:
        pytest.skip("PostgreSQL not reachable (set CI=true to make this an error)")
    db = Database(url)
    database.upgrade(db)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('db') / 'gridloop.db'}")
    database.upgrade(db)
    yield db
    db.dispose()


def _empty(db: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if db.is_postgres:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(params=["pg", "sqlite"])
def db(request) -> Iterator[Database]:
    """Each test that uses it runs twice: on PostgreSQL and on the embedded SQLite default."""
    database_ = request.getfixturevalue(f"{request.param}_database")
    _empty(database_)
    yield database_


@pytest.fixture
def pg(pg_database) -> Iterator[Database]:
    """PostgreSQL only: for behaviour that needs real concurrency between connections."""
    _empty(pg_database)
    yield pg_database


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def reference_operations(rt: Runtime) -> None:
    rt.registry.register("ref.classify", lambda p, c: {"level": "high" if p["value"] > 100 else "low"})
    rt.registry.register("ref.push", lambda p, c: {"pushed": p["case_id"]}, is_async=True)


@pytest.fixture
def rt(db, clock) -> Runtime:
    runtime = Runtime(db=db, clock=clock)
    reference_operations(runtime)
    return runtime


@pytest.fixture
def reference_xml() -> str:
    return (FIXTURES / "reference_loop.bpmn").read_text()


def redis_or_skip(url: str):
    """A Redis connection to `url`, emptied; skips the test when Redis is unreachable (fails in CI).
    Use it as a generator from a fixture: the database is emptied again afterwards."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    conn = Redis.from_url(url)
    try:
        conn.ping()
    except RedisConnectionError as exc:
        if IN_CI:
            raise RuntimeError(f"Redis is required in CI and unreachable: {exc}") from exc
        pytest.skip("Redis not reachable (set CI=true to make this an error)")
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()
