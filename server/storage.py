"""The server's storage: branches, services, kiosks, pairing codes, number
counters and leases, tickets. Kept narrow (verbs, not an ORM) so another
database can stand in for SQLite when a fleet outgrows it.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import functools
import hashlib
import hmac
import json
import logging
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server import estimate, throttle
from sync import protocol
from sync.state import create_private
from sync.state import transaction as state_transaction

log = logging.getLogger("vuoro.server")

BUSY_TIMEOUT_MS = 10_000
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8
RESERVE_TAGS = [f"{letter}{digit}" for letter in "KLMNPRSTUVWXYZ" for digit in "123456789"]
ESTIMATE_TTL_S = 10.0
POSITION_TTL_S = 1.0
#: Numbers one kiosk may hold leased and unused per service and day: a kiosk asks
#: for 100 at a time (at most 1,000); more than this is not a kiosk's need.
LEASE_UNUSED_MAX = 2000
LEASE_MIDNIGHT_SLACK_MIN = 10
MAX_LIVE_CODES = 10  # unused, unexpired pairing codes per branch
MAX_CODE_TTL_S = 7 * 86400
#: wrong pairing codes: ten at once from an address, then one per 10 s; from
#: everywhere together a hundred at once, then two a second
PAIR_ADDRESS = throttle.Bucket("pair-address", capacity=10, leak_s=10)
PAIR_SERVER = throttle.Bucket("pair-server", capacity=100, leak_s=0.5)
_code_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class Rejected(ValueError):
    """A request that can never succeed as sent; the message is the reason."""


class Unauthorized(PermissionError):
    pass


class CounterBusy(Rejected):
    """The counter still has a ticket called: it is served (or marked) first."""

    def __init__(self, counter: str, number: str) -> None:
        super().__init__(f"{number} is still called at counter {counter}")
        self.counter, self.number = counter, number


class Throttled(Exception):
    """Too many failures from here (or everywhere): try again after ``seconds``."""

    def __init__(self, what: str, seconds: int) -> None:
        super().__init__(f"{what}; try again in {seconds} s")
        self.seconds = seconds


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _code_matches(stored: str, code: str) -> bool:
    """Is ``code`` the pairing code stored as ``stored`` (Argon2, or the plain
    SHA-256 of codes made before it)?"""
    if not stored.startswith("$argon2"):
        return hmac.compare_digest(stored, _hash(code))
    try:
        return _code_hasher.verify(stored, code)
    except (VerificationError, InvalidHashError):
        return False


SCHEMA = [
    """CREATE TABLE IF NOT EXISTS branches (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, timezone TEXT NOT NULL,
        languages TEXT NOT NULL, ticket_url_template TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS services (
        branch_id TEXT NOT NULL REFERENCES branches(id), id TEXT NOT NULL,
        prefix TEXT NOT NULL, names TEXT NOT NULL, texts TEXT NOT NULL DEFAULT '{}',
        position INTEGER NOT NULL, is_open INTEGER NOT NULL DEFAULT 1, daily_cap INTEGER,
        listed INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (branch_id, id), UNIQUE (branch_id, prefix))""",
    """CREATE TABLE IF NOT EXISTS kiosks (
        id TEXT PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        name TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE, reserve_tag TEXT NOT NULL,
        created_at TEXT NOT NULL, revoked_at TEXT, last_seen_at TEXT,
        last_heartbeat TEXT, applied_seq INTEGER NOT NULL DEFAULT 0,
        UNIQUE (branch_id, reserve_tag))""",
    """CREATE TABLE IF NOT EXISTS pairing_codes (
        code_hash TEXT PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        expires_at TEXT NOT NULL, used_at TEXT)""",
    """CREATE TABLE IF NOT EXISTS counters (
        branch_id TEXT NOT NULL, service_id TEXT NOT NULL, day TEXT NOT NULL,
        next INTEGER NOT NULL, PRIMARY KEY (branch_id, service_id, day))""",
    """CREATE TABLE IF NOT EXISTS leases (
        id INTEGER PRIMARY KEY, kiosk_id TEXT NOT NULL REFERENCES kiosks(id),
        branch_id TEXT NOT NULL, service_id TEXT NOT NULL, day TEXT NOT NULL,
        first INTEGER NOT NULL, last INTEGER NOT NULL, created_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS leases_lookup ON leases(kiosk_id, service_id, day)",
    # a ticket's lease in one step, however many leases the kiosk holds
    "CREATE INDEX IF NOT EXISTS leases_by_first ON leases(kiosk_id, service_id, day, first)",
    "CREATE INDEX IF NOT EXISTS leases_by_day ON leases(branch_id, day)",  # pruning old days
    """CREATE TABLE IF NOT EXISTS tickets (
        id TEXT PRIMARY KEY, branch_id TEXT NOT NULL, service_id TEXT NOT NULL,
        kiosk_id TEXT, public_token TEXT NOT NULL UNIQUE, day TEXT NOT NULL,
        number INTEGER NOT NULL, series TEXT NOT NULL DEFAULT '', display TEXT NOT NULL,
        kiosk_seq INTEGER, language TEXT NOT NULL, issued_at_kiosk TEXT,
        queued_at TEXT NOT NULL, received_at TEXT NOT NULL,
        status TEXT NOT NULL,  -- waiting, void, called, served, no_show, cancelled
        print_state TEXT NOT NULL DEFAULT 'printed',
        UNIQUE (branch_id, service_id, day, series, number))""",
    "CREATE INDEX IF NOT EXISTS tickets_queue ON tickets(branch_id, service_id, status, queued_at)",
    "CREATE INDEX IF NOT EXISTS tickets_by_kiosk ON tickets(kiosk_id, kiosk_seq)",
    """CREATE TABLE IF NOT EXISTS commands (
        id INTEGER PRIMARY KEY, kiosk_id TEXT NOT NULL REFERENCES kiosks(id),
        kind TEXT NOT NULL, created_at TEXT NOT NULL, delivered_at TEXT)""",
]


@dataclass(frozen=True)
class _BatchContext:
    """What every ticket of one batch is checked against, read once."""

    zone: ZoneInfo
    services: set[str]
    days: set[str]  # whose queues take tickets now
    leases: list[tuple[str, str, int, int]]  # found so far: a batch's tickets share a few


@dataclass(frozen=True)
class Placement:
    """Where a received ticket goes: the day whose queue it joins and its place
    time there, or no day at all (``parked`` says why) when nobody can tell.
    ``believed`` is False when the kiosk's clock put the ticket outside its day
    or after it arrived: then ``queued`` is only the arrival."""

    day: str
    queued: datetime
    parked: str = ""
    believed: bool = True


def day_bounds(day: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """When the branch's ``day`` begins and the next one begins."""
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    return start, start + timedelta(days=1)


def ingest_days(received: datetime, zone: ZoneInfo) -> set[str]:
    """The days whose queues take a ticket arriving at ``received``: the branch's
    today and yesterday (a kiosk offline over midnight), and tomorrow in the
    last minutes before midnight (a kiosk a little fast, as for leases)."""
    local = received.astimezone(zone)
    slack = timedelta(minutes=LEASE_MIDNIGHT_SLACK_MIN)
    return {
        local.date().isoformat(),
        (local.date() - timedelta(days=1)).isoformat(),
        (received + slack).astimezone(zone).date().isoformat(),
    }


def place(
    batch: protocol.TicketBatch, t: protocol.TicketIn, received: datetime, zone: ZoneInfo
) -> Placement:
    """When the ticket was really issued, on the server's clock, and so its day.

    Same boot: the kiosk's monotonic clock says how long before sending it was
    issued, whatever its wall clock said; the ticket joins the queue of the
    real day that gives (a kiosk unsure of its clock sends such tickets from
    its own series, numbered across days, so any day is safe for them).
    Otherwise the kiosk's wall clock, shifted by how wrong it was at send time,
    within the day the kiosk gave (its lease's day) — unless the kiosk said it
    was unsure of that clock: then the day is unknowable and the ticket is
    parked for staff. A wall clock that puts the ticket before its day began or
    after it arrived is not believed: nobody can say when it was issued.
    """
    if t.boot_id and t.boot_id == batch.boot_id and t.issued_mono_ns <= batch.sent_mono_ns:
        moment = received - timedelta(microseconds=(batch.sent_mono_ns - t.issued_mono_ns) / 1000)
        return Placement(moment.astimezone(zone).date().isoformat(), moment)
    if t.time_source == "unsure":
        return Placement(t.day, received, "issue_time_unknown")
    start, end = day_bounds(t.day, zone)
    try:
        moment = protocol.parse_moment(t.issued_at) + (
            received - protocol.parse_moment(batch.sent_at)
        )
    except (ValueError, OverflowError):
        return Placement(t.day, received, believed=False)
    if start <= moment <= min(received, end):
        return Placement(t.day, moment)
    return Placement(t.day, received, believed=False)


#: Changes to the schema above, in order; PRAGMA user_version counts the applied ones.
MIGRATIONS = [
    "ALTER TABLE tickets ADD COLUMN counter TEXT",
    "ALTER TABLE tickets ADD COLUMN called_at TEXT",
    "ALTER TABLE tickets ADD COLUMN finished_at TEXT",
    "ALTER TABLE tickets ADD COLUMN started_at TEXT",
    """CREATE TABLE staff (
        id INTEGER PRIMARY KEY, branch_id TEXT NOT NULL REFERENCES branches(id),
        username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL, counter TEXT NOT NULL,
        services TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL)""",
    """CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY, staff_id INTEGER NOT NULL REFERENCES staff(id),
        csrf TEXT NOT NULL, expires_at TEXT NOT NULL)""",
    """CREATE TABLE login_failures (
        key TEXT PRIMARY KEY, failures INTEGER NOT NULL, locked_until TEXT)""",
    """CREATE TABLE feedback (
        ticket_id TEXT PRIMARY KEY REFERENCES tickets(id),
        rating INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
        comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL)""",
    # the queue a ticket waits in: its own service's, unless staff transferred it
    "ALTER TABLE tickets ADD COLUMN queue_id TEXT",
    "UPDATE tickets SET queue_id = service_id",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, status, queued_at)",
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at)",
    # a counter calls waiting tickets of higher-priority services first
    "ALTER TABLE services ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
    # opening hours, date exceptions and last-ticket time (sync.schedule), as JSON
    "ALTER TABLE services ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}'",
    # managers edit their branch; staff only call
    "ALTER TABLE staff ADD COLUMN role TEXT NOT NULL DEFAULT 'staff'",
    "ALTER TABLE kiosks ADD COLUMN renamed_at TEXT",
    # a ticket nobody can place in a day's queue waits here for staff, with the reason
    "ALTER TABLE tickets ADD COLUMN park_reason TEXT",
    # failures that leak away (server.throttle): per address, per account, per server
    "CREATE TABLE throttle (key TEXT PRIMARY KEY, level REAL NOT NULL, updated_at REAL NOT NULL)",
    "CREATE INDEX throttle_age ON throttle(updated_at)",
    "DROP TABLE login_failures",
    # a counter's called ticket, checked at every call
    "CREATE INDEX tickets_at_counter ON tickets(branch_id, counter, status)",
    # the calling order's tie-break too, so a place among tickets of one millisecond
    # is counted in the index alone
    "DROP INDEX tickets_waiting",
    "CREATE INDEX tickets_waiting ON tickets(branch_id, queue_id, day, status, queued_at, "
    "kiosk_seq, id)",
]


@functools.lru_cache(maxsize=4096)
def _json_cached(text: str) -> object:
    return json.loads(text)


def _json(text: str) -> dict | list:
    """Service names and branch languages, parsed once: every poll reads them.
    A copy, so no caller can change the cached value."""
    return copy.copy(_json_cached(text))


def _service_row(branch_id: str, service: dict, position: int) -> dict:
    return {
        "branch_id": branch_id,
        "id": service["id"],
        "prefix": service["prefix"],
        "names": json.dumps(service["names"], ensure_ascii=False),
        "texts": json.dumps(service.get("texts", {}), ensure_ascii=False),
        "position": position,
        "is_open": int(service.get("is_open", True)),
        "daily_cap": service.get("daily_cap"),
        "priority": int(service.get("priority", 0)),
        "schedule": json.dumps(service.get("schedule") or {}),
        "listed": 1,
    }


def _schedule_fields(data: dict) -> dict:
    """The stored schedule JSON as protocol.Service keyword arguments."""
    return {
        "hours": data.get("hours"),
        "exceptions": data.get("exceptions") or {},
        "last_ticket_min": data.get("last_ticket_min") or 0,
    }


class Storage:
    """One SQLite file; a connection per thread (uvicorn runs handlers in a pool)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        create_private(self.path)  # kiosk token hashes, staff password hashes, ticket tokens
        self._estimates: dict[str, tuple[float, dict[str, tuple[float, int]]]] = {}
        self._local = threading.local()
        self._queues: dict[tuple[str, str, str], tuple[float, list[str]]] = {}
        self._ties: dict[tuple[str, str, str, str], tuple[float, list[tuple[int, str]]]] = {}
        with self.transaction() as db:
            for statement in SCHEMA:
                db.execute(statement)
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
                db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    def _connect(self) -> sqlite_utils.Database:
        """This thread's connection, opened once (uvicorn serves from a thread pool)."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            db = self._local.db = sqlite_utils.Database(conn)
        return db

    def transaction(self) -> contextlib.AbstractContextManager[sqlite_utils.Database]:
        """``BEGIN IMMEDIATE`` on this thread's connection, as the kiosk's DB does."""
        return state_transaction(self._connect())

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite_utils.Database]:
        yield self._connect()

    # -- branches and services ---------------------------------------------

    def put_branch(self, branch: dict, services: list[dict] | None = None) -> None:
        """Create or update a branch and, when given, its services in that order
        (services left out are unlisted, kept for their old tickets)."""
        with self.transaction() as db:
            db["branches"].upsert(
                {
                    "id": branch["id"],
                    "name": branch["name"],
                    "timezone": branch["timezone"],
                    "languages": json.dumps(branch.get("languages", ["en"])),
                    "ticket_url_template": branch["ticket_url_template"],
                    "updated_at": iso(now()),
                },
                pk="id",
            )
            if services is None:
                return
            db.execute("UPDATE services SET listed = 0 WHERE branch_id = ?", [branch["id"]])
            for position, service in enumerate(services):
                db["services"].upsert(
                    _service_row(branch["id"], service, position), pk=("branch_id", "id")
                )

    def put_service(self, branch_id: str, service: dict) -> None:
        """Add or change one service (as branch_file.check_service made it); a new one
        goes last on the kiosk's screen."""
        with self.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            clash = db.execute(
                "SELECT id FROM services WHERE branch_id = ? AND prefix = ? AND id != ?",
                [branch_id, service["prefix"], service["id"]],
            ).fetchone()
            if clash:
                raise Rejected(f"prefix {service['prefix']!r} is used by {clash[0]!r}")
            row = db.execute(
                "SELECT position, listed FROM services WHERE branch_id = ? AND id = ?",
                [branch_id, service["id"]],
            ).fetchone()
            position = (
                row[0]
                if row and row[1]
                else db.execute(
                    "SELECT COALESCE(MAX(position), -1) + 1 FROM services WHERE branch_id = ?",
                    [branch_id],
                ).fetchone()[0]
            )
            row = _service_row(branch_id, service, position)
            db["services"].upsert(row, pk=("branch_id", "id"))

    def remove_service(self, branch_id: str, service_id: str) -> bool:
        """Take a service off the kiosks; its tickets and numbers stay."""
        with self.transaction() as db:
            changed = db.execute(
                "UPDATE services SET listed = 0 WHERE branch_id = ? AND id = ? AND listed = 1",
                [branch_id, service_id],
            ).rowcount
        return changed == 1

    def branch_settings(self, branch_id: str) -> tuple[dict, list[dict]]:
        """The branch and its listed services, every field (management, export)."""
        with self.reading() as db:
            b = db.execute(
                "SELECT id, name, timezone, languages, ticket_url_template FROM branches "
                "WHERE id = ?",
                [branch_id],
            ).fetchone()
            if b is None:
                raise Rejected(f"no branch {branch_id!r}")
            rows = db.execute(
                "SELECT id, prefix, names, texts, priority, is_open, schedule, daily_cap "
                "FROM services WHERE branch_id = ? AND listed = 1 ORDER BY position",
                [branch_id],
            ).fetchall()
        fields = ("id", "name", "timezone", "languages", "ticket_url_template")
        branch = dict(zip(fields, b, strict=True))
        branch["languages"] = json.loads(branch["languages"])
        services = [
            {
                "id": r[0],
                "prefix": r[1],
                "names": json.loads(r[2]),
                "texts": json.loads(r[3]),
                "priority": r[4],
                "is_open": bool(r[5]),
                "schedule": json.loads(r[6]),
                "daily_cap": r[7],
            }
            for r in rows
        ]
        return branch, services

    def has_branch(self, branch_id: str) -> bool:
        with self.reading() as db:
            return (
                db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone()
                is not None
            )

    def kiosk_config(self, branch_id: str) -> protocol.KioskConfig:
        branch, services = self.branch_settings(branch_id)
        return protocol.KioskConfig(
            branch=protocol.Branch(
                id=branch["id"],
                name=branch["name"],
                timezone=branch["timezone"],
                languages=branch["languages"],
            ),
            services=[
                protocol.Service(
                    id=s["id"],
                    prefix=s["prefix"],
                    names=s["names"],
                    texts=s["texts"],
                    is_open=s["is_open"],
                    daily_cap=s["daily_cap"],
                    **_schedule_fields(s["schedule"]),
                )
                for s in services
            ],
            ticket_url_template=branch["ticket_url_template"],
        )

    def branch_today(self, db: sqlite_utils.Database, branch_id: str) -> tuple[str, datetime]:
        """The branch-local date and the moment it began (its local midnight)."""
        zone = self._zone(db, branch_id)
        local = now().astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return local.date().isoformat(), midnight

    # -- pairing -------------------------------------------------------------

    def new_pairing_code(self, branch_id: str, ttl_s: int = 600) -> str:
        """A single-use code for pairing a kiosk with the branch, valid ``ttl_s``.

        Stored as a salted Argon2 hash, not a plain SHA-256: a code has only
        40 bits (8 of 32 characters, typed by a technician), which a leaked DB
        would give up to a GPU in minutes under a fast unsalted hash. Argon2
        (19 MiB, 2 passes, the OWASP minimum) makes each guess cost tens of
        milliseconds and memory that GPUs lack, so finding a code from the DB
        takes far longer than the code lives (10 minutes by default, a week at
        most). The price, a hash per live code at each pairing, is bounded by
        :data:`MAX_LIVE_CODES` and the throttle on wrong codes.
        """
        if ttl_s > MAX_CODE_TTL_S:
            raise Rejected(f"a pairing code lives at most {MAX_CODE_TTL_S // 86400} days")
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        code_hash = _code_hasher.hash(code)  # slow: not under the write lock
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone() is None:
                raise Rejected(f"no branch {branch_id!r}")
            db.execute(  # a day after expiry a code is nobody's business
                "DELETE FROM pairing_codes WHERE expires_at < ?",
                [iso(now() - timedelta(days=1))],
            )
            live = db.execute(
                "SELECT COUNT(*) FROM pairing_codes WHERE branch_id = ? AND used_at IS NULL "
                "AND expires_at > ?",
                [branch_id, iso(now())],
            ).fetchone()[0]
            if live >= MAX_LIVE_CODES:
                raise Rejected(
                    f"{live} pairing codes of this branch wait unused already; "
                    "use one or let them expire"
                )
            db["pairing_codes"].insert(
                {
                    "code_hash": code_hash,
                    "branch_id": branch_id,
                    "expires_at": iso(now() + timedelta(seconds=ttl_s)),
                }
            )
        return code

    def pair(self, code: str, name: str, address: str = "unknown") -> protocol.PairResponse:
        """Spend a pairing code on a new kiosk; the token is shown once, stored hashed.

        Wrong codes are throttled per source address and server-wide (leaky
        buckets, :data:`PAIR_ADDRESS`, :data:`PAIR_SERVER`): :class:`Throttled`
        while either is full, before any hashing.
        """
        source = throttle.address_key(address)
        with self.reading() as db:
            at = time.time()
            wait = max(
                throttle.wait_s(throttle.level(db, PAIR_ADDRESS, source, at), PAIR_ADDRESS),
                throttle.wait_s(throttle.level(db, PAIR_SERVER, "all", at), PAIR_SERVER),
            )
            if wait:
                raise Throttled("too many wrong pairing codes", wait)
            live = db.execute(
                "SELECT code_hash FROM pairing_codes WHERE used_at IS NULL AND expires_at > ?",
                [iso(now())],
            ).fetchall()
        code_hash = next((row[0] for row in live if _code_matches(row[0], code)), None)
        if code_hash is None:
            with self.transaction() as db:
                at = time.time()
                by_address = throttle.add(db, PAIR_ADDRESS, source, at)
                by_server = throttle.add(db, PAIR_SERVER, "all", at)
            log.info("pairing: a wrong code from %s", source)
            if throttle.wait_s(by_address, PAIR_ADDRESS) and by_address - 1 <= (
                PAIR_ADDRESS.capacity - 1
            ):
                log.warning("pairing lock-out: %s after %d wrong codes", source, by_address)
            if throttle.wait_s(by_server, PAIR_SERVER) and by_server - 1 <= (
                PAIR_SERVER.capacity - 1
            ):
                log.warning("pairing lock-out: %d wrong codes from everywhere", by_server)
            raise Unauthorized("pairing code unknown, used or expired")
        token = secrets.token_urlsafe(32)
        with self.transaction() as db:
            row = db.execute(  # checked again under the lock: a code pairs one kiosk
                "SELECT branch_id FROM pairing_codes WHERE code_hash = ? AND used_at IS NULL "
                "AND expires_at > ?",
                [code_hash, iso(now())],
            ).fetchone()
            if row is None:
                raise Unauthorized("pairing code unknown, used or expired")
            branch_id = row[0]
            taken = {
                r[0]
                for r in db.execute(
                    "SELECT reserve_tag FROM kiosks WHERE branch_id = ?", [branch_id]
                )
            }
            tag = next((t for t in RESERVE_TAGS if t not in taken), None)
            if tag is None:
                raise Rejected("this branch has no reserve series left for another kiosk")
            kiosk_id = f"k-{secrets.token_hex(6)}"
            db.execute(
                "UPDATE pairing_codes SET used_at = ? WHERE code_hash = ?",
                [iso(now()), code_hash],
            )
            db["kiosks"].insert(
                {
                    "id": kiosk_id,
                    "branch_id": branch_id,
                    "name": name,
                    "token_hash": _hash(token),
                    "reserve_tag": tag,
                    "created_at": iso(now()),
                }
            )
        return protocol.PairResponse(
            kiosk_id=kiosk_id, branch_id=branch_id, token=token, reserve_tag=tag
        )

    def kiosk_for_token(self, token: str) -> dict:
        with self.reading() as db:
            row = db.execute(
                "SELECT id, branch_id, reserve_tag, revoked_at FROM kiosks WHERE token_hash = ?",
                [_hash(token)],
            ).fetchone()
        if row is None:
            raise Unauthorized("unknown token")
        if row[3] is not None:
            raise Unauthorized("this kiosk has been revoked")
        return {"id": row[0], "branch_id": row[1], "reserve_tag": row[2]}

    def kiosks(self, branch_id: str) -> list[dict]:
        """Every kiosk of the branch with what its last heartbeat said."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT id, name, reserve_tag, revoked_at, last_seen_at, last_heartbeat "
                "FROM kiosks WHERE branch_id = ? ORDER BY created_at",
                [branch_id],
            ).fetchall()
        result = []
        for kiosk_id, name, tag, revoked, seen, beat in rows:
            heartbeat = json.loads(beat) if beat else {}
            result.append(
                {
                    "id": kiosk_id,
                    "name": name,
                    "reserve_tag": tag,
                    "revoked": bool(revoked),
                    "last_seen_at": seen,
                    "printer": heartbeat.get("printer", "unknown"),
                    "outbox": heartbeat.get("outbox"),
                    "parked": heartbeat.get("parked"),
                    "version": heartbeat.get("version", ""),
                    "out_of_order": bool(heartbeat.get("out_of_order")),
                    "clock": heartbeat.get("clock", ""),
                    "problems": heartbeat.get("problems") or [],
                }
            )
        return result

    def revoke(self, kiosk_id: str, branch_id: str | None = None) -> bool:
        """Refuse the kiosk's token from now on (it keeps printing, offline)."""
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE kiosks SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL "
                    "AND branch_id = COALESCE(?, branch_id)",
                    [iso(now()), kiosk_id, branch_id],
                ).rowcount
                == 1
            )

    def send_command(self, kiosk_id: str, kind: str, branch_id: str | None = None) -> bool:
        """Queue a command (reload, reboot, sync_now) for the kiosk's next heartbeat."""
        if kind not in protocol.COMMANDS:
            raise Rejected(f"a command is one of {', '.join(protocol.COMMANDS)}")
        with self.transaction() as db:
            known = db.execute(
                "SELECT 1 FROM kiosks WHERE id = ? AND revoked_at IS NULL "
                "AND branch_id = COALESCE(?, branch_id)",
                [kiosk_id, branch_id],
            ).fetchone()
            if known:
                db["commands"].insert(
                    {"kiosk_id": kiosk_id, "kind": kind, "created_at": iso(now())}
                )
        return known is not None

    def rename_kiosk(self, kiosk_id: str, name: str, branch_id: str | None = None) -> bool:
        name = " ".join(name.split())
        if not name or len(name) > 100 or not name.isprintable():
            raise Rejected("a kiosk name is 1 to 100 printable characters")
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE kiosks SET name = ?, renamed_at = ? WHERE id = ? "
                    "AND branch_id = COALESCE(?, branch_id)",
                    [name, iso(now()), kiosk_id, branch_id],
                ).rowcount
                == 1
            )

    # -- numbers ---------------------------------------------------------------

    def lease(self, kiosk: dict, request: protocol.LeaseRequest) -> protocol.LeaseResponse:
        """A block of numbers from the branch's counter: no one else gets them."""
        with self.transaction() as db:
            self._check_service(db, kiosk["branch_id"], request.service_id)
            self._check_day(db, kiosk["branch_id"], request.day)
            self._forget_old_leases(db, kiosk["branch_id"])
            self._check_unused(db, kiosk, request)
            first = self._take(
                db, kiosk["branch_id"], request.service_id, request.day, request.count
            )
            db["leases"].insert(
                {
                    "kiosk_id": kiosk["id"],
                    "branch_id": kiosk["branch_id"],
                    "service_id": request.service_id,
                    "day": request.day,
                    "first": first,
                    "last": first + request.count - 1,
                    "created_at": iso(now()),
                }
            )
        return protocol.LeaseResponse(
            service_id=request.service_id,
            day=request.day,
            first=first,
            last=first + request.count - 1,
        )

    def _check_unused(
        self, db: sqlite_utils.Database, kiosk: dict, request: protocol.LeaseRequest
    ) -> None:
        """A kiosk holds at most ``LEASE_UNUSED_MAX`` unused numbers per service and
        day: asking on and on would run the day's counter into the millions."""
        leased = db.execute(
            "SELECT COALESCE(SUM(last - first + 1), 0) FROM leases "
            "WHERE kiosk_id = ? AND service_id = ? AND day = ?",
            [kiosk["id"], request.service_id, request.day],
        ).fetchone()[0]
        used = db.execute(
            "SELECT COUNT(*) FROM tickets WHERE branch_id = ? AND service_id = ? AND day = ? "
            "AND series = '' AND kiosk_id = ?",
            [kiosk["branch_id"], request.service_id, request.day, kiosk["id"]],
        ).fetchone()[0]
        unused = max(leased - used, 0)
        if unused + request.count > LEASE_UNUSED_MAX:
            raise Rejected(
                f"lease_cap:{unused} numbers leased and unused; at most {LEASE_UNUSED_MAX}"
            )

    def _forget_old_leases(self, db: sqlite_utils.Database, branch_id: str) -> None:
        """Leases of the branch's days before yesterday: no ticket of those days is
        taken any more (:func:`ingest_days`), so they would only grow the table."""
        yesterday = now().astimezone(self._zone(db, branch_id)).date() - timedelta(days=1)
        db.execute(
            "DELETE FROM leases WHERE branch_id = ? AND day < ?", [branch_id, yesterday.isoformat()]
        )

    @staticmethod
    def _take(
        db: sqlite_utils.Database, branch_id: str, service_id: str, day: str, count: int
    ) -> int:
        row = db.execute(
            "SELECT next FROM counters WHERE branch_id = ? AND service_id = ? AND day = ?",
            [branch_id, service_id, day],
        ).fetchone()
        first = row[0] if row else 1
        db["counters"].upsert(
            {"branch_id": branch_id, "service_id": service_id, "day": day, "next": first + count},
            pk=("branch_id", "service_id", "day"),
        )
        return first

    @staticmethod
    def _check_service(db: sqlite_utils.Database, branch_id: str, service_id: str) -> None:
        if (
            db.execute(
                "SELECT 1 FROM services WHERE branch_id = ? AND id = ?", [branch_id, service_id]
            ).fetchone()
            is None
        ):
            raise Rejected(f"unknown_service:{service_id}")

    def _check_day(self, db: sqlite_utils.Database, branch_id: str, day: str) -> None:
        """Numbers are leased for today only: a kiosk whose clock says another day
        would print them for a queue nobody calls. Around midnight a kiosk a few
        minutes off may still ask for the day next to today."""
        zone = self._zone(db, branch_id)
        slack = timedelta(minutes=LEASE_MIDNIGHT_SLACK_MIN)
        days = {(now() + shift).astimezone(zone).date().isoformat() for shift in (-slack, slack)}
        if day not in days:
            raise Rejected(f"day_out_of_range:{day}")

    # -- tickets ---------------------------------------------------------------

    def ingest(self, kiosk: dict, batch: protocol.TicketBatch) -> list[protocol.TicketResult]:
        """Apply each ticket exactly once (the id is the key, forever)."""
        received = now()
        rows = batch.tickets
        outcomes = {
            i: f"rejected:{row.reason}"
            for i, row in enumerate(rows)
            if isinstance(row, protocol.InvalidRow)
        }
        tickets = sorted(
            ((i, row) for i, row in enumerate(rows) if isinstance(row, protocol.TicketIn)),
            key=lambda pair: pair[1].kiosk_seq,
        )
        with self.transaction() as db:
            zone = self._zone(db, kiosk["branch_id"])
            context = _BatchContext(
                zone=zone,
                services={
                    r[0]
                    for r in db.execute(
                        "SELECT id FROM services WHERE branch_id = ?", [kiosk["branch_id"]]
                    )
                },
                days=ingest_days(received, zone),
                leases=[],
            )
            placements = {i: place(batch, t, received, zone) for i, t in tickets}
            # a ticket whose clock is not believed goes just before the kiosk's next
            # believed one of the day (it was issued before it), not at the end:
            # one wrong clock must not push the kiosk's later tickets back
            following: dict[int, datetime | None] = {}
            earliest: dict[str, datetime] = {}
            for i, _t in reversed(tickets):
                placement = placements[i]
                following[i] = earliest.get(placement.day)
                if placement.believed and not placement.parked:
                    earliest[placement.day] = min(
                        placement.queued, earliest.get(placement.day, placement.queued)
                    )
            expected = db.execute(
                "SELECT applied_seq + 1 FROM kiosks WHERE id = ?", [kiosk["id"]]
            ).fetchone()[0]
            for i, ticket in tickets:
                try:
                    outcome = self._apply(
                        db, kiosk, ticket, placements[i], following[i], received, context
                    )
                except Rejected as exc:
                    outcome = f"rejected:{exc}"
                if outcome == "created" and ticket.kiosk_seq > expected:
                    # Unlike Replicache we take it anyway (a lost ticket is worse than a
                    # hole), and say so: the kiosk lost rows, e.g. a restored DB.
                    log.warning(
                        "kiosk %s: tickets %d..%d never arrived",
                        kiosk["id"],
                        expected,
                        ticket.kiosk_seq - 1,
                    )
                expected = max(expected, ticket.kiosk_seq + 1)
                outcomes[i] = outcome
            db.execute(
                "UPDATE kiosks SET last_seen_at = ?, applied_seq = MAX(applied_seq, "
                "COALESCE((SELECT MAX(kiosk_seq) FROM tickets WHERE kiosk_id = ?), 0)) "
                "WHERE id = ?",
                [iso(received), kiosk["id"], kiosk["id"]],
            )
        # in the order of the rows, one for each (a row without a usable id answers "")
        return [protocol.TicketResult(id=row.id, result=outcomes[i]) for i, row in enumerate(rows)]

    def _apply(
        self,
        db,
        kiosk: dict,
        t: protocol.TicketIn,
        placement: Placement,
        following: datetime | None,
        received: datetime,
        context: _BatchContext,
    ) -> str:
        known = db.execute("SELECT kiosk_id FROM tickets WHERE id = ?", [t.id]).fetchone()
        if known is not None:
            if known[0] != kiosk["id"]:
                raise Rejected("id_taken")
            return "duplicate"
        if t.service_id not in context.services:
            raise Rejected(f"unknown_service:{t.service_id}")
        if not placement.parked and placement.day not in context.days:
            # a queue nobody calls any more, or not yet: the customer would wait for ever
            raise Rejected(f"day_out_of_range:{placement.day}")
        if t.series:
            if t.series != kiosk["reserve_tag"]:
                raise Rejected("not_your_reserve_series")
        elif not self._leased(db, kiosk, t, context.leases):
            raise Rejected("number_not_leased")
        queued = received
        if not placement.parked:
            queued = self._fair_time(db, kiosk, t, placement, following, received, context.zone)
        try:
            db.execute(
                "INSERT INTO tickets (id, branch_id, service_id, queue_id, kiosk_id, public_token, "
                "day, number, series, display, kiosk_seq, language, issued_at_kiosk, queued_at, "
                "received_at, status, print_state, park_reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    t.id,
                    kiosk["branch_id"],
                    t.service_id,
                    t.service_id,
                    kiosk["id"],
                    t.public_token,
                    placement.day,
                    t.number,
                    t.series,
                    t.display,
                    t.kiosk_seq,
                    t.language,
                    t.issued_at,
                    iso(queued),
                    iso(received),
                    "void" if t.state == "void" else "parked" if placement.parked else "waiting",
                    t.state,
                    placement.parked or None,
                ],
            )
        except sqlite3.IntegrityError as exc:
            raise Rejected("number_or_token_taken") from exc
        return "created"

    @staticmethod
    def _leased(
        db: sqlite_utils.Database,
        kiosk: dict,
        t: protocol.TicketIn,
        found: list[tuple[str, str, int, int]],
    ) -> bool:
        """Was the ticket's number leased to this kiosk? One indexed look-up however
        many leases it holds (they never overlap), none for a lease already found."""
        if any(
            service == t.service_id and day == t.day and first <= t.number <= last
            for service, day, first, last in found
        ):
            return True
        lease = db.execute(
            "SELECT first, last FROM leases WHERE kiosk_id = ? AND service_id = ? AND day = ? "
            "AND first <= ? ORDER BY first DESC LIMIT 1",
            [kiosk["id"], t.service_id, t.day, t.number],
        ).fetchone()
        if lease is None or t.number > lease[1]:
            return False
        found.append((t.service_id, t.day, lease[0], lease[1]))
        return True

    @staticmethod
    def _fair_time(
        db: sqlite_utils.Database,
        kiosk: dict,
        t: protocol.TicketIn,
        placement: Placement,
        following: datetime | None,
        received: datetime,
        zone: ZoneInfo,
    ) -> datetime:
        """The ticket's place time: when it was issued, if believed; else just
        before the kiosk's next believed ticket, or its arrival. Never before the
        kiosk's previous ticket of the day (the kiosk's order is kept), never
        before the day began, never after it arrived or its day ended."""
        queued = placement.queued if placement.believed else following or received
        before = db.execute(
            "SELECT queued_at FROM tickets WHERE kiosk_id = ? AND kiosk_seq < ? AND day = ? "
            "ORDER BY kiosk_seq DESC LIMIT 1",
            [kiosk["id"], t.kiosk_seq, placement.day],
        ).fetchone()
        if before:
            queued = max(queued, datetime.fromisoformat(before[0]))
        start, end = day_bounds(placement.day, zone)
        return min(max(queued, start), received, end)

    @staticmethod
    def _zone(db: sqlite_utils.Database, branch_id: str) -> ZoneInfo:
        row = db.execute("SELECT timezone FROM branches WHERE id = ?", [branch_id]).fetchone()
        return ZoneInfo(row[0])

    # -- the queue -------------------------------------------------------------

    def queue(self, branch_id: str) -> dict[str, protocol.QueueState]:
        """Waiting per service, and how long a customer arriving now would wait."""
        with self.reading() as db:
            today, _ = self.branch_today(db, branch_id)
            rows = db.execute(
                "SELECT s.id, COUNT(t.id) FROM services s LEFT JOIN tickets t "
                "ON t.branch_id = s.branch_id AND t.queue_id = s.id AND t.day = ? "
                "AND t.status = 'waiting' WHERE s.branch_id = ? AND s.listed = 1 GROUP BY s.id",
                [today, branch_id],
            ).fetchall()
            issued = dict(
                db.execute(
                    "SELECT service_id, COUNT(*) FROM tickets WHERE branch_id = ? AND day = ? "
                    "AND status != 'void' GROUP BY service_id",
                    [branch_id, today],
                ).fetchall()
            )
            rates = self.estimates(db, branch_id)
        waiting = dict(rows)
        return {
            service: protocol.QueueState(
                waiting=ahead,
                estimated_wait_s=estimate.wait_in_branch(service, ahead, rates, waiting),
                issued=issued.get(service, 0),
                wait_per_person_s=round(estimate.per_person_s(service, rates), 1),
            )
            for service, ahead in rows
        }

    def estimates(self, db, branch_id: str) -> dict[str, estimate.Rate]:
        """Per service: seconds per customer, counters serving it now, arrivals per
        second lately, and its priority.

        Read at most every ``ESTIMATE_TTL_S`` per branch: every phone polling
        its ticket must not cost a scan of the day's history.
        """
        cached = self._estimates.get(branch_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        zone = self._zone(db, branch_id)
        hour_now = now().astimezone(zone).strftime("%w%H")
        samples: dict[str, list[float]] = {}
        same_hour: dict[str, list[float]] = {}
        same_hour_any_day: dict[str, list[float]] = {}
        for service, called, finished in reversed(
            db.execute(
                "SELECT queue_id, called_at, finished_at FROM tickets WHERE branch_id = ? "
                "AND status = 'served' AND called_at IS NOT NULL AND finished_at IS NOT NULL "
                "ORDER BY finished_at DESC LIMIT 1000",
                [branch_id],
            ).fetchall()
        ):
            start, end = datetime.fromisoformat(called), datetime.fromisoformat(finished)
            seconds = (end - start).total_seconds()
            samples.setdefault(service, []).append(seconds)
            slot = end.astimezone(zone).strftime("%w%H")
            if slot[1:] == hour_now[1:]:
                same_hour_any_day.setdefault(service, []).append(seconds)
                if slot == hour_now:
                    same_hour.setdefault(service, []).append(seconds)
        since = iso(now() - timedelta(seconds=estimate.ACTIVE_WINDOW_S))
        counters = dict(
            db.execute(
                "SELECT queue_id, COUNT(DISTINCT counter) FROM tickets WHERE branch_id = ? "
                "AND called_at >= ? GROUP BY queue_id",
                [branch_id, since],
            ).fetchall()
        )
        arrivals = dict(
            db.execute(
                "SELECT service_id, COUNT(*) FROM tickets WHERE branch_id = ? AND queued_at >= ? "
                "AND status != 'void' GROUP BY service_id",
                [branch_id, since],
            ).fetchall()
        )
        result = {
            service: estimate.Rate(
                seconds_each=estimate.service_time(
                    samples.get(service, []),
                    same_hour.get(service, []),
                    same_hour_any_day.get(service, []),
                ),
                counters=max(counters.get(service, 1), 1),
                arrivals_per_s=arrivals.get(service, 0) / estimate.ACTIVE_WINDOW_S,
                priority=priority,
            )
            for service, priority in db.execute(
                "SELECT id, priority FROM services WHERE branch_id = ?", [branch_id]
            )
        }
        self._estimates[branch_id] = (time.monotonic() + ESTIMATE_TTL_S, result)
        return result

    def heartbeat(self, kiosk: dict, beat: protocol.Heartbeat) -> list[protocol.Command]:
        with self.transaction() as db:
            db.execute(
                "UPDATE kiosks SET last_seen_at = ?, last_heartbeat = ? WHERE id = ?",
                [iso(now()), beat.model_dump_json(), kiosk["id"]],
            )
            rows = db.execute(
                "SELECT id, kind FROM commands WHERE kiosk_id = ? AND delivered_at IS NULL "
                "ORDER BY id",
                [kiosk["id"]],
            ).fetchall()
            db.execute(
                "UPDATE commands SET delivered_at = ? WHERE kiosk_id = ? AND delivered_at IS NULL",
                [iso(now()), kiosk["id"]],
            )
        return [protocol.Command(id=str(r[0]), kind=r[1]) for r in rows]

    def ticket_by_token(self, token: str) -> dict | None:
        """The public view of a ticket: what its holder may see, nothing more.

        Every phone in the queue polls this, so it is one indexed read plus
        cached positions and estimates; feedback is looked up only once served.
        """
        with self.reading() as db:
            row = db.execute(
                "SELECT t.display, t.queue_id, t.status, t.queued_at, t.branch_id, t.day, "
                "t.counter, t.language, s.names, b.name, b.languages, t.id, t.kiosk_seq "
                "FROM tickets t JOIN services s ON s.branch_id = t.branch_id "
                "AND s.id = t.queue_id JOIN branches b ON b.id = t.branch_id "
                "WHERE t.public_token = ?",
                [token],
            ).fetchone()
            if row is None:
                return None
            display, queue_id, status, queued_at, branch_id, day, counter = row[:7]
            position = feedback = None
            if status == "waiting":
                waiting = self._waiting(db, branch_id, queue_id, day)
                ahead = bisect.bisect_left(waiting, queued_at)
                if bisect.bisect_right(waiting, queued_at) - ahead > 1:
                    tied = self._tied(db, branch_id, queue_id, day, queued_at)
                    ahead += bisect.bisect_left(tied, (row[12] or 0, row[11]))
                position = ahead + 1
            elif status == "served":
                feedback = db.execute(
                    "SELECT comment != '' FROM feedback WHERE ticket_id = ?", [row[11]]
                ).fetchone()
            rates = self.estimates(db, branch_id)
            own = rates.get(queue_id, estimate.Rate())
            waiting_before = {  # only branches with priority services pay for this
                s: len(self._waiting(db, branch_id, s, day))
                for s, r in rates.items()
                if r.priority > own.priority and position is not None
            }
        return {
            "number": display,
            "service": _json(row[8]),
            "branch": row[9],
            "languages": _json(row[10]),
            "language": row[7],
            "status": status,
            "position": position,
            "estimated_wait_s": None
            if position is None
            else estimate.wait_in_branch(queue_id, position - 1, rates, waiting_before),
            "counter": counter,
            "feedback_given": feedback is not None,
            "personal_data": bool(feedback and feedback[0]),
        }

    #: A kiosk heard this long after a customer first looked (connect timeout and
    #: more) built its report after that customer's ticket was committed.
    ARRIVAL_MARGIN_S = 15.0
    #: A kiosk silent longer than this holds no ticket anyone is still queueing with.
    SILENT_KIOSK_S = 24 * 3600.0

    def ticket_may_arrive(self, since: datetime) -> bool:
        """Could a ticket printed before ``since`` still be on its way from a kiosk?

        The pending ticket page asks this for a token it does not know. A mistyped
        link must not say "on its way" forever, yet a kiosk offline for an hour
        still holds real tickets: so the answer is no only once every kiosk heard
        from in the last day has, well after ``since``, reported an empty outbox.
        """
        settled = iso(since + timedelta(seconds=self.ARRIVAL_MARGIN_S))
        recent = iso(now() - timedelta(seconds=self.SILENT_KIOSK_S))
        with self.reading() as db:
            rows = db.execute(
                "SELECT last_seen_at, last_heartbeat FROM kiosks WHERE revoked_at IS NULL "
                "AND COALESCE(last_seen_at, created_at) >= ?",
                [recent],
            ).fetchall()
        for seen, beat in rows:
            if seen is None or seen < settled or json.loads(beat or "{}").get("outbox", 1) != 0:
                return True
        return False

    def give_feedback(self, token: str, rating: int, comment: str) -> bool:
        """Once per served ticket; False if not served or already given."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT id, status FROM tickets WHERE public_token = ?", [token]
            ).fetchone()
            if row is None or row[1] != "served":
                return False
            return (
                db.execute(
                    "INSERT OR IGNORE INTO feedback (ticket_id, rating, comment, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    [row[0], rating, comment[:500], iso(now())],
                ).rowcount
                == 1
            )

    def daily_stats(self, branch_id: str, day: str | None = None) -> dict[str, dict]:
        """Per service for one day: issued, served, no-shows, cancelled; average and
        90th-percentile wait (from joining the queue to being called), in seconds."""
        with self.reading() as db:
            day = day or self.branch_today(db, branch_id)[0]
            rows = db.execute(
                "SELECT service_id, status, queued_at, called_at FROM tickets "
                "WHERE branch_id = ? AND day = ? AND status != 'void'",
                [branch_id, day],
            ).fetchall()
            services = [
                r[0]
                for r in db.execute(
                    "SELECT id FROM services WHERE branch_id = ? ORDER BY position", [branch_id]
                )
            ]
        stats = {
            s: {"issued": 0, "served": 0, "no_show": 0, "cancelled": 0, "waits": []}
            for s in services
        }
        for service, status, queued, called in rows:
            entry = stats.setdefault(
                service, {"issued": 0, "served": 0, "no_show": 0, "cancelled": 0, "waits": []}
            )
            entry["issued"] += 1
            if status in ("served", "no_show", "cancelled"):
                entry[status] += 1
            if called:
                seconds = datetime.fromisoformat(called) - datetime.fromisoformat(queued)
                entry["waits"].append(max(seconds.total_seconds(), 0))
        for entry in stats.values():
            waits = sorted(entry.pop("waits"))
            entry["average_wait_s"] = round(sum(waits) / len(waits)) if waits else None
            entry["p90_wait_s"] = (
                round(waits[min(len(waits) - 1, math.ceil(0.9 * len(waits)) - 1)])
                if waits
                else None
            )
        return stats

    def _waiting(self, db, branch_id: str, queue_id: str, day: str) -> list[str]:
        """The queue's waiting times in order, read at most every ``POSITION_TTL_S``.

        Thousands of phones polling their place must not each count thousands
        of rows; a place a second old is fresh enough for a person. Only the
        times: the index holds them, so the read never touches the table.
        """
        key = (branch_id, queue_id, day)
        cached = self._queues.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        times = [
            r[0]
            for r in db.execute(
                "SELECT queued_at FROM tickets WHERE branch_id = ? AND queue_id = ? AND day = ? "
                "AND status = 'waiting' ORDER BY queued_at",
                [branch_id, queue_id, day],
            )
        ]
        self._queues[key] = (time.monotonic() + POSITION_TTL_S, times)
        return times

    def _tied(
        self, db, branch_id: str, queue_id: str, day: str, queued_at: str
    ) -> list[tuple[int, str]]:
        """The waiting tickets queued at the very same moment (a batch of one
        millisecond) in :meth:`call_next`'s order among them: kiosk sequence,
        then id. Rare, so read only then, from the index alone, and kept as long
        as the queue's times."""
        key = (branch_id, queue_id, day, queued_at)
        cached = self._ties.get(key)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        tied = [
            (r[0] or 0, r[1])
            for r in db.execute(
                "SELECT kiosk_seq, id FROM tickets WHERE branch_id = ? AND queue_id = ? "
                "AND day = ? AND status = 'waiting' AND queued_at = ? ORDER BY kiosk_seq, id",
                [branch_id, queue_id, day, queued_at],
            )
        ]
        if len(self._ties) > 1000:  # moments of past polls: forget them all now and then
            self._ties.clear()
        self._ties[key] = (time.monotonic() + POSITION_TTL_S, tied)
        return tied

    def parked(self, branch_id: str) -> list[dict]:
        """Tickets no day's queue could take (a kiosk that never knew the time and
        restarted before sending), for staff to place: the customer has paper."""
        with self.reading() as db:
            rows = db.execute(
                "SELECT id, display, service_id, kiosk_id, issued_at_kiosk, received_at, "
                "park_reason FROM tickets WHERE branch_id = ? AND status = 'parked' "
                "ORDER BY received_at, kiosk_seq",
                [branch_id],
            ).fetchall()
        keys = ("id", "number", "service_id", "kiosk_id", "issued_at_kiosk", "received_at")
        return [dict(zip((*keys, "reason"), row, strict=True)) for row in rows]

    def queue_parked(self, branch_id: str, ticket_id: str) -> str:
        """Put a parked ticket at the end of today's queue; "" or why not."""
        with self.transaction() as db:
            today, _ = self.branch_today(db, branch_id)
            try:
                done = db.execute(
                    "UPDATE tickets SET status = 'waiting', day = ?, queued_at = ?, "
                    "park_reason = NULL WHERE id = ? AND branch_id = ? AND status = 'parked'",
                    [today, iso(now()), ticket_id, branch_id],
                ).rowcount
            except sqlite3.IntegrityError:
                return "a ticket with the same number is already in today's queue"
        return "" if done else "no such parked ticket"

    def erase_personal_data(self, token: str) -> bool:
        """What the customer typed (the feedback comment) goes; the rating stays, anonymous."""
        with self.transaction() as db:
            return (
                db.execute(
                    "UPDATE feedback SET comment = '' WHERE comment != '' AND ticket_id = "
                    "(SELECT id FROM tickets WHERE public_token = ?)",
                    [token],
                ).rowcount
                == 1
            )

    def cancel(self, token: str) -> str | None:
        """The holder leaves the queue; only a waiting ticket can be cancelled."""
        with self.transaction() as db:
            row = db.execute(
                "SELECT status FROM tickets WHERE public_token = ?", [token]
            ).fetchone()
            if row is None:
                return None
            if row[0] == "waiting":
                db.execute(
                    "UPDATE tickets SET status = 'cancelled', finished_at = ? "
                    "WHERE public_token = ?",
                    [iso(now()), token],
                )
                return "cancelled"
            return row[0]

    def call_next(
        self,
        branch_id: str,
        counter: str,
        services: list[str] | None = None,
        finish: str = "",
    ) -> dict | None:
        """The longest fair wait among ``services`` goes to ``counter``; a service
        with a higher ``priority`` goes first while it has anyone waiting.

        A counter calls one ticket at a time: while one is still called there,
        :class:`CounterBusy` — unless ``finish`` ("served" or "no_show") says
        how that one ended, which is then recorded first.

        One ``BEGIN IMMEDIATE`` transaction, the counter's own ticket checked
        inside it: two counters calling at the same instant never get the same
        ticket, and two presses at one counter never call two.
        """
        if finish not in ("", "served", "no_show"):
            raise Rejected(f"a called ticket is finished as served or no_show, not {finish!r}")
        with self.transaction() as db:
            still = db.execute(
                "SELECT id, display FROM tickets WHERE branch_id = ? AND counter = ? "
                "AND status = 'called' ORDER BY called_at",
                [branch_id, counter],
            ).fetchall()
            if still and not finish:
                raise CounterBusy(counter, still[-1][1])
            for ticket_id, _ in still:
                db.execute(
                    "UPDATE tickets SET status = ?, finished_at = ? WHERE id = ?",
                    [finish, iso(now()), ticket_id],
                )
            today, _ = self.branch_today(db, branch_id)
            clause, args = "", []
            if services:
                clause = f" AND queue_id IN ({', '.join('?' * len(services))})"
                args = list(services)
            row = db.execute(
                "SELECT t.id, t.display, t.queue_id FROM tickets t JOIN services s "
                "ON s.branch_id = t.branch_id AND s.id = t.queue_id "
                "WHERE t.branch_id = ? AND t.day = ? "
                f"AND t.status = 'waiting'{clause.replace('queue_id', 't.queue_id')} "
                "ORDER BY s.priority DESC, t.queued_at, t.kiosk_seq, t.id LIMIT 1",
                [branch_id, today, *args],
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE tickets SET status = 'called', counter = ?, called_at = ? WHERE id = ?",
                [counter, iso(now()), row[0]],
            )
        return {"id": row[0], "number": row[1], "service_id": row[2], "counter": counter}
