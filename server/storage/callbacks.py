"""Call-backs: instead of waiting in the branch, a customer leaves a phone
number and a short reason; staff call back from the counter screen.

A request is ``waiting`` until staff mark it ``reached``, or mark it not
reached as many times as the branch allows (``max_tries``), when it is
``given_up``. Marking is one conditional UPDATE (the state and the tries the
staff member saw): of two people marking one request at the same instant, on
any worker, one wins and the other is told what happened instead
(:class:`CallbackChanged`). Every change records an event, so counter screens
follow the list live.

The phone number and the reason are personal data: ``purge_callbacks``
blanks them once a closed request is older than its branch's retention
(``vuoro-server callbacks-purge``); the figures (times, tries, outcome) stay
for the reports.
"""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from catalogue import N_
from server import events, phones, throttle
from server.storage.calling import REASON_MAX, one_line
from server.storage.common import Rejected, Throttled, iso, now
from server.storage.database import Database, Tx
from server.storage.reports import p90

STATES = ("waiting", "reached", "given_up")
ORIGINS = ("web", "kiosk", "ticket")
#: a branch without a [callbacks] table in its branch file has these
DEFAULTS = {"enabled": False, "country": "FI", "max_tries": 3, "retention_days": 30}
MAX_TRIES_RANGE = range(1, 21)
RETENTION_RANGE = range(1, 3651)
#: requests per address: a few at once, then one every ten minutes (refused ones count)
ADDRESS = throttle.Bucket("callback-address", capacity=6, leak_s=600)
#: requests from everywhere: a flood from many addresses still cannot fill the list
SERVER = throttle.Bucket("callback-server", capacity=300, leak_s=2)
#: open requests a branch holds at most (beyond: refused, the page says why)
OPEN_MAX = 1000
#: open requests the counter screen lists, oldest first
LISTED_MAX = 100
#: the confirmation's "usually within" comes from this many recent days ...
TYPICAL_DAYS = 14
#: ... when at least this many requests were reached in them
TYPICAL_MIN = 3

#: what a refused request or mark says (the pages translate them)
SAID = {
    "reason_missing": N_("Write in a few words what the call is about."),
    "reason_long": N_("The reason is at most {most} characters."),
    "service": N_("Choose a service from the list."),
    "full": N_("The call-back list is full. Please take a number at the branch or call us."),
    "unknown": N_("No such call-back request."),
    "reached": N_("Someone marked this call-back reached just now."),
    "given_up": N_("This call-back was given up just now."),
    "tried": N_("Someone marked a try just now (tries: {tries}). Check the list again."),
}


class CallbackChanged(Rejected):
    """The request is not as the staff member saw it: someone else marked it
    first (or it is unknown). ``key`` is one of :data:`SAID`, ``values`` fill it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(SAID[key])
        self.key, self.values = key, values


class CallbackRefused(Rejected):
    """A request that cannot be taken as sent; ``key`` is one of :data:`SAID`."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(SAID[key])
        self.key, self.values = key, values


def check_settings(value: object, label: str = "callbacks") -> dict:
    """A branch file's ``[callbacks]`` table, every key defaulted; Rejected names the key."""
    if value is None:
        return dict(DEFAULTS)
    if not isinstance(value, dict):
        raise Rejected(f"{label}: a table (enabled, country, max_tries, retention_days)")
    unknown = sorted(set(value) - set(DEFAULTS))
    if unknown:
        raise Rejected(f"{label}: unknown key {unknown[0]!r} (known: {', '.join(DEFAULTS)})")
    settings = dict(DEFAULTS) | value
    if not isinstance(settings["enabled"], bool):
        raise Rejected(f"{label}: enabled must be true or false")
    country = settings["country"]
    if not phones.known_region(country):
        raise Rejected(f"{label}: country must be a two-letter country code such as FI or SE")
    for key, allowed in (("max_tries", MAX_TRIES_RANGE), ("retention_days", RETENTION_RANGE)):
        number = settings[key]
        if isinstance(number, bool) or not isinstance(number, int) or number not in allowed:
            most = f"from {allowed[0]} to {allowed[-1]}"
            raise Rejected(f"{label}: {key} must be a whole number {most}")
    return settings


def clean_callback_reason(reason: str) -> str:
    """The reason as stored: one line as a call's reason is
    (:func:`server.storage.calling.one_line`), 1 to REASON_MAX characters."""
    text = one_line(reason)
    if not text:
        raise CallbackRefused("reason_missing")
    if len(text) > REASON_MAX:
        raise CallbackRefused("reason_long", most=REASON_MAX)
    return text


def settings_of(db: Tx, branch_id: str) -> dict:
    """The branch's call-back settings (the defaults where it has none)."""
    row = db.execute(
        "SELECT enabled, country, max_tries, retention_days FROM callback_settings "
        "WHERE branch_id = ?",
        [branch_id],
    ).fetchone()
    if row is None:
        return dict(DEFAULTS)
    return {
        "enabled": bool(row[0]),
        "country": row[1],
        "max_tries": row[2],
        "retention_days": row[3],
    }


def put_settings(db: Tx, branch_id: str, settings: dict) -> None:
    """Store a branch's settings (as :func:`check_settings` made them)."""
    db.upsert(
        "callback_settings",
        {
            "branch_id": branch_id,
            "enabled": int(settings["enabled"]),
            "country": settings["country"],
            "max_tries": settings["max_tries"],
            "retention_days": settings["retention_days"],
        },
        ["branch_id"],
    )


def _seconds(start: str, end: str) -> float:
    return max((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 0.0)


class Callbacks:
    database: Database

    def callback_settings(self, branch_id: str) -> dict:
        """enabled, country, max_tries, retention_days of the branch."""
        with self.database.reading() as db:
            return settings_of(db, branch_id)

    def request_callback(
        self,
        branch_id: str,
        phone: str,
        reason: str,
        service_id: str | None = None,
        language: str = "en",
        origin: str = "web",
        address: str = "unknown",
    ) -> dict:
        """A customer asks to be called back: the request (id, phone in E.164,
        created_at), recorded with its event.

        Every attempt from an address counts against its bucket (:data:`ADDRESS`,
        and :data:`SERVER` for all): :class:`Throttled` while either is full,
        before anything is read. Then the number (:class:`phones.PhoneRefused`),
        the reason and the service (:class:`CallbackRefused`) are checked;
        nothing of a refused request is stored.
        """
        if origin not in ORIGINS:
            raise Rejected(f"origin is one of {', '.join(ORIGINS)}")
        source = throttle.address_key(address)
        with self.database.transaction() as db:
            at = time.time()
            wait = max(
                throttle.wait_s(throttle.level(db, ADDRESS, source, at), ADDRESS),
                throttle.wait_s(throttle.level(db, SERVER, "all", at), SERVER),
            )
            if wait:
                raise Throttled("too many call-back requests", wait)
            throttle.add(db, ADDRESS, source, at)
            throttle.add(db, SERVER, "all", at)
            settings = settings_of(db, branch_id)
        number = phones.normalise(phone, settings["country"])
        text = clean_callback_reason(reason)
        with self.database.transaction() as db:
            if service_id:
                listed = db.execute(
                    "SELECT 1 FROM services WHERE branch_id = ? AND id = ? AND listed = 1",
                    [branch_id, service_id],
                ).fetchone()
                if listed is None:
                    raise CallbackRefused("service")
            db.lock_name("callbacks", branch_id)
            waiting = db.execute(
                "SELECT COUNT(*) FROM callbacks WHERE branch_id = ? AND state = 'waiting'",
                [branch_id],
            ).fetchone()[0]
            if waiting >= OPEN_MAX:
                raise CallbackRefused("full")
            request = {
                "id": str(uuid.uuid4()),
                "branch_id": branch_id,
                "service_id": service_id or None,
                "phone": number,
                "reason": text,
                "language": language,
                "origin": origin,
                "created_at": iso(now()),
                "state": "waiting",
                "tries": 0,
            }
            db.insert("callbacks", request)
            events.record(
                db, branch_id, events.CALLBACK_QUEUE, events.CALLBACK, callback=request["id"]
            )
        return {k: request[k] for k in ("id", "phone", "created_at", "service_id")}

    def open_callbacks(self, branch_id: str) -> list[dict]:
        """The branch's waiting requests, oldest first (at most LISTED_MAX):
        id, service, phone, reason, origin, language, when, seconds waited so
        far, tries, the last try, and how many tries the branch allows."""
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT id, service_id, phone, reason, origin, language, created_at, tries, "
                "last_try_at FROM callbacks WHERE branch_id = ? AND state = 'waiting' "
                f"ORDER BY created_at, id LIMIT {LISTED_MAX}",
                [branch_id],
            ).fetchall()
            most = settings_of(db, branch_id)["max_tries"]
        moment = iso(now())
        keys = (
            "id",
            "service_id",
            "phone",
            "reason",
            "origin",
            "language",
            "created_at",
            "tries",
            "last_try_at",
        )
        listed = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["waited_s"] = round(_seconds(item["created_at"], moment))
            item["max_tries"] = most
            listed.append(item)
        return listed

    def mark_callback(
        self,
        branch_id: str,
        callback_id: str,
        reached: bool,
        staff_id: int | None = None,
        seen_tries: int | None = None,
    ) -> dict:
        """Staff called: ``reached``, or not (one more try; given up at the
        branch's ``max_tries``). ``seen_tries``: the tries the staff member saw
        on their screen; a request marked by someone else since (or closed) is
        left alone and :class:`CallbackChanged` says what happened.

        One conditional UPDATE decides: two marks at the same instant, on any
        worker, cannot both apply. Its state and tries now."""
        if not isinstance(callback_id, str) or not 1 <= len(callback_id) <= 64:
            raise CallbackChanged("unknown")
        moment = iso(now())
        with self.database.transaction() as db:
            most = settings_of(db, branch_id)["max_tries"]
            condition = "id = ? AND branch_id = ? AND state = 'waiting'"
            args: list = [callback_id, branch_id]
            if seen_tries is not None:
                condition += " AND tries = ?"
                args.append(seen_tries)
            if reached:
                changed = db.execute(
                    "UPDATE callbacks SET state = 'reached', reached_at = ?, closed_at = ?, "
                    f"last_try_at = ?, tries = tries + 1, staff_id = ? WHERE {condition}",
                    [moment, moment, moment, staff_id, *args],
                ).rowcount
            else:
                changed = db.execute(
                    "UPDATE callbacks SET "
                    "state = CASE WHEN tries + 1 >= ? THEN 'given_up' ELSE 'waiting' END, "
                    "closed_at = CASE WHEN tries + 1 >= ? THEN ? ELSE NULL END, "
                    f"last_try_at = ?, tries = tries + 1, staff_id = ? WHERE {condition}",
                    [most, most, moment, moment, staff_id, *args],
                ).rowcount
            row = db.execute(
                "SELECT state, tries FROM callbacks WHERE id = ? AND branch_id = ?",
                [callback_id, branch_id],
            ).fetchone()
            if row is None:
                raise CallbackChanged("unknown")
            if changed != 1:
                if row[0] in ("reached", "given_up"):
                    raise CallbackChanged(row[0])
                raise CallbackChanged("tried", tries=row[1])
            events.record(
                db,
                branch_id,
                events.CALLBACK_QUEUE,
                events.CALLBACK,
                callback=callback_id,
                state=row[0],
                tries=row[1],
            )
        return {"id": callback_id, "state": row[0], "tries": row[1]}

    def purge_callbacks(self, days: int | None = None, branch_id: str | None = None) -> int:
        """Blank the phone and the reason of requests closed longer ago than
        ``days`` (each branch's own retention when None); how many were blanked.
        Times, tries and outcome stay for the reports."""
        if days is not None and (isinstance(days, bool) or days not in range(0, 3651)):
            raise Rejected(f"days must be a whole number from 0 to {RETENTION_RANGE[-1]}")
        moment = now()
        blanked = 0
        with self.database.transaction() as db:
            branches = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT branch_id FROM callbacks WHERE purged_at IS NULL "
                    "AND state != 'waiting'" + (" AND branch_id = ?" if branch_id else ""),
                    [branch_id] if branch_id else [],
                ).fetchall()
            ]
            for branch in branches:
                keep = days if days is not None else settings_of(db, branch)["retention_days"]
                blanked += db.execute(
                    "UPDATE callbacks SET phone = '', reason = '', purged_at = ? "
                    "WHERE branch_id = ? AND state != 'waiting' AND purged_at IS NULL "
                    "AND closed_at <= ?",
                    [iso(moment), branch, iso(moment - timedelta(days=keep))],
                ).rowcount
        return blanked

    def callback_typical_wait_s(self, branch_id: str) -> float | None:
        """The median time from request to reached over the last TYPICAL_DAYS
        (None with fewer than TYPICAL_MIN reached): the confirmation page's
        "usually within"."""
        since = iso(now() - timedelta(days=TYPICAL_DAYS))
        with self.database.reading() as db:
            rows = db.execute(
                "SELECT created_at, reached_at FROM callbacks WHERE branch_id = ? "
                "AND state = 'reached' AND created_at >= ?",
                [branch_id, since],
            ).fetchall()
        delays = [_seconds(created, reached) for created, reached in rows]
        return statistics.median(delays) if len(delays) >= TYPICAL_MIN else None

    def callback_figures(
        self, branch_id: str, first: date, last: date, weekday: int | None = None
    ) -> dict:
        """The period's call-backs (by the branch-local day they were asked
        for; only ``weekday``s when given): per day and in all, requests,
        reached, given up, still waiting, the reach rate (reached of those
        closed) and the delay from request to reached (median, 90th percentile)."""
        with self.database.reading() as db:
            row = db.execute("SELECT timezone FROM branches WHERE id = ?", [branch_id]).fetchone()
            if row is None:
                raise Rejected(f"no branch {branch_id!r}")
            zone = ZoneInfo(row[0])
            since = datetime.combine(first, datetime.min.time(), tzinfo=zone)
            until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=zone)
            rows = db.execute(
                "SELECT created_at, state, reached_at FROM callbacks WHERE branch_id = ? "
                "AND created_at >= ? AND created_at < ? ORDER BY created_at",
                [branch_id, iso(since), iso(until)],
            ).fetchall()
        days: dict[str, dict] = {}
        for created, state, reached in rows:
            local = datetime.fromisoformat(created).astimezone(zone).date()
            if weekday is not None and local.weekday() != weekday:
                continue
            day = days.setdefault(local.isoformat(), {"states": [], "delays": []})
            day["states"].append(state)
            if state == "reached" and reached:
                day["delays"].append(_seconds(created, reached))
        per_day = [{"day": day, **_summary(d["states"], d["delays"])} for day, d in days.items()]
        return {
            "days": per_day,
            "total": _summary(
                [s for d in days.values() for s in d["states"]],
                [v for d in days.values() for v in d["delays"]],
            ),
        }


def _summary(states: list[str], delays: list[float]) -> dict:
    reached, given_up = states.count("reached"), states.count("given_up")
    closed = reached + given_up
    return {
        "requests": len(states),
        "reached": reached,
        "given_up": given_up,
        "waiting": states.count("waiting"),
        "reach_rate": reached / closed if closed else None,
        "delay_median_s": statistics.median(delays) if delays else None,
        "delay_p90_s": p90(delays),
    }
