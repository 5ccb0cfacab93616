"""Database plumbing: declarative base, UTC datetimes, engine and session factory.

One `Database` object per process, passed explicitly; nothing here is global state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, DateTime, Executable, bindparam, create_engine, event, exc, insert, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    import psycopg


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave for a multi-threaded embedded server: WAL, and BEGIN IMMEDIATE so that
    every transaction takes the write lock up front (our analogue of SELECT ... FOR UPDATE)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:
        read_only = conn.get_execution_options().get("gridloop_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def insert_all(table) -> Executable:
    """`INSERT INTO table (<every column but an autoincrement key>) VALUES (...)`, with a parameter per
    column named after it: the same statement whatever keys the first parameter set has, and no
    RETURNING of generated keys (nobody reads them)."""
    columns = [c for c in table.c if not (c.primary_key and c.autoincrement is True)]
    return insert(table).values({c.key: bindparam(c.key) for c in columns}).inline()


class Prepared:
    """A Core statement for the hot path, run by `Database.run` / `Database.rows`.

    On PostgreSQL it is compiled once and then executed straight on the psycopg cursor of the
    SQLAlchemy connection (in the same transaction): for the small statements of a change,
    SQLAlchemy's per-execution work (cache key, execution context, result metadata built from
    psycopg's column descriptions) costs more than the server does. Values go through the types'
    own bind and result processors (UTC datetimes, JSON), so callers get what `Connection.execute`
    gives; errors are raised as the same SQLAlchemy exceptions. Elsewhere (SQLite) it is simply
    `Connection.execute`. Statements with expanding (IN-list) parameters do not belong here."""

    __slots__ = ("_compiled", "stmt")

    def __init__(self, stmt: Executable) -> None:
        self.stmt = stmt
        self._compiled: dict[tuple, tuple] = {}

    def for_postgres(self, dialect) -> tuple:
        """(SQL text, (values compiled in, names that need a value, bind processors), column keys,
        result processors)."""
        key = (type(dialect), dialect.server_version_info)
        found = self._compiled.get(key)
        if found is None:
            stmt = cast(ClauseElement, self.stmt)  # text(), insert(), select() ... are ClauseElements too
            compiled = cast(SQLCompiler, stmt.compile(dialect=dialect))  # not DDL: compiled by the SQL compiler
            defaults = compiled.construct_params(_check=False)  # the values compiled into the statement
            required = frozenset(name for name, bind in compiled.binds.items() if name in defaults and bind.required)
            binds = tuple((name, proc) for name, bind in compiled.binds.items() if name in defaults
                          and (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None)
            columns = getattr(self.stmt, "exported_columns", None)  # SELECT columns, or RETURNING
            names = tuple(columns.keys()) if columns is not None else ()
            results = tuple((name, proc) for name, col in columns.items()
                            if (proc := col.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
                            ) if columns is not None else ()
            found = self._compiled[key] = (compiled.string, (defaults, required, binds), names, results)
        return found


_ADVISORY_XACT_LOCK = Prepared(text("SELECT pg_advisory_xact_lock(:k)"))
_NOTIFY = Prepared(text("SELECT pg_notify(:c, :p)"))


class Database:
    """Owns the SQLAlchemy engine and hands out sessions; knows the dialect's locking idioms."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        kwargs: dict = {"echo": echo, "future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            # No pre-ping (a round trip per checkout); stale connections are recycled instead, and a
            # request that meets a dropped connection gets 503 and may be retried.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)
        self.engine: Engine = create_engine(url, **kwargs)
        self._driver_error: type[Exception] | tuple = ()  # psycopg's base error, for the direct paths
        self._direct = self.is_postgres and not echo  # Prepared statements straight on psycopg (not logged)
        if self.is_postgres:
            import psycopg

            self._driver_error = psycopg.Error
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=False)
        # Reads on PostgreSQL run in autocommit: under READ COMMITTED every statement takes its own
        # snapshot inside a transaction too, so nothing changes for the reader, but BEGIN and ROLLBACK
        # (two round trips) go away, and so does psycopg's reset of its prepared statements that
        # every ROLLBACK causes. SQLite reads keep a (deferred) transaction: there it is a snapshot.
        self._reads = (self.engine.execution_options(isolation_level="AUTOCOMMIT") if self.is_postgres
                       else self.engine.execution_options(gridloop_read_only=True))
        self._read_sessions = sessionmaker(self._reads, expire_on_commit=False, autoflush=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: commit on success, roll back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def write_session(self) -> Session:
        """A new session for writing, whose transaction the caller begins and ends (UnitOfWork)."""
        return self._sessions()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads (on SQLite it does not take the write lock)."""
        with self._read_sessions() as session:
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """`transaction()` for Core statements only: a connection inside one transaction, committed on
        success and rolled back on any error (no ORM session to set up and tear down)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """`session()` for Core statements only: a connection for reads."""
        with self._reads.connect() as conn:
            yield conn

    @contextmanager
    def pipeline(self, conn: Connection) -> Iterator[None]:
        """Send the statements executed inside as one batch: on PostgreSQL in psycopg's pipeline mode,
        one round trip for all of them instead of one each; elsewhere they simply run one by one.
        Only for statements whose results nobody reads (writes, NOTIFY), in a transaction: the server
        still runs them in order, and the first failure aborts the rest and the transaction. Errors
        surface when the block ends, as the SQLAlchemy exceptions the statements would have raised."""
        if not self.is_postgres:
            yield
            return
        raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)  # an open psycopg connection
        try:
            with raw.pipeline():
                yield
        except self._driver_error as error:  # raised by the final sync, outside SQLAlchemy's wrapping
            raise _translated(conn, raw, error, None, None, cast("type[Exception]", self._driver_error)) from error

    def run(self, conn: Connection, prepared: Prepared, params: dict[str, Any] | list[dict[str, Any]]) -> None:
        """Execute a statement whose result nobody reads (a list of parameter sets: executemany)."""
        if not self._direct:
            conn.execute(prepared.stmt, params)
            return
        sql, binding, _names, _results = prepared.for_postgres(self.engine.dialect)
        if isinstance(params, list):
            many = len(params) != 1
            values = [_bound(binding, p) for p in params] if many else _bound(binding, params[0])
        else:
            many = False
            values = _bound(binding, params)
        raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)  # an open psycopg connection
        try:
            with raw.cursor() as cur:
                _announce(conn, cur, sql, values, many)
                if many:
                    cur.executemany(sql, values)
                else:
                    cur.execute(sql, values)
        except self._driver_error as error:
            raise _translated(conn, raw, error, sql, values, cast("type[Exception]", self._driver_error)) from error

    def rows(self, conn: Connection, prepared: Prepared, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Execute a query; its rows as dictionaries keyed by the selected columns' keys."""
        if not self._direct:
            return [dict(row._mapping) for row in conn.execute(prepared.stmt, params)]
        sql, binding, names, results = prepared.for_postgres(self.engine.dialect)
        values = _bound(binding, params)
        raw = cast("psycopg.Connection[Any]", conn.connection.dbapi_connection)  # an open psycopg connection
        try:
            with raw.cursor() as cur:
                _announce(conn, cur, sql, values, False)
                cur.execute(sql, values)
                found = cur.fetchall()
        except self._driver_error as error:
            raise _translated(conn, raw, error, sql, values, cast("type[Exception]", self._driver_error)) from error
        out = [dict(zip(names, row, strict=True)) for row in found]
        if results:
            for row in out:
                for name, proc in results:
                    row[name] = proc(row[name])
        return out

    def advisory_xact_lock(self, session: Session | Connection, key: int) -> None:
        """Serialise a critical section until commit (PostgreSQL); SQLite already holds the write lock."""
        if self.is_postgres:
            self._run_any(session, _ADVISORY_XACT_LOCK, {"k": key})

    def notify(self, session: Session | Connection, channel: str, payload: str = "") -> None:
        """Transactional wake-up signal for the scheduler (delivered on commit, PostgreSQL only)."""
        if self.is_postgres:
            self._run_any(session, _NOTIFY, {"c": channel, "p": payload})

    def _run_any(self, session: Session | Connection, prepared: Prepared, params: dict[str, Any]) -> None:
        if isinstance(session, Connection):
            self.run(session, prepared, params)
        else:
            session.execute(prepared.stmt, params)

    def dispose(self) -> None:
        self.engine.dispose()


def _bound(binding: tuple, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as the statement takes them: compiled-in values added, types' processors applied."""
    defaults, required, binds = binding
    if not required <= params.keys():
        raise exc.InvalidRequestError(f"a value is required for bind parameter(s) {sorted(required - params.keys())}")
    values = {**defaults, **params}
    for name, proc in binds:
        values[name] = proc(values[name])
    return values


def _announce(conn: Connection, cursor, sql: str, params, many: bool) -> None:
    """Tell `before_cursor_execute` listeners (statement counters, tracing) about a direct execution,
    as SQLAlchemy would (without an execution context; a listener cannot rewrite the statement)."""
    listeners = conn.dispatch.before_cursor_execute
    if listeners:
        for listener in listeners:
            listener(conn, cursor, sql, params, None, many)


def _translated(conn: Connection, raw, error: Exception, sql: str | None, params, base: type) -> Exception:
    """A psycopg error as the SQLAlchemy exception `Connection.execute` would have raised (and a
    connection that broke invalidated, as SQLAlchemy does)."""
    if raw.broken:
        conn.invalidate(error)
    return exc.DBAPIError.instance(sql, params, error, base)


def given(*conditions) -> list:
    """The filter conditions that apply: `None` stands for a filter the caller did not ask for."""
    return [c for c in conditions if c is not None]


def page(db: Database, stmt, order_by: list, offset: int, limit: int, *, count_cap: int | None = None
         ) -> tuple[list, int]:
    """One page of ORM rows of `stmt` and how many there are in all — or, with `count_cap`, at most
    that many (an exact count of a large table reads all of it; callers say the total is capped)."""
    from sqlalchemy import func, select

    counted = stmt.limit(count_cap) if count_cap else stmt
    with db.session() as s:
        total = s.scalar(select(func.count()).select_from(counted.subquery()))
        rows = list(s.scalars(stmt.order_by(*order_by).offset(offset).limit(limit)))
    return rows, total or 0
