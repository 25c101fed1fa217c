"""The kiosk's start on a cheap SD card: a damaged state DB, a full disk.

A damaged DB must not become a crash loop under ``Restart=always``, and must
not restart today's numbering at A001 either. So at start-up the kiosk opens
the DB through :func:`open_checked`: a file that fails SQLite's check is kept
aside for diagnosis (``state.db.damaged-<time>``), a new one is made, and what
can be read of the old one is copied over: config, services, leases, tickets
and their outbox rows (a ticket whose outbox row is lost is sent again: a
customer may hold its paper, and the server applies each ticket once). Numbering then
continues above anything that may have been handed out: the server's leases
never repeat, and the kiosk's own counters skip ``RECOVERY_GAP`` numbers past
the highest one found. A full disk is not damage: it is reported as
:class:`StateUnavailable` and the kiosk waits for space, touching nothing.
"""

from __future__ import annotations

import errno
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from sync import clock, devices, state, tickets
from sync.credentials import Credentials
from sync.state import get_config, iso, now_utc, set_config

log = logging.getLogger("vuoro.sync.recovery")

RECOVERY_GAP = 100  # numbers skipped past the highest found: the lost ones may be out there
RECOVERED_COMPONENT = "state_db"  # its device status: the admin menu and heartbeat show it
#: Copied in this order: a ticket needs its service, an outbox row its ticket.
TABLES = (
    "config",
    "categories",
    "services",
    "leases",
    "tickets",
    "outbox",
    "commands",
    "device_status",
)
_CHUNK = 500
_PROBE_LIMIT = 200_000  # rowids probed one by one past a damaged page, at most

_DAMAGE = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
_NO_SPACE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
_NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


class StateUnavailable(RuntimeError):
    """The state DB cannot be written now (disk full, read-only, I/O error).
    ``str()`` is the reason for the out-of-order screen; it may pass."""


@dataclass
class Recovered:
    damaged_copy: Path
    reason: str
    rows: dict[str, int] = field(default_factory=dict)  # copied per table
    unreadable: dict[str, int] = field(default_factory=dict)  # rows or ranges lost

    def summary(self) -> str:
        copied = ", ".join(f"{n} {t}" for t, n in self.rows.items() if n)
        lost = ", ".join(f"{t}: {n} unreadable" for t, n in self.unreadable.items() if n)
        return (
            f"damaged state DB kept as {self.damaged_copy.name} ({self.reason}); "
            f"salvaged {copied or 'nothing'}{'; ' + lost if lost else ''}"
        )


def unavailable(exc: BaseException) -> StateUnavailable | None:
    """The :class:`StateUnavailable` an error means, or None if it is something else."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _NO_SPACE:
        return StateUnavailable(f"cannot write the state DB: {exc} (disk full?)")
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
        return StateUnavailable(f"cannot write the state directory: {exc.strerror}")
    return None


def damaged(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in _DAMAGE


def open_checked(path: Path) -> tuple[sqlite_utils.Database, Recovered | None]:
    """The state DB, checked; a damaged one is set aside and salvaged first.

    Raises :class:`StateUnavailable` when the disk refuses (nothing is moved).
    """
    try:
        db = state.connect(path)
        verdict = db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict == "ok":
            return db, None
        db.close()
        reason = f"check: {verdict[:200]}"
    except (sqlite3.Error, OSError) as exc:
        if problem := unavailable(exc):
            raise problem from exc
        if not damaged(exc):
            raise
        reason = str(exc)
    log.error("state DB %s is damaged (%s): keeping it aside and salvaging", path, reason)
    try:
        recovered = recover(path, reason)
        return state.connect(path), recovered
    except (sqlite3.Error, OSError) as exc:
        if problem := unavailable(exc):
            raise problem from exc
        raise


def recover(path: Path, reason: str) -> Recovered:
    """Move the damaged DB aside (with its WAL), make a new one, copy what reads."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
    recovered = Recovered(aside, reason)
    db = state.connect(path)
    try:
        _salvage(aside, db, recovered)
        with state.transaction(db):
            _restore_pairing(db, path.parent)
            _continue_numbering(db)
            devices.record(db, RECOVERED_COMPONENT, "recovered", recovered.summary())
    finally:
        db.close()
    log.warning("%s", recovered.summary())
    return recovered


def _salvage(aside: Path, db: sqlite_utils.Database, recovered: Recovered) -> None:
    try:
        source = sqlite3.connect(f"file:{aside}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        recovered.unreadable["file"] = 1
        log.error("damaged state DB cannot be opened at all: %s", exc)
        return
    try:
        for table in TABLES:
            recovered.rows[table], recovered.unreadable[table] = _copy_table(source, db, table)
        with state.transaction(db):  # a ticket whose outbox row was lost is sent again:
            db.execute(  # the server applies each ticket id once, so that is safe
                "INSERT INTO outbox (ticket_id, created_at) SELECT id, issued_at FROM tickets "
                "WHERE id NOT IN (SELECT ticket_id FROM outbox) ORDER BY kiosk_seq"
            )
    finally:
        source.close()


def _copy_table(
    source: sqlite3.Connection, db: sqlite_utils.Database, table: str
) -> tuple[int, int]:
    """Copy every readable row of ``table``; (copied, unreadable)."""
    try:
        columns = [r[1] for r in source.execute(f"PRAGMA table_info({table})")]
    except sqlite3.Error:
        return 0, 1
    wanted = [c for c in columns if c in db[table].columns_dict]
    if not wanted:
        return 0, 1 if not columns else 0
    names = ", ".join(wanted)
    insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(wanted))})"
    copied = lost = 0
    with state.transaction(db):
        for row in _readable_rows(source, table, names, counter := [0]):
            try:
                copied += db.execute(insert, list(row)).rowcount
            except sqlite3.IntegrityError:  # e.g. an outbox row whose ticket was lost
                lost += 1
    return copied, lost + counter[0]


def _readable_rows(
    source: sqlite3.Connection, table: str, names: str, errors: list[int]
) -> Iterator[tuple]:
    """Rows in rowid order, in chunks; past a damaged page, rowid by rowid."""
    last = 0
    try:
        top = source.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.Error:
        top = _PROBE_LIMIT
    while last < top:
        try:
            rows = source.execute(
                f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                [last, _CHUNK],
            ).fetchall()
        except sqlite3.Error:
            end = min(top, last + _PROBE_LIMIT)
            for rowid in range(last + 1, end + 1):  # probe past the bad page
                try:
                    row = source.execute(
                        f"SELECT rowid, {names} FROM {table} WHERE rowid = ?", [rowid]
                    ).fetchone()
                except sqlite3.Error:
                    errors[0] += 1  # a row on a damaged page, lost
                    continue
                if row is not None:
                    yield row[1:]
                    last = rowid
                    break
            else:
                return
            continue
        if not rows:
            return
        for row in rows:
            yield row[1:]
        last = rows[-1][0]


def _restore_pairing(db: sqlite_utils.Database, state_dir: Path) -> None:
    """A paired kiosk stays paired: credentials.json says with whom."""
    credentials = Credentials.load(state_dir)
    if credentials is None or get_config(db, "mode") == "paired":
        return
    set_config(db, "mode", "paired")
    set_config(db, "reserve_tag", credentials.reserve_tag)
    set_config(db, "kiosk_id", credentials.kiosk_id)
    set_config(db, "server", credentials.server)


def _continue_numbering(db: sqlite_utils.Database) -> None:
    """Never hand out again a number that may be on paper: skip ``RECOVERY_GAP``
    past the highest found, on every day found and today."""
    today = tickets.branch_day(db, clock.read(db).moment)
    services = [r[0] for r in db.execute("SELECT id FROM services")]
    days = {r[0] for r in db.execute("SELECT DISTINCT day FROM tickets")} | {today}
    for service_id in services:
        for day in days:
            highest = db.execute(
                "SELECT MAX(number) FROM tickets WHERE service_id = ? AND day = ? AND series = ''",
                [service_id, day],
            ).fetchone()[0]
            top = (highest or 0) + RECOVERY_GAP
            db.execute(  # leases found go on above it...
                "UPDATE leases SET next = MAX(next, MIN(last + 1, ?)) "
                "WHERE service_id = ? AND day = ? AND first <= ?",
                [top + 1, service_id, day, top],
            )
            db["leases"].insert(  # ...and a new standalone lease starts above it
                {
                    "service_id": service_id,
                    "day": day,
                    "first": 1,
                    "last": top,
                    "next": top + 1,
                    "source": "standalone",
                }
            )
    floors = {}
    for service_id in services:
        row = db.execute(
            "SELECT number FROM tickets WHERE service_id = ? AND series != '' "
            "ORDER BY kiosk_seq DESC LIMIT 1",
            [service_id],
        ).fetchone()
        floors[service_id] = ((row[0] if row else 0) + RECOVERY_GAP) % tickets.OWN_SERIES_SIZE
    seq = db.execute("SELECT COALESCE(MAX(kiosk_seq), 0) FROM tickets").fetchone()[0]
    set_config(db, tickets.OWN_SERIES_FLOOR_KEY, {"after_seq": seq, "numbers": floors})
    set_config(db, tickets.KIOSK_SEQ_FLOOR_KEY, seq + 100 * RECOVERY_GAP)
    set_config(db, "recovered_at", iso(now_utc()))
