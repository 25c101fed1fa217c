"""Kiosks: pairing with a single-use code, tokens, heartbeats and commands."""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server import throttle
from server.storage.common import Rejected, Throttled, Unauthorized, _hash, iso, now
from server.storage.database import Database, Tx
from sync import protocol

log = logging.getLogger("vuoro.server")

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 8
RESERVE_TAGS = [f"{letter}{digit}" for letter in "KLMNPRSTUVWXYZ" for digit in "123456789"]
MAX_LIVE_CODES = 10  # unused, unexpired pairing codes per branch
MAX_CODE_TTL_S = 7 * 86400
#: wrong pairing codes: ten at once from an address, then one per 10 s; from
#: everywhere together a hundred at once, then two a second
PAIR_ADDRESS = throttle.Bucket("pair-address", capacity=10, leak_s=10)
PAIR_SERVER = throttle.Bucket("pair-server", capacity=100, leak_s=0.5)
_code_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def _code_matches(stored: str, code: str) -> bool:
    """Is ``code`` the pairing code stored as ``stored`` (Argon2, or the plain
    SHA-256 of codes made before it)?"""
    if not stored.startswith("$argon2"):
        return hmac.compare_digest(stored, _hash(code))
    try:
        return _code_hasher.verify(stored, code)
    except (VerificationError, InvalidHashError):
        return False


class Devices:
    database: Database

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
        with self.database.transaction() as db:
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
            db.insert(
                "pairing_codes",
                {
                    "code_hash": code_hash,
                    "branch_id": branch_id,
                    "expires_at": iso(now() + timedelta(seconds=ttl_s)),
                },
            )
        return code

    def pair(self, code: str, name: str, address: str = "unknown") -> protocol.PairResponse:
        """Spend a pairing code on a new kiosk; the token is shown once, stored hashed."""
        code_hash = self.matching_code(code, address)
        token = secrets.token_urlsafe(32)
        with self.database.transaction() as db:
            branch_id = self.spend_code(db, code_hash)
            db.lock_row("branches", "id", branch_id)  # its reserve tags, read below
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
            db.insert(
                "kiosks",
                {
                    "id": kiosk_id,
                    "branch_id": branch_id,
                    "name": name,
                    "token_hash": _hash(token),
                    "reserve_tag": tag,
                    "created_at": iso(now()),
                },
            )
        return protocol.PairResponse(
            kiosk_id=kiosk_id, branch_id=branch_id, token=token, reserve_tag=tag
        )

    def matching_code(self, code: str, address: str = "unknown") -> str:
        """The stored hash of a live pairing code (a kiosk's or a display's: one
        code pairs whichever device spends it first), else :class:`Unauthorized`.

        Wrong codes are throttled per source address and server-wide (leaky
        buckets, :data:`PAIR_ADDRESS`, :data:`PAIR_SERVER`): :class:`Throttled`
        while either is full, before any hashing.
        """
        source = throttle.address_key(address)
        with self.database.reading() as db:
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
        if code_hash is not None:
            return code_hash
        with self.database.transaction() as db:
            at = time.time()
            by_address = throttle.add(db, PAIR_ADDRESS, source, at)
            by_server = throttle.add(db, PAIR_SERVER, "all", at)
        log.info("pairing: a wrong code from %s", source)
        if throttle.wait_s(by_address, PAIR_ADDRESS) and by_address - 1 <= (
            PAIR_ADDRESS.capacity - 1
        ):
            log.warning("pairing lock-out: %s after %d wrong codes", source, by_address)
        if throttle.wait_s(by_server, PAIR_SERVER) and by_server - 1 <= (PAIR_SERVER.capacity - 1):
            log.warning("pairing lock-out: %d wrong codes from everywhere", by_server)
        raise Unauthorized("pairing code unknown, used or expired")

    @staticmethod
    def spend_code(db: Tx, code_hash: str) -> str:
        """Mark the code used in ``db``'s transaction; its branch. Checked again
        under the write: a code pairs one device, whichever worker is first."""
        row = db.execute(
            "SELECT branch_id FROM pairing_codes WHERE code_hash = ? AND used_at IS NULL "
            "AND expires_at > ?",
            [code_hash, iso(now())],
        ).fetchone()
        spent = (
            row is not None
            and db.execute(
                "UPDATE pairing_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
                [iso(now()), code_hash],
            ).rowcount
        )
        if not spent:
            raise Unauthorized("pairing code unknown, used or expired")
        return row[0]

    def kiosk_for_token(self, token: str) -> dict:
        with self.database.reading() as db:
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
        with self.database.reading() as db:
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
        with self.database.transaction() as db:
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
        with self.database.transaction() as db:
            known = db.execute(
                "SELECT 1 FROM kiosks WHERE id = ? AND revoked_at IS NULL "
                "AND branch_id = COALESCE(?, branch_id)",
                [kiosk_id, branch_id],
            ).fetchone()
            if known:
                db.insert(
                    "commands", {"kiosk_id": kiosk_id, "kind": kind, "created_at": iso(now())}
                )
        return known is not None

    def rename_kiosk(self, kiosk_id: str, name: str, branch_id: str | None = None) -> bool:
        name = " ".join(name.split())
        if not name or len(name) > 100 or not name.isprintable():
            raise Rejected("a kiosk name is 1 to 100 printable characters")
        with self.database.transaction() as db:
            return (
                db.execute(
                    "UPDATE kiosks SET name = ?, renamed_at = ? WHERE id = ? "
                    "AND branch_id = COALESCE(?, branch_id)",
                    [name, iso(now()), kiosk_id, branch_id],
                ).rowcount
                == 1
            )

    def heartbeat(self, kiosk: dict, beat: protocol.Heartbeat) -> list[protocol.Command]:
        with self.database.transaction() as db:
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
