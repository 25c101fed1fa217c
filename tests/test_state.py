"""The state DB: durable settings, migrations, and the write transaction."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from sync import state


def test_connection_settings_make_commits_durable_and_shared(tmp_path):
    db = state.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] == state.BUSY_TIMEOUT_MS
    assert state.schema_version(db) == len(state.MIGRATIONS)
    assert {"config", "services", "leases", "tickets", "outbox"} <= set(db.table_names())
    assert state.integrity_ok(db)


def test_reopening_does_not_migrate_twice(tmp_path):
    state.connect(tmp_path / "state.db").close()
    db = state.connect(tmp_path / "state.db")
    assert state.schema_version(db) == len(state.MIGRATIONS)


def test_a_db_from_a_newer_vuoro_is_refused_not_guessed(tmp_path):
    db = state.connect(tmp_path / "state.db")
    db.execute(f"PRAGMA user_version = {len(state.MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(state.SchemaTooNew, match="upgrade Vuoro"):
        state.connect(tmp_path / "state.db")


def test_transaction_rolls_back_everything_on_error(tmp_path):
    db = state.connect(tmp_path / "state.db")
    with pytest.raises(sqlite3.IntegrityError), state.transaction(db):
        db["config"].insert({"key": "a", "value": "1", "updated_at": "now"})
        db["config"].insert({"key": "a", "value": "2", "updated_at": "now"})
    assert db["config"].count == 0
    assert not db.conn.in_transaction


def _open(path: str) -> int:
    return state.schema_version(state.connect(path))


def test_two_processes_opening_a_new_db_at_once_both_get_the_schema(tmp_path):
    path = str(tmp_path / "state.db")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        versions = pool.map(_open, [path] * 8)
    assert versions == [len(state.MIGRATIONS)] * 8
