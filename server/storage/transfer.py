"""Whole databases: a backup while serving, and moving an office's data from
its SQLite file to PostgreSQL when it joins a fleet."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from server.storage import schema
from server.storage.database import SQLITE, Database

CHUNK_ROWS = 1000


class TransferError(RuntimeError):
    """The copy or backup cannot be made as asked; the message says why."""


def backup(database: Database, to: Path) -> None:
    """A consistent copy of the database while it serves.

    SQLite: the online backup API into ``to`` (an SQLite file, restored by
    copying it back in place with the server stopped). PostgreSQL: ``pg_dump``
    in its custom format (restored with ``pg_restore --clean --if-exists``).
    """
    to = Path(to)
    if to.exists():
        raise TransferError(f"{to} exists already; a backup never overwrites one")
    to.parent.mkdir(parents=True, exist_ok=True)
    if database.dialect is SQLITE:
        source = sqlite3.connect(database.path)
        fd = os.open(to, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # tokens, hashes
        os.close(fd)
        target = sqlite3.connect(to)
        try:
            source.backup(target, pages=1024)  # in steps: writers wait only a moment
        finally:
            target.close()
            source.close()
        return
    dump = shutil.which("pg_dump")
    if dump is None:
        raise TransferError("pg_dump is needed: install the postgresql-client package")
    url = database.url.set(drivername="postgresql")
    done = subprocess.run(
        [dump, "--format=custom", f"--file={to}", "--dbname", url.render_as_string(False)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        to.unlink(missing_ok=True)
        raise TransferError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    to.chmod(0o600)


def copy_database(
    source: Database, target: Database, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Every row of ``source`` into ``target``, whose tables must be empty (both
    at the newest revision), in one transaction: all of it arrives, or none.
    Rows per table."""
    counts: dict[str, int] = {}
    with source.engine.connect() as reading, target.transaction() as db:
        for table in schema.metadata.sorted_tables:  # parents before children
            if db.conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                raise TransferError(
                    f"{target.describe()} already has {table.name}: copy only into an empty one"
                )
        for table in schema.metadata.sorted_tables:
            counts[table.name] = 0
            rows = reading.execution_options(yield_per=CHUNK_ROWS).execute(sa.select(table))
            for chunk in rows.mappings().partitions():
                db.conn.execute(table.insert(), [dict(row) for row in chunk])
                counts[table.name] += len(chunk)
            if progress:
                progress(table.name, counts[table.name])
        if target.dialect is not SQLITE:
            for table in schema.metadata.sorted_tables:
                key = table.c.get("id")
                if key is not None and key.autoincrement is True:
                    db.execute(  # new rows continue after the copied ones
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table.name}"
                    )
    return counts
