"""One way into the database, SQLite or PostgreSQL: engine, transactions, and
the few things the two really do differently (upserts, row and named locks,
connection settings), kept here so the rest of storage has one code path.

SQL is written once, with ``?`` placeholders, rendered in each driver's own
parameter style and run through SQLAlchemy's connection (its pool, events,
error classes); Core statements where a dialect spells a thing differently.

Writes are serialised where they must be: on SQLite by ``BEGIN IMMEDIATE``
(one writer at a time, the lock taken up front so a second writer waits on
the busy timeout instead of failing half-way); on PostgreSQL, which lets
writers run side by side, by explicit row locks (:meth:`Tx.lock_row`) and
named locks (:meth:`Tx.lock_name`) where two writers must not interleave.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from server.storage import schema
from sync.state import create_private

BUSY_TIMEOUT_MS = 10_000
#: connections per process: uvicorn runs handlers in a pool of 40 threads
POOL_SIZE = 10
POOL_OVERFLOW = 40


def database_url(target: str | Path) -> sa.URL:
    """A database URL from ``--db``: ``postgresql://…`` (psycopg 3 is used),
    ``sqlite:///…``, or a plain path, which means an SQLite file."""
    text = str(target)
    if "://" not in text:
        return make_url(f"sqlite:///{Path(text).expanduser().absolute()}")
    try:
        url = make_url(text)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"not a database URL: {exc}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(
            f"a database is sqlite:///PATH or postgresql://USER@HOST/NAME, not {url.drivername}://"
        )
    return url


def describe(url: sa.URL) -> str:
    """The URL for logs and messages: never the password."""
    return url.render_as_string(hide_password=True)


@functools.lru_cache(maxsize=1024)
def _format_style(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (none of our SQL has a ``?`` or
    ``%`` inside a literal), rendered once per text."""
    return sql.replace("%", "%%").replace("?", "%s")


@dataclass(frozen=True)
class Dialect:
    """What SQLite and PostgreSQL spell differently."""

    name: str
    #: appended to a SELECT that must lock the rows it reads until commit
    for_update: str
    #: the same, skipping rows another transaction holds (a queue's next ticket)
    skip_locked: str
    #: the larger of two values in one row
    greatest: str
    #: SQL with ``?`` placeholders in the driver's own parameter style
    render: Callable[[str], str] = str


SQLITE = Dialect("sqlite", for_update="", skip_locked="", greatest="MAX")
POSTGRESQL = Dialect(
    "postgresql",
    for_update=" FOR UPDATE",
    skip_locked=" FOR UPDATE OF t SKIP LOCKED",
    greatest="GREATEST",
    render=_format_style,
)


class Rows(Protocol):
    """What a statement gives back, from SQLAlchemy or straight from the driver."""

    rowcount: int

    def fetchone(self) -> Sequence | None: ...
    def fetchall(self) -> list[Sequence]: ...
    def __iter__(self) -> Iterator[Sequence]: ...


class Tx:
    """One connection, in a transaction (or reading outside one)."""

    def __init__(self, conn: sa.Connection, dialect: Dialect, reading: bool = False) -> None:
        self.conn = conn
        self.dialect = dialect
        self._cursor = conn.connection.driver_connection.cursor if reading else None

    def execute(self, sql: str, params: Sequence | Mapping | None = None) -> Rows:
        """Run ``sql`` (``?`` placeholders and a list, or SQLAlchemy's ``:name``
        and a mapping): rows to fetch, iterate or count.

        Reads go to the driver's cursor itself: a phone's poll is a few indexed
        reads, and SQLAlchemy's bookkeeping would cost more than the reads
        (errors are still SQLAlchemy's classes). Writes go through SQLAlchemy.
        """
        if isinstance(params, Mapping):
            return self.conn.execute(sa.text(sql), dict(params))
        statement, values = self.dialect.render(sql), tuple(params or ())
        if self._cursor is None:
            return self.conn.exec_driver_sql(statement, values)
        cursor = self._cursor()
        try:
            cursor.execute(statement, values)
        except self.conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                statement, values, exc, self.conn.dialect.loaded_dbapi.Error
            ) from exc
        return cursor

    def insert(self, table: str, row: dict) -> sa.CursorResult:
        return self.conn.execute(schema.metadata.tables[table].insert().values(**row))

    def upsert(self, table: str, row: dict, keys: Sequence[str]) -> sa.CursorResult:
        """Insert ``row`` or, where its ``keys`` exist, update the other columns."""
        target = schema.metadata.tables[table]
        insert = (postgresql if self.dialect is POSTGRESQL else sqlite).insert(target)
        statement = insert.values(**row).on_conflict_do_update(
            index_elements=list(keys),
            set_={c: insert.excluded[c] for c in row if c not in keys},
        )
        return self.conn.execute(statement)

    def lock_row(self, table: str, key: str, value: object) -> bool:
        """Hold ``table``'s row ``key = value`` until commit (PostgreSQL; on
        SQLite the transaction holds the whole database already). False if
        there is no such row."""
        found = self.execute(
            f"SELECT 1 FROM {table} WHERE {key} = ?{self.dialect.for_update}", [value]
        ).fetchone()
        return found is not None

    def lock_name(self, *parts: str) -> None:
        """Hold a lock named by ``parts`` until commit: for what has no row of
        its own, such as a counter (PostgreSQL advisory lock; SQLite's
        transaction holds the whole database already)."""
        if self.dialect is POSTGRESQL:
            self.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", ["\x1f".join(parts)]
            )


class Database:
    """The engine and its transactions; one per process."""

    def __init__(self, target: str | Path) -> None:
        self.url = database_url(target)
        self.dialect = POSTGRESQL if self.url.get_backend_name() == "postgresql" else SQLITE
        if self.dialect is SQLITE:
            create_private(self.url.database)  # token hashes, password hashes, ticket tokens
            self.engine = sa.create_engine(
                self.url,
                pool_size=POOL_SIZE,
                max_overflow=POOL_OVERFLOW,
                connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            )
            sa.event.listen(self.engine, "connect", _sqlite_settings)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = sa.create_engine(
                self.url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW, pool_pre_ping=True
            )
        self._local = threading.local()
        self._writer = self.engine.execution_options(vuoro_write=True)
        self._reader = self.engine.execution_options(
            # SQLite: no BEGIN is sent (see _sqlite_begin); PostgreSQL: autocommit
            **(
                {"vuoro_read": True}
                if self.dialect is SQLITE
                else {"isolation_level": "AUTOCOMMIT"}
            )
        )

    def describe(self) -> str:
        return describe(self.url)

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None on PostgreSQL."""
        return Path(self.url.database) if self.dialect is SQLITE else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction, committed at the end of the block (rolled back
        by an exception)."""
        with self._writer.connect() as conn, conn.begin():
            yield Tx(conn, self.dialect)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Tx]:
        """Reads without a transaction: each statement sees what is committed
        when it runs (the hot paths read once and cache). On SQLite each thread
        keeps its reading connection, as a phone's poll must stay cheap; on
        PostgreSQL connections are the pool's, shared by the threads."""
        if self.dialect is SQLITE:
            conn = getattr(self._local, "reader", None)
            if conn is None or conn.closed:
                conn = self._local.reader = self._reader.connect()
            yield Tx(conn, self.dialect, reading=True)
            return
        with self._reader.connect() as conn:
            yield Tx(conn, self.dialect, reading=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_settings(dbapi_connection, _record) -> None:
    # SQLAlchemy, not the sqlite3 module, says when a transaction begins
    dbapi_connection.isolation_level = None
    for pragma in (
        f"busy_timeout = {BUSY_TIMEOUT_MS}",
        "journal_mode = WAL",
        "synchronous = FULL",
        "foreign_keys = ON",
    ):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _sqlite_begin(conn: sa.Connection) -> None:
    options = conn.get_execution_options()
    if options.get("vuoro_read"):
        return  # each statement on its own; the closing ROLLBACK is a no-op then
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("vuoro_write") else "BEGIN")
