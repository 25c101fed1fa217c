"""Waiting-room displays: paired with a single-use code like kiosks, each with
its own revocable token and its settings (which services and counters it
shows, the languages it speaks, its volume); and the branch's message line."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

from server import events
from server.i18n import LANGUAGES
from server.storage.common import Rejected, Unauthorized, _hash, branch_today, iso, now
from server.storage.database import Database

#: last_seen_at is written at most this often per display (a page asks often)
SEEN_EVERY_S = 60
MAX_NAME = 100
MAX_MESSAGE = 200
MAX_PICKS = 50  # services or counters one display may be pointed at
DEFAULT_VOLUME = 80
#: a display's history: this many of the branch's newest calls of the day
RECENT_CALLS = 40


def _line(text: str, most: int, what: str, empty_ok: bool = False) -> str:
    """One printable line, spaces collapsed; else :class:`Rejected` saying why."""
    line = " ".join(str(text).split())
    if (not line and not empty_ok) or len(line) > most or not line.isprintable():
        least = 0 if empty_ok else 1
        raise Rejected(f"{what} is {least} to {most} printable characters on one line")
    return line


class Displays:
    database: Database

    def pair_display(self, code: str, name: str, address: str = "unknown") -> tuple[dict, str]:
        """Spend a pairing code on a new display: the display and its token
        (shown once, stored hashed)."""
        name = _line(name or "Display", MAX_NAME, "a display's name")
        code_hash = self.matching_code(code, address)
        token = secrets.token_urlsafe(32)
        display_id = f"d-{secrets.token_hex(6)}"
        with self.database.transaction() as db:
            branch_id = self.spend_code(db, code_hash)
            db.insert(
                "displays",
                {
                    "id": display_id,
                    "branch_id": branch_id,
                    "name": name,
                    "token_hash": _hash(token),
                    "settings": "{}",
                    "created_at": iso(now()),
                    "last_seen_at": iso(now()),
                },
            )
        return self.display(display_id), token

    def display_for_token(self, token: str) -> dict:
        """The display holding ``token``, else :class:`Unauthorized`; notes it was seen."""
        with self.database.reading() as db:
            row = db.execute(
                "SELECT id, revoked_at, last_seen_at FROM displays WHERE token_hash = ?",
                [_hash(token)],
            ).fetchone()
        if row is None:
            raise Unauthorized("unknown display token")
        if row[1] is not None:
            raise Unauthorized("this display has been revoked")
        if row[2] is None or row[2] < iso(now() - timedelta(seconds=SEEN_EVERY_S)):
            with self.database.transaction() as db:
                db.execute(
                    "UPDATE displays SET last_seen_at = ? WHERE id = ?", [iso(now()), row[0]]
                )
        return self.display(row[0])

    def display(self, display_id: str) -> dict:
        with self.database.reading() as db:
            row = db.execute(
                "SELECT d.id, d.branch_id, d.name, d.settings, d.created_at, d.revoked_at, "
                "d.last_seen_at, b.languages FROM displays d JOIN branches b "
                "ON b.id = d.branch_id WHERE d.id = ?",
                [display_id],
            ).fetchone()
        if row is None:
            raise Rejected(f"no display {display_id!r}")
        return _display(row)

    def displays(self, branch_id: str) -> list[dict]:
        """Every display of the branch, revoked ones too (the management page)."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT d.id, d.branch_id, d.name, d.settings, d.created_at, d.revoked_at, "
                "d.last_seen_at, b.languages FROM displays d JOIN branches b "
                "ON b.id = d.branch_id WHERE d.branch_id = ? ORDER BY d.created_at, d.id",
                [branch_id],
            ).fetchall()
        return [_display(row) for row in rows]

    def change_display(
        self,
        display_id: str,
        branch_id: str,
        *,
        name: str | None = None,
        services: list[str] | None = None,
        counters: list[str] | None = None,
        languages: list[str] | None = None,
        volume: int | None = None,
    ) -> bool:
        """Rename a display or point it elsewhere; what is not given stays. Its
        page follows at once (an event). False for no such display here."""
        changes: dict = {}
        if services is not None:
            changes["services"] = _picks(services, "services")
        if counters is not None:
            changes["counters"] = [_line(c, 30, "a counter") for c in _picks(counters, "counters")]
        if languages is not None:
            unknown = [code for code in languages if code not in LANGUAGES]
            if unknown:
                raise Rejected(f"a display speaks {', '.join(LANGUAGES)}, not {unknown[0]!r}")
            changes["languages"] = list(dict.fromkeys(languages))
        if volume is not None:
            if not isinstance(volume, int) or not 0 <= volume <= 100:
                raise Rejected("a display's volume is 0 to 100")
            changes["volume"] = volume
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT settings FROM displays WHERE id = ? AND branch_id = ? "
                "AND revoked_at IS NULL",
                [display_id, branch_id],
            ).fetchone()
            if row is None:
                return False
            if "services" in changes:
                known = {
                    r[0]
                    for r in db.execute("SELECT id FROM services WHERE branch_id = ?", [branch_id])
                }
                strange = [s for s in changes["services"] if s not in known]
                if strange:
                    raise Rejected(f"no service {strange[0]!r} in this branch")
            settings = json.loads(row[0]) | changes
            db.execute(
                "UPDATE displays SET settings = ?, name = COALESCE(?, name) WHERE id = ?",
                [
                    json.dumps(settings),
                    None if name is None else _line(name, MAX_NAME, "a display's name"),
                    display_id,
                ],
            )
            events.record(db, branch_id, None, events.DISPLAY, display=display_id)
        return True

    def revoke_display(self, display_id: str, branch_id: str | None = None) -> bool:
        """Refuse the display's token from now on; its open stream ends at once."""
        with self.database.transaction() as db:
            row = db.execute(
                "SELECT branch_id FROM displays WHERE id = ? AND revoked_at IS NULL "
                "AND branch_id = COALESCE(?, branch_id)",
                [display_id, branch_id],
            ).fetchone()
            if row is None:
                return False
            db.execute("UPDATE displays SET revoked_at = ? WHERE id = ?", [iso(now()), display_id])
            events.record(db, row[0], None, events.DISPLAY, display=display_id, revoked=True)
        return True

    def display_message(self, branch_id: str) -> str:
        with self.database.reading() as db:
            row = db.execute(
                "SELECT text FROM display_messages WHERE branch_id = ?", [branch_id]
            ).fetchone()
        return row[0] if row else ""

    def set_display_message(self, branch_id: str, text: str) -> str:
        """The line every display of the branch shows (empty: none); shown at once."""
        line = _line(text, MAX_MESSAGE, "the displays' message", empty_ok=True)
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM branches WHERE id = ?", [branch_id]).fetchone() is None:
                raise Rejected(f"no branch {branch_id!r}")
            db.upsert(
                "display_messages",
                {"branch_id": branch_id, "text": line, "updated_at": iso(now())},
                ["branch_id"],
            )
            events.record(db, branch_id, None, events.DISPLAY, message=True)
        return line

    def recent_calls(self, branch_id: str, limit: int = RECENT_CALLS) -> list[dict]:
        """The branch's newest calls (recalls too) of its day, newest first: what
        the live channel said, so every display tells the same story."""
        with self.database.reading() as db:
            _, midnight = branch_today(db, branch_id)
            rows = db.execute(
                "SELECT id, queue_id, data, created_at FROM events WHERE branch_id = ? "
                "AND kind = ? AND created_at >= ? ORDER BY id DESC LIMIT ?",
                [branch_id, events.CALLED, iso(midnight), limit],
            ).fetchall()
        calls = []
        for event_id, queue_id, data, at in rows:
            said = json.loads(data)
            calls.append(
                {
                    "id": int(event_id),
                    "ticket": said.get("ticket"),
                    "number": said.get("number", ""),
                    "counter": said.get("counter", ""),
                    "service": queue_id,
                    "recall": bool(said.get("recall")),
                    "at": at,
                }
            )
        return calls

    def call_event(self, branch_id: str, event_id: int) -> dict | None:
        """One call of the branch by its event id (a display's sound for it)."""
        with self.database.reading() as db:
            row = db.execute(
                "SELECT data, created_at, queue_id FROM events "
                "WHERE id = ? AND branch_id = ? AND kind = ?",
                [event_id, branch_id, events.CALLED],
            ).fetchone()
        if row is None:
            return None
        said = json.loads(row[0])
        return {
            "number": said.get("number", ""),
            "counter": said.get("counter", ""),
            "service": row[2],
            "at": row[1],
        }


def _picks(values: list[str], what: str) -> list[str]:
    if not isinstance(values, list) or len(values) > MAX_PICKS:
        raise Rejected(f"a display shows at most {MAX_PICKS} {what}")
    return list(dict.fromkeys(_line(v, 64, f"one of its {what}") for v in values))


def _display(row) -> dict:
    settings = json.loads(row[3] or "{}")
    branch_languages = [code for code in json.loads(row[7]) if code in LANGUAGES]
    return {
        "id": row[0],
        "branch_id": row[1],
        "name": row[2],
        "created_at": row[4],
        "revoked": row[5] is not None,
        "last_seen_at": row[6],
        "services": settings.get("services", []),
        "counters": settings.get("counters", []),
        # what it speaks: its own choice, else the branch's languages
        "languages": settings.get("languages") or branch_languages or ["en"],
        "volume": settings.get("volume", DEFAULT_VOLUME),
    }
