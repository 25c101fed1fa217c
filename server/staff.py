"""Staff: accounts, sessions, the login throttle, and what a counter does.

Passwords are hashed with Argon2 (argon2-cffi). A session is a random token in
an HttpOnly, SameSite=Strict cookie, stored hashed, with its own CSRF token
that every form must carry back. Wrong passwords lock the account name and the
address out for a growing while.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.storage import Rejected, Storage, iso, now

SESSION_HOURS = 12
FREE_FAILURES = 5  # wrong passwords before the lock-out starts
LOCK_BASE_S = 30
LOCK_CAP_S = 3600
ROLES = ("staff", "manager")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")


@dataclass(frozen=True)
class StaffMember:
    id: int
    branch_id: str
    username: str
    counter: str
    services: list[str]
    csrf: str = ""
    role: str = "staff"  # staff | manager (may change the branch, kiosks and staff)

    @property
    def manages(self) -> bool:
        return self.role == "manager"


class LockedOut(Exception):
    """Too many wrong passwords; try again after ``seconds``."""

    def __init__(self, seconds: int) -> None:
        super().__init__(f"too many attempts; try again in {seconds} s")
        self.seconds = seconds


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Staff:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # -- accounts ----------------------------------------------------------------

    def add(
        self,
        branch_id: str,
        username: str,
        password: str,
        counter: str,
        services: list[str],
        role: str = "staff",
    ) -> str:
        """Create a staff member, or change one (a new password too); the stored name."""
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise Rejected(
                "a username is 1 to 64 of a-z, 0-9, . _ @ - (starting with a letter/digit)"
            )
        if not 10 <= len(password) <= 200:
            raise Rejected("a password needs 10 to 200 characters")
        counter = " ".join(counter.split())
        if not counter or len(counter) > 20 or not counter.isprintable():
            raise Rejected("a counter is named by 1 to 20 printable characters")
        if role not in ROLES:
            raise Rejected(f"a role is one of {', '.join(ROLES)}")
        with self.storage.transaction() as db:
            if not db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone():
                raise Rejected(f"no branch {branch_id!r}")
            known = {
                r[0] for r in db.execute("SELECT id FROM services WHERE branch_id = ?", [branch_id])
            }
            unknown = sorted(set(services) - known)
            if unknown:
                raise Rejected(f"no service {unknown[0]!r} in {branch_id}")
            other = db.execute(
                "SELECT branch_id FROM staff WHERE username = ?", [username]
            ).fetchone()
            if other and other[0] != branch_id:
                raise Rejected(f"{username!r} belongs to another branch")
            db.execute(
                "INSERT INTO staff (branch_id, username, password_hash, counter, services, "
                "created_at, role) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(username) DO UPDATE "
                "SET password_hash = excluded.password_hash, counter = excluded.counter, "
                "services = excluded.services, role = excluded.role",
                [
                    branch_id,
                    username,
                    _hasher.hash(password),
                    counter,
                    json.dumps(services),
                    iso(now()),
                    role,
                ],
            )
        return username

    def members(self, branch_id: str) -> list[dict]:
        with self.storage.reading() as db:
            rows = db.execute(
                "SELECT username, counter, services, role FROM staff WHERE branch_id = ? "
                "ORDER BY username",
                [branch_id],
            ).fetchall()
        return [
            {"username": r[0], "counter": r[1], "services": json.loads(r[2]), "role": r[3]}
            for r in rows
        ]

    def remove(self, branch_id: str, username: str) -> bool:
        """Delete the account and end its sessions at once."""
        with self.storage.transaction() as db:
            row = db.execute(
                "SELECT id FROM staff WHERE branch_id = ? AND username = ?",
                [branch_id, username.strip().lower()],
            ).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM sessions WHERE staff_id = ?", [row[0]])
            db.execute("DELETE FROM staff WHERE id = ?", [row[0]])
        return True

    # -- logging in ----------------------------------------------------------------

    def log_in(self, username: str, password: str, address: str) -> str:
        """A new session token, or :class:`LockedOut` / ``None`` for a wrong password."""
        keys = [f"user:{username.strip().lower()[:100]}", f"addr:{address}"]
        with self.storage.transaction() as db:
            for key in keys:
                row = db.execute(
                    "SELECT locked_until FROM login_failures WHERE key = ?", [key]
                ).fetchone()
                if row and row[0] and row[0] > iso(now()):
                    left = datetime.fromisoformat(row[0]) - now()
                    raise LockedOut(max(1, int(left.total_seconds())))
            staff = db.execute(
                "SELECT id, password_hash FROM staff WHERE username = ?", [username.strip().lower()]
            ).fetchone()
            try:  # verify against a dummy hash too, so timing does not tell who exists
                _hasher.verify(staff[1] if staff else _DUMMY_HASH, password)
                ok = staff is not None
            except (VerificationError, InvalidHashError):
                ok = False
            if not ok:
                for key in keys:
                    self._fail(db, key)
                return ""
            db.execute("DELETE FROM login_failures WHERE key IN (?, ?)", keys)
            token = secrets.token_urlsafe(32)
            db["sessions"].insert(
                {
                    "token_hash": _hash(token),
                    "staff_id": staff[0],
                    "csrf": secrets.token_urlsafe(24),
                    "expires_at": iso(now() + timedelta(hours=SESSION_HOURS)),
                }
            )
            return token

    @staticmethod
    def _fail(db, key: str) -> None:
        row = db.execute("SELECT failures FROM login_failures WHERE key = ?", [key]).fetchone()
        failures = (row[0] if row else 0) + 1
        locked = None
        if failures >= FREE_FAILURES:
            seconds = min(LOCK_CAP_S, LOCK_BASE_S * 2 ** (failures - FREE_FAILURES))
            locked = iso(now() + timedelta(seconds=seconds))
        db.execute(
            "INSERT INTO login_failures (key, failures, locked_until) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET failures = ?, locked_until = ?",
            [key, failures, locked, failures, locked],
        )

    def session(self, token: str) -> StaffMember | None:
        if not token or len(token) > 100:
            return None
        with self.storage.reading() as db:
            row = db.execute(
                "SELECT s.id, s.branch_id, s.username, s.counter, s.services, x.csrf, s.role "
                "FROM sessions x JOIN staff s ON s.id = x.staff_id "
                "WHERE x.token_hash = ? AND x.expires_at > ?",
                [_hash(token), iso(now())],
            ).fetchone()
        if row is None:
            return None
        return StaffMember(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])

    def log_out(self, token: str) -> None:
        with self.storage.transaction() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", [_hash(token)])

    # -- the counter ---------------------------------------------------------------

    def current(self, member: StaffMember) -> dict | None:
        """The ticket at this counter now (called or being served)."""
        with self.storage.reading() as db:
            row = db.execute(
                "SELECT id, display, queue_id, status FROM tickets WHERE branch_id = ? "
                "AND counter = ? AND status IN ('called', 'serving') ORDER BY called_at DESC "
                "LIMIT 1",
                [member.branch_id, member.counter],
            ).fetchone()
        return (
            None
            if row is None
            else dict(zip(("id", "number", "service_id", "status"), row, strict=True))
        )

    def act(self, member: StaffMember, action: str, service: str = "") -> str:
        """call, recall, start, served, no_show, transfer: a message for the counter."""
        current = self.current(member)
        if action == "call":
            if current is not None and current["status"] == "called":
                return f"{current['number']} is still called here"
            called = self.storage.call_next(
                member.branch_id, member.counter, member.services or None
            )
            return f"{called['number']} called" if called else "nobody is waiting"
        if current is None:
            return "no ticket at this counter"
        changes = {
            "recall": ("called_at = ?", [iso(now())]),
            "start": ("status = 'serving', started_at = ?", [iso(now())]),
            "served": ("status = 'served', finished_at = ?", [iso(now())]),
            "no_show": ("status = 'no_show', finished_at = ?", [iso(now())]),
        }
        with self.storage.transaction() as db:
            if action == "transfer":
                if not db.execute(
                    "SELECT 1 FROM services WHERE branch_id = ? AND id = ?",
                    [member.branch_id, service],
                ).fetchone():
                    raise Rejected(f"no service {service!r}")
                # back in the queue of another service, with its original place (queued_at)
                db.execute(
                    "UPDATE tickets SET queue_id = ?, status = 'waiting', counter = NULL, "
                    "called_at = NULL WHERE id = ?",
                    [service, current["id"]],
                )
                return f"{current['number']} moved to {service}"
            if action not in changes:
                raise Rejected(f"unknown action {action!r}")
            sql, args = changes[action]
            db.execute(f"UPDATE tickets SET {sql} WHERE id = ?", [*args, current["id"]])
        return f"{current['number']}: {action.replace('_', ' ')}"
