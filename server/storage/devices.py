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
        """Queue a command (reload, reboot, sync_now) for the kiosk's next heartbeat.
        (``print_ticket`` needs its ticket: :meth:`print_at_kiosk`.)"""
        if kind not in protocol.OPERATOR_COMMANDS:
            raise Rejected(f"a command is one of {', '.join(protocol.OPERATOR_COMMANDS)}")
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
        """Remember what the kiosk said (its printer, what it accepts), record how
        its commands ended, and hand it the commands waiting for it."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE kiosks SET last_seen_at = ?, last_heartbeat = ? WHERE id = ?",
                [iso(now()), beat.model_dump_json(exclude={"results"}), kiosk["id"]],
            )
            for result in beat.results:
                self._record_result(db, kiosk["id"], result)
            rows = db.execute(
                "SELECT id, kind, data FROM commands WHERE kiosk_id = ? AND delivered_at IS NULL "
                "ORDER BY id",
                [kiosk["id"]],
            ).fetchall()
            db.execute(
                "UPDATE commands SET delivered_at = ? WHERE kiosk_id = ? AND delivered_at IS NULL",
                [iso(now()), kiosk["id"]],
            )
        return [protocol.Command(id=str(r[0]), kind=r[1], data=_command_data(r[2])) for r in rows]

    @staticmethod
    def _record_result(db: Tx, kiosk_id: str, result: protocol.CommandResult) -> None:
        """A kiosk's word on one of its own commands, kept in the command's data
        (``result``, ``result_at``); a result for another kiosk's command is ignored."""
        if not result.id.isdigit() or len(result.id) > 18:
            return
        row = db.execute(
            "SELECT data FROM commands WHERE id = ? AND kiosk_id = ?", [int(result.id), kiosk_id]
        ).fetchone()
        if row is None:
            return
        data = _command_data(row[0])
        data.update(result=result.result, result_at=iso(now()))
        db.execute(
            "UPDATE commands SET data = ? WHERE id = ?",
            [json.dumps(data, ensure_ascii=False), int(result.id)],
        )

    def print_at_kiosk(
        self, branch_id: str, ticket_id: str, language: str | None = None
    ) -> str | None:
        """Have a kiosk of the branch print a ticket staff gave at a counter.

        The kiosk chosen is one not revoked, heard from within
        :data:`PRINT_SEEN_S`, not switched out of order, whose heartbeat accepts
        ``print_ticket`` (older kiosks would not understand it) and whose printer
        did not say it cannot print; the one heard from most recently, a printer
        that answered ``ok`` before one whose state is unknown. The command goes
        with that kiosk's next heartbeat. Returns the kiosk's name, or None when
        no kiosk of the branch can print it (staff then tell the number aloud).
        ``language``: the paper's, default the ticket's, else the branch's first.
        :class:`Rejected` for a ticket not of the branch, or served, cancelled, ...
        """
        with self.database.reading() as db:
            ticket = db.execute(
                "SELECT t.display, t.service_id, t.public_token, t.queued_at, t.language, "
                "s.names, s.locations, b.ticket_url_template, b.languages, t.status "
                "FROM tickets t JOIN services s ON s.branch_id = t.branch_id "
                "AND s.id = t.service_id JOIN branches b ON b.id = t.branch_id "
                "WHERE t.branch_id = ? AND t.id = ?",
                [branch_id, ticket_id],
            ).fetchone()
            if ticket is None:
                raise Rejected(f"no ticket {ticket_id!r} in this branch")
            if ticket[9] not in PRINTABLE_STATUSES:  # paper for it would only mislead
                raise Rejected(f"ticket {ticket[0]} is {ticket[9]}: nothing to print")
            seen_since = iso(now() - timedelta(seconds=PRINT_SEEN_S))
            kiosks = db.execute(
                "SELECT id, name, last_seen_at, last_heartbeat FROM kiosks "
                "WHERE branch_id = ? AND revoked_at IS NULL AND last_seen_at >= ? "
                "ORDER BY last_seen_at DESC",
                [branch_id, seen_since],
            ).fetchall()
        chosen = _kiosk_to_print(kiosks)
        if chosen is None:
            return None
        display, service_id, token, queued_at, ticket_language, names, locations, url = ticket[:8]
        languages = ticket[8]
        public = self.ticket_by_token(token) or {}
        position = public.get("position")
        data = protocol.PrintTicket(
            ticket_id=ticket_id,
            number=display,
            service_id=service_id,
            service_names=_bounded_texts(names),
            location=_bounded_texts(locations),
            url=url.replace("{token}", token),
            issued_at=queued_at,
            language=language or ticket_language or (json.loads(languages) or ["en"])[0],
            waiting=None if position is None else position - 1,
            estimated_wait_s=public.get("estimated_wait_s"),
        )
        kiosk_id, name = chosen
        with self.database.transaction() as db:
            db.insert(
                "commands",
                {
                    "kiosk_id": kiosk_id,
                    "kind": "print_ticket",
                    "created_at": iso(now()),
                    "data": data.model_dump_json(),
                },
            )
        log.info("ticket %s given at a counter: printing at kiosk %s", display, kiosk_id)
        return name

    def print_outcome(self, branch_id: str, ticket_id: str) -> dict | None:
        """What became of the newest print of a counter ticket: the kiosk's name and
        ``state``: ``queued`` (waiting for the kiosk's heartbeat), ``sent`` (the kiosk
        has it), ``printed``, ``failed`` / ``skipped`` / ``unknown`` with ``detail``.
        None: it was never sent to a kiosk."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT k.name, c.delivered_at, c.data FROM commands c "
                "JOIN kiosks k ON k.id = c.kiosk_id WHERE k.branch_id = ? "
                "AND c.kind = 'print_ticket' AND c.data LIKE ? ORDER BY c.id DESC",
                [branch_id, f"%{ticket_id}%"],
            ).fetchall()
        for name, delivered, text in rows:
            data = _command_data(text)
            if data.get("ticket_id") != ticket_id:
                continue
            result = str(data.get("result") or "")
            state, _, detail = result.partition(":")
            if not result:
                state = "sent" if delivered else "queued"
            return {"kiosk": name, "state": state, "detail": detail}
        return None


#: a ticket in these states may be printed (one served or cancelled would mislead)
PRINTABLE_STATUSES = ("waiting", "called", "serving")
#: a kiosk heard from within this long can be sent a counter ticket: three
#: heartbeats, so one lost beat does not count it out
PRINT_SEEN_S = 3 * protocol.HEARTBEAT_S


def _kiosk_to_print(kiosks: list) -> tuple[str, str] | None:
    """The (id, name) of the kiosk that should print, of rows newest-heard first."""
    ready = []
    for kiosk_id, name, _seen, beat in kiosks:
        try:
            said = protocol.Heartbeat.model_validate_json(beat or "{}")
        except ValueError:
            continue
        if (
            "print_ticket" in said.accepts
            and not said.out_of_order
            and said.printer not in protocol.NO_PAPER_STATES
        ):
            ready.append((said.printer == "unknown", kiosk_id, name))
    if not ready:
        return None
    _, kiosk_id, name = min(ready, key=lambda r: r[0])  # stable: newest first within each
    return kiosk_id, name


def _command_data(text: str | None) -> dict:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _bounded_texts(text: str | None) -> dict[str, str]:
    """Per-language names as the kiosk takes them: a line each, 100 characters."""
    texts = _command_data(text)
    return {
        str(k)[:8]: " ".join(str(v).split())[:100]
        for k, v in list(texts.items())[:20]
        if isinstance(v, str) and v.strip()
    }
