"""Being told when the turn nears: a ticket holder's e-mail address or phone
number (``notify_contacts``, one per ticket) and the outbox of the messages
sent to it (``notify_outbox``).

A message is queued at most once per ticket and kind (``near``, ``turn``):
the table's unique key (ticket, kind) is the idempotency key, and it goes to
the provider with the message. A sender claims a due row with one conditional
UPDATE (the state it saw; ``SKIP LOCKED`` on PostgreSQL), so two workers never
send one row at once. A row claimed by a sender that died is claimable again
once its claim runs out: the message may then go twice (the provider accepted
it before our commit), which the idempotency key lets a gateway drop.

The address is personal data: it is deleted when the ticket is done (served,
no-show, cancelled, void), when its holder erases it, and blanked from the
outbox once a message is sent, failed or dropped.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import sqlalchemy as sa

from catalogue import N_
from server import phones
from server.storage.callbacks import settings_of
from server.storage.common import Rejected, iso, now
from server.storage.database import Database

CHANNELS = ("email", "sms")
KINDS = ("near", "turn")
#: a ticket in these states is done: nothing more is sent to its holder
DONE = ("served", "no_show", "cancelled", "void")
#: a holder may opt in while the ticket still waits
OPEN = ("waiting", "parked")
#: RFC 5321's longest path; the local part at most 64
EMAIL_MAX = 254
#: a strict, simple rule (no quoted local parts, no IP literals, ASCII only):
#: what a phone's keyboard types for an ordinary mailbox
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
#: tries before a message is marked failed
MAX_TRIES = 5
#: seconds before the next try after a failure: 5 s, 10 s, 20 s ... at most 5 min
BACKOFF_FIRST_S, BACKOFF_MAX_S = 5.0, 300.0
#: a claimed row is another sender's again after this long
CLAIM_S = 60.0
#: an address is kept this long at most, even for a ticket never closed (a day's queue)
KEEP_S = 24 * 3600

#: why an address is refused → what the holder reads (the page translates them)
REFUSALS = {
    "channel": N_("Choose e-mail or text message."),
    "email": N_("That is not an e-mail address we can write to. Check it."),
    "email_long": N_("The e-mail address is too long."),
    "closed": N_("This ticket no longer waits: there is nothing to tell."),
}


class NotifyRefused(Rejected):
    """An opt-in that cannot be taken; ``key`` is one of :data:`REFUSALS`."""

    def __init__(self, key: str) -> None:
        super().__init__(REFUSALS[key])
        self.key = key


def clean_email(typed: str) -> str:
    """The address as stored (surrounding blanks dropped, the domain in lower
    case); :class:`NotifyRefused` for anything but one plain mailbox: no
    control characters (header injection), no spaces, no non-ASCII."""
    text = typed.strip()
    if len(text) > EMAIL_MAX:
        raise NotifyRefused("email_long")
    if not EMAIL.fullmatch(text) or len(text.split("@")[0]) > 64:
        raise NotifyRefused("email")
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def backoff_s(tries: int, first_s: float = BACKOFF_FIRST_S) -> float:
    """The wait after the ``tries``-th failed try: doubling from ``first_s``."""
    return min(first_s * 2 ** max(tries - 1, 0), BACKOFF_MAX_S)


class Notify:
    database: Database

    def notify_opt_in(self, token: str, channel: str, typed: str) -> dict:
        """The holder of the ticket ``token`` asks to be told by ``channel``
        at ``typed``: the stored contact (channel, address). A refused one
        (:class:`NotifyRefused`, :class:`phones.PhoneRefused`) stores nothing;
        a second opt-in replaces the first."""
        if channel not in CHANNELS:
            raise NotifyRefused("channel")
        with self.database.reading() as db:
            row = db.execute(
                "SELECT id, branch_id, status, language FROM tickets WHERE public_token = ?",
                [token],
            ).fetchone()
            if row is None:
                raise Rejected("no such ticket")
            country = settings_of(db, row[1])["country"]
        if row[2] not in OPEN:
            raise NotifyRefused("closed")
        address = clean_email(typed) if channel == "email" else phones.normalise(typed, country)
        with self.database.transaction() as db:
            status = db.execute("SELECT status FROM tickets WHERE id = ?", [row[0]]).fetchone()
            if status is None or status[0] not in OPEN:
                raise NotifyRefused("closed")
            db.upsert(
                "notify_contacts",
                {
                    "ticket_id": row[0],
                    "branch_id": row[1],
                    "channel": channel,
                    "address": address,
                    "language": row[3],
                    "created_at": iso(now()),
                },
                ["ticket_id"],
            )
        return {"channel": channel, "address": address}

    def notify_contact(self, token: str) -> dict | None:
        """The ticket's contact (channel, address), None without one."""
        with self.database.reading() as db:
            row = db.execute(
                "SELECT c.channel, c.address FROM notify_contacts c "
                "JOIN tickets t ON t.id = c.ticket_id WHERE t.public_token = ?",
                [token],
            ).fetchone()
        return None if row is None else {"channel": row[0], "address": row[1]}

    def notify_remove(self, token: str) -> bool:
        """The holder takes the address back: it goes, and so do messages not sent yet."""
        with self.database.transaction() as db:
            return _remove(db, token)

    def notify_watched(self) -> list[dict]:
        """Contacts of tickets not done yet: (ticket id, token, channel,
        address, language, branch), for the sender to check against the queue."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT t.id, t.public_token, c.channel, c.address, c.language, c.branch_id "
                "FROM notify_contacts c JOIN tickets t ON t.id = c.ticket_id "
                f"WHERE t.status NOT IN ({', '.join('?' * len(DONE))})",
                list(DONE),
            ).fetchall()
        keys = ("ticket_id", "token", "channel", "address", "language", "branch_id")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def notify_queue(self, ticket_id: str, kind: str, subject: str, body: str) -> bool:
        """Queue the ``kind`` message of a ticket, once: False when it was
        queued before, or the ticket has no contact or is done."""
        if kind not in KINDS:
            raise Rejected(f"kind is one of {', '.join(KINDS)}")
        once = "SELECT 1 FROM notify_outbox WHERE ticket_id = ? AND kind = ?"
        with self.database.reading() as db:  # each round asks again: no lock for a repeat
            if db.execute(once, [ticket_id, kind]).fetchone():
                return False
        try:
            with self.database.transaction() as db:
                row = db.execute(
                    "SELECT c.channel, c.address, c.branch_id, t.status FROM notify_contacts c "
                    "JOIN tickets t ON t.id = c.ticket_id WHERE c.ticket_id = ?",
                    [ticket_id],
                ).fetchone()
                if row is None or row[3] in DONE:
                    return False
                if db.execute(once, [ticket_id, kind]).fetchone():
                    return False
                at = iso(now())
                if kind == "turn":  # called before "near" went: it would only confuse
                    db.execute(
                        "UPDATE notify_outbox SET state = 'dropped', address = '', last_error = "
                        "'called first' WHERE ticket_id = ? AND kind = 'near' AND state = 'queued'",
                        [ticket_id],
                    )
                db.insert(
                    "notify_outbox",
                    {
                        "id": uuid.uuid4().hex,
                        "ticket_id": ticket_id,
                        "branch_id": row[2],
                        "kind": kind,
                        "channel": row[0],
                        "address": row[1],
                        "subject": subject,
                        "body": body,
                        "state": "queued",
                        "next_attempt_at": at,
                        "created_at": at,
                    },
                )
        except sa.exc.IntegrityError:  # another worker queued it this instant
            return False
        return True

    def notify_claim(self, limit: int = 10, claim_s: float = CLAIM_S) -> list[dict]:
        """Due messages, each claimed for this sender (state ``sending``) for
        ``claim_s`` seconds; those of tickets done by now are dropped instead."""
        moment = now()
        at, until = iso(moment), iso(moment + timedelta(seconds=claim_s))
        claimed = []
        due = (
            "SELECT 1 FROM notify_outbox WHERE (state = 'queued' AND next_attempt_at <= ?) "
            "OR (state = 'sending' AND claimed_until < ?) LIMIT 1"
        )
        with self.database.reading() as db:  # most rounds: nothing due, no lock taken
            if db.execute(due, [at, at]).fetchone() is None:
                return []
        with self.database.transaction() as db:
            rows = db.execute(
                "SELECT t.id, t.state, t.ticket_id, t.kind, t.channel, t.address, t.subject, "
                "t.body, t.tries, k.status FROM notify_outbox t "
                "JOIN tickets k ON k.id = t.ticket_id "
                "WHERE (t.state = 'queued' AND t.next_attempt_at <= ?) "
                "OR (t.state = 'sending' AND t.claimed_until < ?) "
                "ORDER BY t.next_attempt_at LIMIT ?" + db.dialect.skip_locked,
                [at, at, limit],
            ).fetchall()
            for row in rows:
                if row[9] in DONE:
                    db.execute(
                        "UPDATE notify_outbox SET state = 'dropped', address = '', "
                        "last_error = ? WHERE id = ? AND state = ?",
                        [f"ticket {row[9]}", row[0], row[1]],
                    )
                    continue
                won = db.execute(
                    "UPDATE notify_outbox SET state = 'sending', claimed_until = ?, "
                    "tries = tries + 1 WHERE id = ? AND state = ? AND tries = ?",
                    [until, row[0], row[1], row[8]],
                ).rowcount
                if won == 1:
                    keys = ("id", "state", "ticket_id", "kind", "channel", "address", "subject")
                    claimed.append(
                        dict(zip(keys, row[:7], strict=True))
                        | {"body": row[7], "tries": row[8] + 1, "key": f"{row[2]}:{row[3]}"}
                    )
        return claimed

    def notify_sent(self, message_id: str) -> None:
        """The provider took it: sent, the address blanked."""
        with self.database.transaction() as db:
            db.execute(
                "UPDATE notify_outbox SET state = 'sent', sent_at = ?, address = '', "
                "claimed_until = NULL, last_error = '' WHERE id = ? AND state = 'sending'",
                [iso(now()), message_id],
            )

    def notify_failed(
        self, message_id: str, error: str, retry: bool, backoff_first_s: float = BACKOFF_FIRST_S
    ) -> str:
        """A try failed: queued again after a back-off (doubling from
        ``backoff_first_s``) while tries remain and ``retry``, else failed (the
        address blanked). The new state."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT tries FROM notify_outbox WHERE id = ? AND state = 'sending'", [message_id]
            ).fetchone()
            if row is None:
                return "unknown"
            error = " ".join(error.split())[:300]
            if retry and row[0] < MAX_TRIES:
                later = iso(now() + timedelta(seconds=backoff_s(row[0], backoff_first_s)))
                db.execute(
                    "UPDATE notify_outbox SET state = 'queued', next_attempt_at = ?, "
                    "claimed_until = NULL, last_error = ? WHERE id = ?",
                    [later, error, message_id],
                )
                return "queued"
            db.execute(
                "UPDATE notify_outbox SET state = 'failed', address = '', claimed_until = NULL, "
                "last_error = ? WHERE id = ?",
                [error, message_id],
            )
            return "failed"

    def notify_prune(self) -> int:
        """Contacts of done tickets (or older than :data:`KEEP_S`) go, and
        queued messages of done tickets are dropped: the number of contacts
        deleted. Each sender runs it every round, so it reads first and
        writes (a lock, on SQLite the database's) only when there is work."""
        marks = ", ".join("?" * len(DONE))
        done = f"SELECT 1 FROM tickets k WHERE k.id = {{}}.ticket_id AND k.status IN ({marks})"
        stale = iso(now() - timedelta(seconds=KEEP_S))
        contacts = f"created_at < ? OR EXISTS ({done.format('notify_contacts')})"
        messages = f"state = 'queued' AND EXISTS ({done.format('notify_outbox')})"
        with self.database.reading() as db:
            work = (
                db.execute(
                    f"SELECT 1 FROM notify_contacts WHERE {contacts} LIMIT 1", [stale, *DONE]
                ).fetchone()
                or db.execute(
                    f"SELECT 1 FROM notify_outbox WHERE {messages} LIMIT 1", list(DONE)
                ).fetchone()
            )
        if not work:
            return 0
        with self.database.transaction() as db:
            db.execute(
                "UPDATE notify_outbox SET state = 'dropped', address = '', "
                f"last_error = 'ticket done' WHERE {messages}",
                list(DONE),
            )
            return db.execute(
                f"DELETE FROM notify_contacts WHERE {contacts}", [stale, *DONE]
            ).rowcount

    def notify_messages(self, branch_id: str, limit: int = 200) -> list[dict]:
        """A branch's newest messages with their delivery state, for staff."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT o.created_at, k.display, o.kind, o.channel, o.state, o.tries, "
                "o.last_error, o.sent_at FROM notify_outbox o "
                "JOIN tickets k ON k.id = o.ticket_id WHERE o.branch_id = ? "
                "ORDER BY o.created_at DESC LIMIT ?",
                [branch_id, limit],
            ).fetchall()
        keys = (
            "created_at",
            "ticket",
            "kind",
            "channel",
            "state",
            "tries",
            "last_error",
            "sent_at",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _remove(db, token: str) -> bool:
    """Delete a ticket's contact and drop its messages not sent yet (in ``db``'s transaction)."""
    ticket = "(SELECT id FROM tickets WHERE public_token = ?)"
    db.execute(
        "UPDATE notify_outbox SET state = 'dropped', address = '', last_error = 'removed' "
        f"WHERE state = 'queued' AND ticket_id = {ticket}",
        [token],
    )
    return (
        db.execute(f"DELETE FROM notify_contacts WHERE ticket_id = {ticket}", [token]).rowcount == 1
    )
