"""The state DB: the only channel between the kiosk and the sync daemon.

Both processes open the same SQLite file. WAL lets the kiosk commit a ticket
while the daemon reads the outbox; ``synchronous=FULL`` makes a commit survive
a power cut; the busy timeout turns short lock waits into waits, not errors.
Migrations run on every open, each one in its own transaction, numbered by
``PRAGMA user_version``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import sqlite_utils

BUSY_TIMEOUT_MS = 5000


def _m1_initial(db: sqlite_utils.Database) -> None:
    """Config, services, leases, tickets and the outbox."""
    db.execute(
        """
        CREATE TABLE config (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,          -- JSON
            updated_at TEXT NOT NULL
        )"""
    )
    db.execute(
        """
        CREATE TABLE services (
            id TEXT PRIMARY KEY,
            prefix TEXT NOT NULL,
            names TEXT NOT NULL,          -- JSON {language: name}
            texts TEXT NOT NULL DEFAULT '{}',  -- JSON {language: ticket text}
            position INTEGER NOT NULL,
            is_open INTEGER NOT NULL DEFAULT 1,
            listed INTEGER NOT NULL DEFAULT 1  -- 0: removed from config, kept for old tickets
        )"""
    )
    db.execute(
        """
        CREATE TABLE leases (
            id INTEGER PRIMARY KEY,
            service_id TEXT NOT NULL REFERENCES services(id),
            day TEXT NOT NULL,            -- branch-local ISO date
            first INTEGER NOT NULL,
            last INTEGER NOT NULL,
            next INTEGER NOT NULL,
            source TEXT NOT NULL,         -- standalone | server | reserve
            CHECK (first <= last AND next >= first AND next <= last + 1)
        )"""
    )
    db.execute("CREATE INDEX leases_by_service_day ON leases(service_id, day)")
    db.execute(
        """
        CREATE TABLE tickets (
            id TEXT PRIMARY KEY,          -- uuid4 hex, the server's dedupe key
            public_token TEXT NOT NULL UNIQUE,
            kiosk_seq INTEGER NOT NULL UNIQUE,
            service_id TEXT NOT NULL REFERENCES services(id),
            day TEXT NOT NULL,
            number INTEGER NOT NULL,
            series TEXT NOT NULL DEFAULT '',
            display TEXT NOT NULL,
            language TEXT NOT NULL,
            issued_at TEXT NOT NULL,      -- UTC wall clock, ISO 8601
            issued_mono_ns INTEGER NOT NULL,
            boot_id TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'committed'
                CHECK (state IN ('committed', 'printed', 'print_failed', 'void')),
            printed_at TEXT,
            print_error TEXT,
            UNIQUE (service_id, day, series, number)
        )"""
    )
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ticket_id TEXT NOT NULL REFERENCES tickets(id),
            created_at TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            parked_reason TEXT,
            delivered_at TEXT
        )"""
    )
    db.execute("CREATE INDEX outbox_pending ON outbox(delivered_at, parked_reason, id)")
    db.execute(
        """
        CREATE TABLE queue_snapshot (
            service_id TEXT PRIMARY KEY REFERENCES services(id) ON DELETE CASCADE,
            waiting INTEGER NOT NULL,
            estimated_wait_s INTEGER,
            updated_at TEXT NOT NULL
        )"""
    )


def _m2_device_status(db: sqlite_utils.Database) -> None:
    """What the kiosk last knew of its devices, for the admin menu and heartbeat."""
    db.execute(
        """
        CREATE TABLE device_status (
            component TEXT PRIMARY KEY,   -- printer
            state TEXT NOT NULL,          -- ok, paper_near_end, paper_out, cover_open, ...
            detail TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL
        )"""
    )


def _m3_commands(db: sqlite_utils.Database) -> None:
    """Server commands (reload, reboot, sync now) carried to the kiosk."""
    db.execute(
        """
        CREATE TABLE commands (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            received_at TEXT NOT NULL,
            done_at TEXT
        )"""
    )


def _m4_outbox_by_ticket(db: sqlite_utils.Database) -> None:
    """The daemon marks outbox rows by ticket id: a backlog of 10,000 needs an index."""
    db.execute("CREATE INDEX outbox_by_ticket ON outbox(ticket_id)")


def _m5_schedule(db: sqlite_utils.Database) -> None:
    """Opening hours and daily caps, checked at the tap; issued-today from the server."""
    db.execute("ALTER TABLE services ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}'")  # JSON
    db.execute("ALTER TABLE services ADD COLUMN daily_cap INTEGER")
    db.execute("ALTER TABLE queue_snapshot ADD COLUMN issued INTEGER")


def _m6_field_faults(db: sqlite_utils.Database) -> None:
    """What a Pi in the field needs: when the bytes went to the printer (a kill after
    that keeps the ticket), how sure the clock was, and the kiosk's own series
    numbered across days (found by service and series, not by day)."""
    db.execute("ALTER TABLE tickets ADD COLUMN handed_at TEXT")  # bytes handed to the printer
    db.execute("ALTER TABLE tickets ADD COLUMN time_source TEXT NOT NULL DEFAULT 'system'")
    db.execute("CREATE INDEX tickets_by_series ON tickets(service_id, series, kiosk_seq)")


def _m7_queue_counts(db: sqlite_utils.Database) -> None:
    """What a heartbeat's queue snapshot already counted of this kiosk's own tickets
    (those up to ``counted_seq``), what one more person adds to the wait, and
    when the snapshot arrived on this kiosk's monotonic clock (its age, whatever
    the wall clock says)."""
    db.execute("ALTER TABLE queue_snapshot ADD COLUMN counted_seq INTEGER")
    db.execute("ALTER TABLE queue_snapshot ADD COLUMN wait_per_person_s REAL")
    db.execute("ALTER TABLE queue_snapshot ADD COLUMN received_mono_ns INTEGER")
    db.execute("ALTER TABLE queue_snapshot ADD COLUMN received_boot_id TEXT")
    # the count of own tickets since the snapshot, read at every tap and home refresh
    db.execute("CREATE INDEX tickets_since ON tickets(service_id, day, kiosk_seq, state)")


def _m8_tree(db: sqlite_utils.Database) -> None:
    """The service tree (categories that open a level of their own) and where a
    service's customers go (a room, a floor), per language."""
    db.execute(
        """
        CREATE TABLE categories (
            id TEXT PRIMARY KEY,
            names TEXT NOT NULL,          -- JSON {language: name}
            position INTEGER NOT NULL DEFAULT 0,
            parent TEXT,                  -- NULL: the top level
            listed INTEGER NOT NULL DEFAULT 1  -- 0: removed from config
        )"""
    )
    db.execute("ALTER TABLE services ADD COLUMN category TEXT")  # NULL: the top level
    db.execute("ALTER TABLE services ADD COLUMN locations TEXT NOT NULL DEFAULT '{}'")  # JSON


def _m9_command_data(db: sqlite_utils.Database) -> None:
    """What a command needs (a counter ticket to print), when its bytes went to
    the printer (a kill after that never prints it again), how it ended, and
    when the server was told."""
    db.execute("ALTER TABLE commands ADD COLUMN data TEXT NOT NULL DEFAULT '{}'")  # JSON
    db.execute("ALTER TABLE commands ADD COLUMN handed_at TEXT")
    db.execute("ALTER TABLE commands ADD COLUMN result TEXT")
    db.execute("ALTER TABLE commands ADD COLUMN reported_at TEXT")


Migration = Callable[[sqlite_utils.Database], None]

#: Append only: position N is schema version N.
MIGRATIONS: list[Migration] = [
    _m1_initial,
    _m2_device_status,
    _m3_commands,
    _m4_outbox_by_ticket,
    _m5_schedule,
    _m6_field_faults,
    _m7_queue_counts,
    _m8_tree,
    _m9_command_data,
]


class SchemaTooNew(RuntimeError):
    """The DB was written by a newer Vuoro; refusing to guess at its meaning."""


def create_private(path: str | os.PathLike[str]) -> None:
    """Create the DB file 0600 (and its directory 0700) unless it exists.

    SQLite would create it 0644 less the umask: readable by every local user
    outside systemd (whose units set UMask=0077). Its -wal and -shm files take
    the DB file's mode, so they are private too. An existing file keeps the
    mode its owner gave it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def connect(path: str | os.PathLike[str]) -> sqlite_utils.Database:
    """Open (creating if needed, 0600) the state DB and bring its schema up to date.
    It holds every ticket's token: nobody but its user reads it."""
    path = Path(path)
    create_private(path)
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def migrate(db: sqlite_utils.Database) -> int:
    """Apply pending migrations; safe when two processes start at once."""
    while True:
        with transaction(db):
            version = schema_version(db)
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"state DB schema version {version} is newer than this program "
                    f"knows ({len(MIGRATIONS)}); upgrade Vuoro"
                )
            if version == len(MIGRATIONS):
                return version
            MIGRATIONS[version](db)
            db.execute(f"PRAGMA user_version = {version + 1}")


@contextlib.contextmanager
def transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: take the write lock up front.

    Taking it at BEGIN (not at the first write) means a second writer waits on
    the busy timeout instead of failing half-way with SQLITE_BUSY.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def integrity_ok(db: sqlite_utils.Database) -> bool:
    return db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- small shared verbs: the clock, the boot, the config table ----------------


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@cache
def boot_id() -> str:
    """Which boot a monotonic clock reading belongs to (it restarts at boot)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def set_config(db: sqlite_utils.Database, key: str, value: object) -> None:
    db["config"].upsert(
        {"key": key, "value": json.dumps(value), "updated_at": iso(now_utc())}, pk="key"
    )


def get_config(db: sqlite_utils.Database, key: str, default: object = None) -> object:
    row = db.execute("SELECT value FROM config WHERE key = ?", [key]).fetchone()
    return default if row is None else json.loads(row[0])
