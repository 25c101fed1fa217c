"""The live channel: the one place the server's events flow through.

A change that others may want to see (a ticket created, called, recalled,
started, served, cancelled, moved) records an event with :func:`record` in the
transaction of the change itself: an ``events`` row, and on PostgreSQL a
``pg_notify`` that the database delivers only when that transaction commits.
So an event is never announced for a change that rolled back, and never lost
for one that committed, whichever process made it (a worker, the CLI).

Each worker process runs one :class:`Hub`. It learns of new events

- on PostgreSQL from one ``LISTEN`` connection (psycopg 3, async); after a
  reconnect (the database restarted) it catches up from the table by id;
- on SQLite by reading the rows after the last id it saw: at once when a
  transaction of its own process recorded one, otherwise every
  :data:`SQLITE_POLL_S` (another worker, the CLI).

and hands each event, in order, to the subscribers of its branch (and queue):
bounded asyncio queues, one per live page. A subscriber that falls
:data:`QUEUE_SIZE` events behind is dropped, not buffered for: its page
reconnects and is sent the current state. Before any subscriber sees an
event, the hub forgets the cached positions of the event's queue (and the
branch's estimates when a ticket left a queue), so what a page is pushed is
never older than the change that woke it, in any worker.

Rows are pruned after :data:`KEEP_S` (a day): the table is a channel, not a log.
The same round erases call-backs' numbers past their retention
(server.storage.callbacks).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from server.storage.common import iso, now
from server.storage.database import Tx

if TYPE_CHECKING:
    from server.storage import Storage

log = logging.getLogger("vuoro.server.events")

CHANNEL = "vuoro_events"
#: kinds of event: a ticket joined a queue (from a kiosk, or placed by staff),
#: was called to a counter (or recalled), or its status changed otherwise; a
#: display's settings or the branch's display message changed, or one was revoked
CREATED, CALLED, STATUS, DISPLAY = "created", "called", "status", "display"
COUNTER = "counter"  # a counter opened, paused or closed
#: a call-back request was made, or staff marked a try (server.storage.callbacks);
#: recorded under CALLBACK_QUEUE, which no service can be named, so the pages of
#: tickets in the branch's queues are not woken by it
CALLBACK, CALLBACK_QUEUE = "callback", "~callbacks"
SQLITE_POLL_S = 0.5
#: PostgreSQL refuses a notification payload of 8,000 bytes or more
NOTIFY_MAX_BYTES = 7000
#: after a commit of our own process, look again this soon (SQLAlchemy's commit
#: event comes just before the commit reaches the file)
SQLITE_WAKE_RETRIES_S = (0.0, 0.01, 0.03, 0.1, 0.25)
QUEUE_SIZE = 64
KEEP_S = 24 * 3600
PRUNE_EVERY_S = 600.0
#: a LISTEN connection idle this long is checked with a query
LISTEN_CHECK_S = 5.0
RECONNECT_FIRST_S = 0.2
RECONNECT_MAX_S = 5.0
#: catching up on PostgreSQL re-reads this many ids below the highest one seen:
#: ids are taken in order, but transactions may commit out of it
CATCH_UP_WINDOW = 1000
SEEN_KEPT = 10 * CATCH_UP_WINDOW
_PENDING = "vuoro_events_pending"


@dataclass(frozen=True)
class Event:
    id: int
    branch_id: str
    queue_id: str | None
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ticket_id(self) -> str | None:
        return self.data.get("ticket")

    @classmethod
    def from_row(cls, row) -> Event:
        return cls(int(row[0]), row[1], row[2], row[3], json.loads(row[4]))

    def payload(self) -> str:
        return json.dumps(
            {
                "id": self.id,
                "b": self.branch_id,
                "q": self.queue_id,
                "k": self.kind,
                "d": self.data,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_payload(cls, text: str) -> Event:
        raw = json.loads(text)
        return cls(int(raw["id"]), raw["b"], raw["q"], raw["k"], raw["d"])


def record(db: Tx, branch_id: str, queue_id: str | None, kind: str, **data: Any) -> None:
    """Record an event in ``db``'s transaction: seen by every worker once (and
    only if) that transaction commits. ``data`` is small JSON: ids, numbers,
    counters, statuses; never a ticket's public token."""
    text = json.dumps(data, separators=(",", ":"))
    created = db.insert(
        "events",
        {
            "branch_id": branch_id,
            "queue_id": queue_id,
            "kind": kind,
            "data": text,
            "created_at": iso(now()),
        },
    )
    if db.dialect.name == "postgresql":
        event = Event(created.inserted_primary_key[0], branch_id, queue_id, kind, data)
        payload = event.payload()
        if len(payload.encode()) > NOTIFY_MAX_BYTES:  # e.g. a batch of 500 tickets
            payload = json.dumps({"id": event.id})  # the listeners read the row itself
        db.execute("SELECT pg_notify(?, ?)", [CHANNEL, payload])
    else:
        db.conn.info[_PENDING] = True  # the commit wakes this process's hub


class Ended(Exception):
    """The subscription is over: dropped for falling behind, or the server stops."""


class Subscription:
    """One live page's view of a branch (or of one of its queues)."""

    def __init__(self, hub: Hub, key: tuple[str, str | None], size: int) -> None:
        self.hub, self.key = hub, key
        self.ended = False
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(size)

    def offer(self, event: Event) -> None:
        if self.ended:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.info("a live page fell %d events behind: dropped", self._queue.maxsize)
            self.end()

    async def next(self, timeout_s: float) -> list[Event]:
        """The events since the last call (waiting at most ``timeout_s`` for one;
        none then). :class:`Ended` once the subscription is over."""
        if self.ended:
            raise Ended
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return []
        events = [first]
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        if self.ended or None in events:
            raise Ended
        return events  # type: ignore[return-value]

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)  # wakes a reader waiting on an empty queue
        self.hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()


def end_all_subscriptions() -> None:
    """The server is stopping: every live page's stream ends now (they would
    keep its graceful shutdown waiting). On the event loop's thread."""
    for hub in list(_hubs):
        hub.end_subscriptions()


class Hub:
    """A worker's end of the channel: listens, invalidates caches, fans out."""

    def __init__(self, storage: Storage, queue_size: int = QUEUE_SIZE) -> None:
        self.storage = storage
        self.queue_size = queue_size
        self.last_id = 0
        self._subscribers: dict[tuple[str, str | None], set[Subscription]] = {}
        self._seen: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._postgresql = storage.database.dialect.name == "postgresql"
        self.connected = False  # PostgreSQL: the LISTEN connection is up
        self.reconnects = 0
        self._listened_before = False

    # -- life -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Begin listening (idempotent); events from now on are delivered."""
        if self.running:
            return
        newest = await asyncio.to_thread(self._newest_id)
        if self.running:  # started by another caller meanwhile
            return
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.last_id = newest
        self._seen.clear()
        if not self._postgresql:
            sa.event.listen(self.storage.database.engine, "commit", self._committed)
        _hubs.add(self)
        self._task = asyncio.create_task(self._run(), name="vuoro-events")

    async def stop(self) -> None:
        self.end_subscriptions()
        _hubs.discard(self)
        if not self._postgresql and self._loop is not None:
            with contextlib.suppress(sa.exc.InvalidRequestError):
                sa.event.remove(self.storage.database.engine, "commit", self._committed)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # -- subscribers ----------------------------------------------------------------

    def subscribe(self, branch_id: str, queue_id: str | None = None) -> Subscription:
        """Events of ``branch_id`` (only of ``queue_id`` and branch-wide ones, if
        given), from now on. Use as a context manager, or :meth:`Subscription.end`."""
        subscription = Subscription(self, (branch_id, queue_id), self.queue_size)
        self._subscribers.setdefault(subscription.key, set()).add(subscription)
        return subscription

    @property
    def subscriptions(self) -> int:
        return sum(len(each) for each in self._subscribers.values())

    def _remove(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.key)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.key]

    def end_subscriptions(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.end()

    def dispatch(self, event: Event) -> None:
        """One event, once: caches first, then every subscriber it concerns."""
        if event.id in self._seen:
            return
        self._seen[event.id] = None
        while len(self._seen) > SEEN_KEPT:
            self._seen.popitem(last=False)
        self.last_id = max(self.last_id, event.id)
        self.storage.forget_positions(event.branch_id, event.queue_id)
        if event.kind not in (CREATED, CALLBACK):  # a ticket left a queue: times changed
            self.storage.forget_estimates(event.branch_id)
        if event.queue_id is None:  # branch-wide: every subscriber of the branch
            keys = [key for key in self._subscribers if key[0] == event.branch_id]
        else:
            keys = [(event.branch_id, None), (event.branch_id, event.queue_id)]
        for key in keys:
            for subscription in list(self._subscribers.get(key, ())):
                subscription.offer(event)

    # -- listening ------------------------------------------------------------------

    def _committed(self, conn: sa.Connection) -> None:
        """SQLAlchemy's commit event (any thread): a transaction that recorded an
        event is committing, so look now rather than at the next poll."""
        if conn.info.pop(_PENDING, False) and self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        pruning = asyncio.create_task(self._prune_now_and_then())
        delay = RECONNECT_FIRST_S
        try:
            while True:
                try:
                    if self._postgresql:
                        await self._listen_postgresql()
                    else:
                        await self._poll_sqlite()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the database went away: back off, then again
                    self.connected = False
                    log.warning("live channel: %s; again in %.1f s", _first_line(exc), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                else:
                    delay = RECONNECT_FIRST_S
        finally:
            pruning.cancel()

    async def _poll_sqlite(self) -> None:
        """Read the rows after the last id, when woken or every SQLITE_POLL_S."""
        assert self._wake is not None
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), SQLITE_POLL_S)
                woken = True
            self._wake.clear()
            for pause in SQLITE_WAKE_RETRIES_S if woken else (0.0,):
                if pause:
                    await asyncio.sleep(pause)
                if self._read_since(self.last_id):  # ids commit in order there: one writer
                    break

    async def _listen_postgresql(self) -> None:
        import psycopg

        url = self.storage.database.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            # what committed while nobody here listened (none before the first time)
            floor = self.last_id - (CATCH_UP_WINDOW if self._listened_before else 0)
            again = self._listened_before
            self._listened_before = True
            missed = await asyncio.to_thread(self._read_since, max(0, floor))
            self.connected = True
            if again:
                self.reconnects += 1
                log.warning("live channel: listening again, %d events read back", len(missed))
            while True:
                async for note in conn.notifies(timeout=LISTEN_CHECK_S):
                    try:
                        if '"k":' not in note.payload:  # too long to notify: in the table
                            floor = int(json.loads(note.payload)["id"]) - 1
                            await asyncio.to_thread(self._read_since, floor)
                            continue
                        self.dispatch(Event.from_payload(note.payload))
                    except (ValueError, KeyError, TypeError):
                        log.warning("live channel: a notification not ours: %.80r", note.payload)
                await conn.execute("SELECT 1")  # raises if the server went away

    async def _prune_now_and_then(self) -> None:
        await asyncio.sleep(random.uniform(1.0, 10.0))  # workers apart
        while True:
            try:
                await asyncio.to_thread(self._prune)
            except sa.exc.SQLAlchemyError as exc:
                log.warning("live channel: pruning failed: %s", _first_line(exc))
            await asyncio.sleep(PRUNE_EVERY_S)

    # -- the table ------------------------------------------------------------------

    def _newest_id(self) -> int:
        with self.storage.reading() as db:
            return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])

    def _read_since(self, floor: int) -> list[Event]:
        with self.storage.reading() as db:
            rows = db.execute(
                "SELECT id, branch_id, queue_id, kind, data FROM events WHERE id > ? ORDER BY id",
                [floor],
            ).fetchall()
        events = [Event.from_row(row) for row in rows]
        if self._on_loop():
            self._dispatch_all(events)
        elif self._loop is not None:
            self._loop.call_soon_threadsafe(self._dispatch_all, events)
        return events

    def _on_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _dispatch_all(self, events: list[Event]) -> None:
        for event in events:
            self.dispatch(event)

    def _prune(self) -> None:
        before = iso(now() - timedelta(seconds=KEEP_S))
        with self.storage.transaction() as db:
            db.execute("DELETE FROM events WHERE created_at < ?", [before])
        # what the call-back page promises: a closed request's number and reason
        # are erased once its branch's retention has passed, without a cron job
        erased = self.storage.purge_callbacks()
        if erased:
            log.info("call-backs: %d numbers and reasons erased after their retention", erased)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def recorded(storage: Storage) -> Iterator[list[Event]]:
    """The events recorded while the block runs (tests, tools): read back by id."""
    with storage.reading() as db:
        start = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
    found: list[Event] = []
    yield found
    with storage.reading() as db:
        rows = db.execute(
            "SELECT id, branch_id, queue_id, kind, data FROM events WHERE id > ? ORDER BY id",
            [start],
        ).fetchall()
    found.extend(Event.from_row(row) for row in rows)
