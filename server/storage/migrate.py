"""Bring a database's tables up to date: Alembic revisions, after the pre-Alembic
steps an older SQLite file may lack (``server.storage.legacy``).

Every process opening storage does this, under a lock, so the first of several
workers starting at once migrates and the others find it done.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from server.storage import legacy
from server.storage.database import SQLITE, Database

log = logging.getLogger("vuoro.server")

BASELINE = "0001"


def _config(conn: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = conn
    return config


@functools.cache
def head() -> str:
    """The newest revision this version of the server knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def revision(database: Database) -> str | None:
    """The revision the database is at (None: empty, or older than Alembic)."""
    with database.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(database: Database) -> str | None:
    """Migrate to the newest revision; the revision it was at before."""
    with database.engine.connect() as conn:
        conn = conn.execution_options(vuoro_write=True)
        with conn.begin():
            if database.dialect is not SQLITE:
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7231)")  # one migrator
            before = MigrationContext.configure(conn).get_current_revision()
            if before == head():
                return before
            config = _config(conn)
            if before is None and _legacy_sqlite(conn):
                command.stamp(config, BASELINE)
            command.upgrade(config, "head")
    log.info("database %s: migrated from %s to %s", database.describe(), before, head())
    return before


def _legacy_sqlite(conn: sa.Connection) -> bool:
    """An SQLite file from before Alembic: its missing steps applied, so it
    has the baseline's tables (True), or no tables at all (False)."""
    if conn.dialect.name != "sqlite" or not sa.inspect(conn).has_table("tickets"):
        return False
    version = conn.exec_driver_sql("PRAGMA user_version").scalar()
    for statement in legacy.SCHEMA:
        conn.exec_driver_sql(statement)
    for number, statement in enumerate(legacy.MIGRATIONS[version:], start=version + 1):
        conn.exec_driver_sql(statement)
        conn.exec_driver_sql(f"PRAGMA user_version = {number}")
    log.info("an SQLite file at schema %d taken over by Alembic", version)
    return True
