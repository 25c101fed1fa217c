"""The tables Alembic makes are the tables storage uses, on both databases;
SQLite files from before Alembic are taken over with their data."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from server import branch_file
from server.storage import Storage, legacy, migrate, schema
from sync import protocol
from tests.server_data import DEMO, batch, paired, ticket, today
from tests.server_process import BIN, run


def test_the_migrated_tables_are_the_schema(database):
    storage = Storage(database)
    with storage.database.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert differences == []
    assert migrate.revision(storage.database) == migrate.head()


def _open(target: str) -> str | None:
    return migrate.revision(Storage(target).database)


def test_workers_opening_a_new_database_at_once_migrate_it_once(database):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        revisions = pool.map(_open, [database] * 4)
    assert revisions == [migrate.head()] * 4


@pytest.mark.parametrize("steps", [0, 12, len(legacy.MIGRATIONS)])
def test_an_sqlite_file_from_before_alembic_is_taken_over_with_its_data(tmp_path, steps):
    path = tmp_path / "server.db"
    with sqlite3.connect(path) as db:
        for statement in legacy.SCHEMA + legacy.MIGRATIONS[:steps]:
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {steps}")
        db.execute(
            "INSERT INTO branches VALUES ('demo', 'Demo', 'Europe/Helsinki', '[\"fi\"]', "
            "'https://q.example/t/{token}', '2026-01-01T00:00:00.000+00:00')"
        )
    storage = Storage(path)
    assert migrate.revision(storage.database) == migrate.head()
    assert storage.branch_settings("demo")[0]["name"] == "Demo"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(legacy.MIGRATIONS)
    storage.put_branch(*branch_file.load(DEMO))  # and it works as a new one
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=5))
    assert [r.result for r in storage.ingest(kiosk, batch(ticket(1, day=day)))] == ["created"]


def test_the_migrate_command_says_where_the_database_is(database):
    said = run("vuoro-server", "--db", database, "migrate")
    assert f"at revision {migrate.head()}" in said
    assert "password" not in said


@pytest.mark.parametrize(
    "target", ["mysql://root@localhost/vuoro", "oracle://x", "postgresql+nosuchdriver://x/y"]
)
def test_a_database_url_we_cannot_use_is_refused_clearly(target):
    done = subprocess.run(
        [BIN / "vuoro-server", "--db", target, "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--db" in done.stderr and "Traceback" not in done.stderr
