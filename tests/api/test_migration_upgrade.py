"""Every migration upgrades a database that holds data, as an installation's does — not only the empty
one the other tests start from. Between steps each table gets a row, so a migration that, say,
rebuilds a table other rows reference (SQLite's way of adding a foreign key) fails here instead of at
a city's next start."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, LargeBinary, MetaData, Numeric, func, select

from api import database
from engine.db import Database
from tests.conftest import IN_CI, PG_ADMIN_URL, PG_TEST_DB


def _revisions(db: Database) -> list[str]:
    script = ScriptDirectory.from_config(database.alembic_config(db))
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def _dummy(column) -> object:
    t = column.type
    if isinstance(t, Boolean):
        return False
    if isinstance(t, DateTime):
        return datetime(2026, 1, 1, tzinfo=UTC)
    if isinstance(t, Date):
        return date(2026, 1, 1)
    if isinstance(t, Integer):
        return 1
    if isinstance(t, Float | Numeric):
        return 1.0
    if isinstance(t, JSON):
        return {}
    if isinstance(t, LargeBinary):
        return b"1"
    return "1"[: getattr(t, "length", None) or 1]


def _fill(db: Database) -> int:
    """One row in every empty table (foreign keys pointing at the rows of the tables they reference);
    the number of tables filled."""
    md = MetaData()
    md.reflect(db.engine)
    rows: dict[str, dict] = {}
    filled = 0
    with db.engine.begin() as conn:
        for table in md.sorted_tables:
            if table.name == "alembic_version":
                continue
            existing = conn.execute(select(table).limit(1)).mappings().first()
            if existing is None:
                values = {}
                for column in table.columns:
                    fk = next(iter(column.foreign_keys), None)
                    if fk is not None and fk.column.table.name in rows:
                        values[column.name] = rows[fk.column.table.name][fk.column.name]
                    elif not column.nullable or column.primary_key:
                        values[column.name] = _dummy(column)
                conn.execute(table.insert().values(**values))
                filled += 1
                existing = conn.execute(select(table).limit(1)).mappings().first()
            rows[table.name] = dict(existing)
    return filled


def _upgrade_step_by_step(db: Database) -> None:
    revisions = _revisions(db)
    assert len(revisions) > 3
    for revision in revisions:
        database.upgrade(db, revision)
        _fill(db)
    md = MetaData()
    md.reflect(db.engine)
    with db.engine.connect() as conn:
        version = conn.execute(select(md.tables["alembic_version"].c.version_num)).scalar()
        empty = [t.name for t in md.sorted_tables if not conn.execute(select(func.count()).select_from(t)).scalar()]
    assert version == revisions[-1] and empty == []


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")  # lower(username)
def test_every_migration_upgrades_a_sqlite_database_with_data(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'installed.db'}")
    try:
        _upgrade_step_by_step(db)
    finally:
        db.dispose()


def test_every_migration_upgrades_a_postgresql_database_with_data():
    import psycopg

    name = f"{PG_TEST_DB}_upgrade"  # a database of its own: the suite's stays as it is
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if IN_CI:
            raise
        pytest.skip(f"PostgreSQL not reachable (set CI=true to make this an error): {exc}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    db = Database(f"{base}/{name}")
    try:
        _upgrade_step_by_step(db)
    finally:
        db.dispose()
