"""The waiting-room display: how long a call takes from the staff console to
the displays, with one and with many connected, on SQLite with one worker and
on PostgreSQL with several, and the server's memory per connected display.

A call is a ``recall`` pressed in the staff console over HTTP (``POST
/console/act``, the counter's one called ticket announced again: each recall
is a new call with a new event id). Its latency runs from sending that form
to the moment a display's stream (``GET /display/events``, Server-Sent
Events, each message the display's whole state) brings a state whose newest
call is a new one; the figures pool every display's latency over every call.

The displays are Server-Sent Events clients on one asyncio loop (aiohttp),
each a display paired with its own single-use code and holding its own
token, as many as a branch's TVs and more: the server renders each one's
state and sends it down each stream. The page's own work on a new state (the
DOM, the sound) costs the same on every TV and is not the server's; the page
in real Chromium is exercised by tests/test_display_page.py. It is not timed
here: the page holds each call on screen for its announcement (seconds, and
calls arriving meanwhile wait their turn, as the issue asks), so its DOM
with calls half a second apart would time the page's queue, and calls far
enough apart for it would take minutes. The client timestamps a message
when its line arrives, before parsing it, but 100 clients on one loop still
queue behind each other: the many-display figures include that.

Memory: the server's resident memory (summed over its processes) with no
display connected, after a few streams were opened and closed so every
worker's live channel is running, and with every display connected; the
difference per display. Also the bytes a display receives for a call (its
state as JSON).

Displays are paired through the server's storage (``new_pairing_code`` and
``pair_display``, what ``POST /display/pair`` runs), one code at a time: a
pairing checks its code against every live one, an Argon2 hash each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.bench_fleet import memory_dir, proc_field, tree
from bench.conftest import FULL
from bench.fleet import percentile
from server import branch_file
from server.staff import Staff
from server.storage import Storage
from sync import daemon, tickets
from tests.postgres import running_cluster
from tests.server_process import DEMO_BRANCH, Server
from tests.web import PASSWORD

STAFF, COUNTER = "bench-counter", "1"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SEEN_TIMEOUT_S = 30.0  # a display that has not seen a call by then missed it


@dataclass(frozen=True)
class Scale:
    displays: int  # the "many" runs; the other runs have one
    calls: int  # measured calls a run
    spacing_s: float  # between the calls' start
    settle_s: float  # before the server's memory is read
    pg_workers: int  # `vuoro-server serve --workers` on PostgreSQL


FULL_SCALE = Scale(displays=100, calls=30, spacing_s=0.5, settle_s=1.0, pg_workers=4)
# two workers prove the path across workers and start in half the time of four
TINY_SCALE = Scale(displays=3, calls=3, spacing_s=0.2, settle_s=0.2, pg_workers=2)


# -- a display's stream -------------------------------------------------------------


@dataclass
class DisplayStream:
    """One display following its stream: each message's arrival, newest call and size."""

    token: str
    newest: int = 0  # the newest call's id in the latest state
    messages: list[tuple[float, int, int]] = field(default_factory=list)  # (t, newest, bytes)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None
    failure: str = ""

    async def follow(self, session: aiohttp.ClientSession, url: str) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        try:
            async with session.get(f"{url}/display/events", headers=headers) as reply:
                if reply.status != 200:
                    self.failure = f"events {reply.status}"
                    return
                while True:
                    line = await reply.content.readline()
                    at = time.monotonic()
                    if not line:
                        self.failure = "stream ended"
                        return
                    if not line.startswith(b"data:"):
                        continue
                    state = json.loads(line[5:])
                    calls = state.get("calls") or []
                    self.newest = calls[0]["id"] if calls else 0
                    self.messages.append((at, self.newest, len(line[5:].strip())))
                    self.arrived.set()
        except (OSError, aiohttp.ClientError, ValueError) as exc:
            self.failure = type(exc).__name__
        finally:
            self.arrived.set()  # a waiter learns of the failure

    def start(self, session: aiohttp.ClientSession, url: str) -> None:
        self.task = asyncio.create_task(self.follow(session, url))

    async def first_state(self) -> None:
        """Wait for the stream's first message (the state when it opened)."""
        deadline = time.monotonic() + SEEN_TIMEOUT_S
        while not self.messages and not self.failure and time.monotonic() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        assert self.messages and not self.failure, self.failure or "no state within 30 s"

    def seen_after(self, began: float, before: int) -> tuple[float, int] | None:
        """The first message since ``began`` with a newer call than ``before``:
        its arrival and size."""
        for at, newest, size in self.messages:
            if at >= began and newest > before:
                return at, size
        return None

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


# -- the console --------------------------------------------------------------------


class Console:
    """The counter's staff member in the console: logged in, one ticket called."""

    def __init__(self, url: str) -> None:
        self.url = url
        # the session cookie comes from 127.0.0.1: aiohttp keeps cookies of IPs only if told
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=aiohttp.ClientTimeout(total=60)
        )
        self.csrf = ""

    async def log_in(self) -> None:
        async with self.session.post(
            f"{self.url}/console/login",
            data={"username": STAFF, "password": PASSWORD},
            allow_redirects=False,
        ) as reply:
            assert reply.status == 303, f"login: {reply.status} {await reply.text()}"
        async with self.session.get(f"{self.url}/console") as reply:
            found = CSRF.search(await reply.text())
        assert found, "no CSRF token in the console"
        self.csrf = found.group(1)

    async def act(self, action: str) -> str:
        """The console's form; the message it shows."""
        async with self.session.post(
            f"{self.url}/console/act",
            data={"csrf": self.csrf, "action": action},
            allow_redirects=False,
        ) as reply:
            assert reply.status == 303, f"{action}: {reply.status}"
            return reply.headers["Location"].partition("msg=")[2]

    async def close(self) -> None:
        await self.session.close()


# -- one database's runs ------------------------------------------------------------


def server_rss_kb(server: Server) -> int:
    return sum(proc_field(pid, "VmRSS") for pid in tree(server.process.pid))


async def measure_calls(
    console: Console, displays: list[DisplayStream], scale: Scale
) -> tuple[list[float], list[float], list[int], int]:
    """``scale.calls`` recalls: every display's latency (s), the slowest display's
    latency a call, the bytes of each state that brought a call, the (display,
    call) pairs never seen."""
    latencies, slowest, sizes, missed = [], [], [], 0
    for _ in range(scale.calls):
        before = {id(d): d.newest for d in displays}
        for display in displays:
            display.arrived.clear()
        began = time.monotonic()
        await console.act("recall")
        deadline = began + SEEN_TIMEOUT_S
        waiting = list(displays)
        while waiting and time.monotonic() < deadline:
            waiting = [d for d in waiting if d.seen_after(began, before[id(d)]) is None]
            if waiting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiting[0].arrived.wait(), deadline - time.monotonic())
                waiting[0].arrived.clear()
        missed += len(waiting)
        this_call = []
        for display in displays:
            seen = display.seen_after(began, before[id(display)])
            if seen is not None:
                this_call.append(seen[0] - began)
                sizes.append(seen[1])
        latencies += this_call
        if this_call:
            slowest.append(max(this_call))
        await asyncio.sleep(max(0.0, began + scale.spacing_s - time.monotonic()))
    return latencies, slowest, sizes, missed


def figures(latencies, slowest, sizes, missed, displays: int, calls: int) -> dict:
    def ms(values, share):
        found = percentile(values, share)
        return None if found is None else round(found * 1000, 1)

    return {
        "displays": displays,
        "calls": calls,
        "p50_ms": ms(latencies, 0.5),
        "p99_ms": ms(latencies, 0.99),
        "max_ms": ms(latencies, 1.0),
        "slowest_display_p50_ms": ms(slowest, 0.5),
        "delivered": round(1 - missed / max(displays * calls, 1), 4),
        "bytes_per_call": round(statistics.median(sizes)) if sizes else None,
    }


async def run_displays(server: Server, tokens: list[str], scale: Scale) -> dict[str, dict]:
    """With one display, then with all of ``tokens``: the figures of each, and memory."""
    streams = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    console = Console(server.url)
    displays: list[DisplayStream] = []
    try:
        await console.log_in()
        message = await console.act("call")
        assert message.endswith("called"), message
        # every worker's live channel started: streams opened and closed again
        warm = [DisplayStream(tokens[0]) for _ in range(3 * server.workers + 2)]
        for display in warm:
            display.start(streams, server.url)
        for display in warm:
            await display.first_state()
            await display.stop()
        await asyncio.sleep(scale.settle_s)
        idle_kb = server_rss_kb(server)

        displays.append(DisplayStream(tokens[0]))
        displays[0].start(streams, server.url)
        await displays[0].first_state()
        one = figures(*await measure_calls(console, displays, scale), 1, scale.calls)

        for token in tokens[1:]:
            displays.append(DisplayStream(token))
            displays[-1].start(streams, server.url)
        for display in displays:
            await display.first_state()
        await asyncio.sleep(scale.settle_s)
        connected_kb = server_rss_kb(server)
        many = figures(*await measure_calls(console, displays, scale), len(tokens), scale.calls)
        for display in displays:
            assert not display.failure, display.failure
    finally:
        for display in displays:
            await display.stop()
        await streams.close()
        await console.close()
    many |= {
        "server_rss_idle_mb": round(idle_kb / 1024, 1),
        "server_rss_mb": round(connected_kb / 1024, 1),
        "kb_per_display": round((connected_kb - idle_kb) / len(tokens), 1),
    }
    return {"1 display": one, f"{len(tokens)} displays": many}


def set_up(db: Path | str, displays: int) -> tuple[list[str], str]:
    """The demo branch, the counter's staff account, the displays' tokens and a
    pairing code for the kiosk."""
    storage = Storage(str(db) if "://" in str(db) else f"sqlite:///{db}")
    try:
        storage.put_branch(*branch_file.load(DEMO_BRANCH))
        Staff(storage).add("demo", STAFF, PASSWORD, COUNTER, [], "staff")
        tokens = []
        for n in range(displays):
            code = storage.new_pairing_code("demo", 600)
            tokens.append(storage.pair_display(code, f"Waiting room {n + 1}")[1])
        return tokens, storage.new_pairing_code("demo", 600)
    finally:
        storage.database.dispose()


def print_ticket(url: str, code: str, kiosk_dir: Path) -> None:
    """A kiosk paired with ``code`` prints a ticket and its sync sends it (the real
    sync code in this process: a process of its own costs a second a start)."""
    kiosk_dir.mkdir()
    sync = daemon.SyncDaemon(kiosk_dir, daemon.pair(kiosk_dir, url, code, "door"))
    try:
        sync.cycle()  # the branch's services and a lease of numbers
        tickets.mark_printed(sync.db, tickets.issue_ticket(sync.db, "permits", language="fi").id)
        sync.cycle()
        assert tickets.outbox_depth(sync.db) == 0, "the ticket did not reach the server"
    finally:
        sync.db.close()
        sync.client.close()


def run_database(db: Path | str, workers: int, workdir: Path, scale: Scale) -> dict[str, dict]:
    """A fresh server on ``db``: a kiosk's ticket called at the counter, then the runs."""
    workdir.mkdir(parents=True)
    tokens, kiosk_code = set_up(db, scale.displays)
    server = Server(db, workers=workers, logs=workdir)
    try:
        print_ticket(server.url, kiosk_code, workdir / "kiosk")
        return asyncio.run(run_displays(server, tokens, scale))
    finally:
        server.stop()


# -- the benchmark ------------------------------------------------------------------


def test_call_to_display_latency(tmp_path, record):
    """SQLite with one worker, then PostgreSQL with several; every display must
    see every call (a correctness check), the speed is for the table."""
    scale = FULL_SCALE if FULL else TINY_SCALE
    results: dict[str, dict] = {}
    sqlite_dir = Path(tempfile.mkdtemp(prefix="vuoro-display-db-", dir=memory_dir()))
    try:
        for runs, got in run_database(
            sqlite_dir / "server.db", 1, tmp_path / "sqlite", scale
        ).items():
            results[f"call to display, SQLite 1 worker, {runs}"] = got
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    with running_cluster() as cluster:
        url = cluster.url(cluster.create_database())
        workers = scale.pg_workers
        for runs, got in run_database(url, workers, tmp_path / "postgresql", scale).items():
            results[f"call to display, PostgreSQL {workers} workers, {runs}"] = got

    for row, got in results.items():
        got = {k: v for k, v in got.items() if v is not None}
        print(f"\n{row}: {json.dumps(got)}")
        assert got["delivered"] == 1, f"{row}: a display missed a call"
        record(row, **got)
