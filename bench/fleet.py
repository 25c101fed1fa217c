"""A city's fleet against one server: kiosks, phones and counters, each crowd a
process of its own, so the load a run offers does not depend on one GIL.

``python -m bench.fleet kiosks PLAN WORKDIR INDEX`` runs a share of the kiosks:
the real sync code (``sync.daemon.pair``, a :class:`sync.daemon.SyncDaemon`
per kiosk in a thread, its own state DB, ``sync.tickets.issue_ticket`` and
``mark_printed``), some of them behind a :class:`tests.chaos.ChaosProxy` that
is cut for a while and then lets their backlog through.

``python -m bench.fleet crowd PLAN WORKDIR`` runs the phones and the counters
on one asyncio loop (aiohttp): a phone follows a printed ticket by polling its
JSON every few seconds as ticket.js does, or on the live channel when the
server has one; a counter logs in to the staff console and calls, starts and
serves tickets.

Both wait for ``WORKDIR/go`` before the load starts and leave their figures in
``WORKDIR/*.json``; every printed ticket goes as one line into
``WORKDIR/paper-INDEX.tsv``, which the phones read as a customer reads the paper.
Time is compressed: ``Plan.compression`` simulated seconds pass in one real
second for the kiosks' ticket rate, the counters' service times, the daemon's
back-off and heartbeat; a phone still polls every ``Plan.poll_s`` real seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import json
import logging
import random
import re
import resource
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote

import aiohttp

LIVE_PATH = "/api/v1/tickets/{token}/events"
POLL_PATH = "/api/v1/tickets/{token}"
DONE = ("called", "serving", "served", "no_show")  # a phone that saw one of these was called
READY_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 120.0
LOGIN_TRIES = 30
COUNTER_TIMEOUT_S = 60.0  # a press of the console's button that takes longer is an error


@dataclass
class Plan:
    """What one run offers the server: written as JSON for the crowd processes."""

    server: str = ""
    branches: int = 40
    kiosks_per_branch: int = 3
    kiosk_processes: int = 3
    services: tuple[str, ...] = ("payments", "permits", "advice")
    # a busy service point's kiosk at peak: a ticket every 15 s (simulated)
    ticket_interval_s: float = 15.0
    tickets_per_kiosk: int = 28  # 3,360 tickets: more than the phones following them
    compression: float = 10.0
    # kiosks behind the chaos proxy, cut from the server for a while
    outage_share: float = 1 / 6
    outage_start_s: float = 8.0  # real seconds after the go
    outage_s: float = 12.0  # real seconds
    phones: int = 3000
    poll_s: float = 5.0  # ticket.js's interval, real time
    live_share: float = 0.5  # of the phones, when the server has a live channel
    # one counter a branch; a customer at the counter takes ~2 min (simulated)
    service_s: float = 120.0
    call_until_s: float = 45.0  # real seconds after the go the counters stop calling
    linger_s: float = 8.0  # phones keep watching this long after the last call
    password: str = "fleet-password-1"
    seed: int = 0
    kiosks: list[dict] = field(default_factory=list)  # state_dir, code, branch, proxied

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Plan:
        data = json.loads(path.read_text())
        data["services"] = tuple(data["services"])
        return cls(**data)

    def branch_ids(self) -> list[str]:
        return [branch_id(n) for n in range(self.branches)]


def branch_id(n: int) -> str:
    return f"b{n + 1:02d}"


def staff_name(branch: str) -> str:
    return f"counter-{branch}"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_for(path: Path, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.05)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


# -- kiosks -------------------------------------------------------------------------


class FailureCount(logging.Handler):
    """The daemons' failed cycles, by thread (each kiosk's daemon has its own)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.by_thread: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("sync failed"):
            self.by_thread[record.threadName] += 1


def run_kiosks(plan: Plan, workdir: Path, index: int) -> dict:
    """This process's share of the kiosks, from pairing to an empty outbox."""
    from sync import daemon, protocol, tickets
    from sync.client import SyncError
    from sync.credentials import Credentials
    from tests.chaos import ChaosProxy

    # compressed time: the daemon's back-off cap and heartbeat run that much faster
    protocol.HEARTBEAT_S /= plan.compression
    failures = FailureCount()
    logging.getLogger("vuoro.sync").addHandler(failures)
    logging.getLogger("vuoro.sync").setLevel(logging.WARNING)

    mine = plan.kiosks[index :: plan.kiosk_processes]
    port = int(plan.server.rsplit(":", 1)[1])
    proxy = ChaosProxy(port, seed=plan.seed + index) if any(k["proxied"] for k in mine) else None
    daemons: list[daemon.SyncDaemon] = []
    ready = threading.Barrier(len(mine) + 1)

    def kiosk_daemon(kiosk: dict) -> None:
        """A first cycle (config, the server's time, leases: as ``run --once``, again
        until it goes through), then the daemon's loop; the kiosk was paired
        beforehand, its state DB connection belongs to this thread."""
        state_dir = Path(kiosk["state_dir"])
        credentials = Credentials.load(state_dir)
        if kiosk["proxied"] and proxy:
            credentials = dataclasses.replace(credentials, server=proxy.url)
        sync = daemon.SyncDaemon(state_dir, credentials)
        sync.backoff.cap = daemon.BACKOFF_CAP_S / plan.compression
        try:
            for _ in range(20):
                try:
                    sync.cycle()
                except SyncError:
                    time.sleep(sync.backoff.next_delay())
                    continue
                sync.backoff.reset()
                daemons.append(sync)
                break
        finally:
            ready.wait()
        sync.run()

    threads = [
        threading.Thread(target=kiosk_daemon, args=(k,), name=f"kiosk-{k['name']}", daemon=True)
        for k in mine
    ]
    for thread in threads:
        thread.start()
    ready.wait(timeout=READY_TIMEOUT_S)
    if len(daemons) != len(mine):
        raise RuntimeError(f"{len(mine) - len(daemons)} kiosk(s) did not pair or sync")
    (workdir / f"kiosks-{index}.ready").touch()
    wait_for(workdir / "go")
    start = time.monotonic()
    cpu_start = cpu_seconds()

    cut = threading.Thread(target=_outage, args=(plan, proxy, start), daemon=True)
    cut.start()
    rng = random.Random(plan.seed * 1000 + index)
    interval = plan.ticket_interval_s / plan.compression
    paper = (workdir / f"paper-{index}.tsv").open("a", buffering=1, encoding="utf-8")
    dbs = [tickets_db(Path(k["state_dir"])) for k in mine]
    # Poisson arrivals at each kiosk: the next ticket's time, kiosk by kiosk
    due = [(start + rng.expovariate(1 / interval), n, 0) for n in range(len(mine))]
    heapq.heapify(due)
    issued, late = 0, 0.0
    while due:
        when, n, count = heapq.heappop(due)
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            late = max(late, -pause)
        service = rng.choice(plan.services)
        ticket = tickets.issue_ticket(dbs[n], service, language="fi")
        tickets.mark_printed(dbs[n], ticket.id)
        paper.write(f"{mine[n]['branch']}\t{ticket.display}\t{ticket.public_token}\n")
        issued += 1
        if count + 1 < plan.tickets_per_kiosk:
            heapq.heappush(due, (when + rng.expovariate(1 / interval), n, count + 1))
    issued_s = time.monotonic() - start
    cut.join()
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline and any(tickets.outbox_depth(db) for db in dbs):
        time.sleep(0.1)
    drained_s = time.monotonic() - start
    left = sum(tickets.outbox_depth(db) for db in dbs)
    for d in daemons:
        d.stop()
    for thread in threads:
        thread.join(timeout=30)
    if proxy:
        proxy.close()
    proxied = {f"kiosk-{k['name']}" for k in mine if k["proxied"]}
    return {
        "kiosks": len(mine),
        "proxied": len(proxied),
        "issued": issued,
        "issued_s": round(issued_s, 2),
        "drained_s": round(drained_s, 2),
        "outbox_left": left,
        "late_s": round(late, 3),
        "failed_cycles_proxied": sum(v for k, v in failures.by_thread.items() if k in proxied),
        "failed_cycles_direct": sum(v for k, v in failures.by_thread.items() if k not in proxied),
        "cpu_s": round(cpu_seconds() - cpu_start, 2),
    }


def tickets_db(state_dir: Path):
    from sync import state

    return state.connect(state_dir / "state.db")


def _outage(plan: Plan, proxy, start: float) -> None:
    """Cut the proxied kiosks off (connections reset) for ``outage_s``, then let them through."""
    if proxy is None:
        return
    time.sleep(max(0.0, start + plan.outage_start_s - time.monotonic()))
    proxy.set_faults(reset=1.0)
    time.sleep(plan.outage_s)
    proxy.set_faults()


# -- phones and counters ------------------------------------------------------------


@dataclass
class CrowdFigures:
    poll_s: list[float] = field(default_factory=list)  # each poll's round trip
    seen: dict[str, float] = field(default_factory=dict)  # "branch number" -> called seen
    seen_live: set[str] = field(default_factory=set)
    followed: set[str] = field(default_factory=set)
    not_yet: int = 0  # polls of tickets not yet delivered by their kiosk
    live_refused: Counter = field(default_factory=Counter)  # by HTTP status: polls instead
    live_broken: Counter = field(default_factory=Counter)
    calls: dict[str, float] = field(default_factory=dict)  # "branch number" -> call returned
    errors: Counter = field(default_factory=Counter)
    phones: int = 0
    live_phones: int = 0
    live_open: int = 0
    live_open_peak: int = 0
    served: int = 0


async def crowd(plan: Plan, workdir: Path) -> dict:
    figures = CrowdFigures()
    rng = random.Random(plan.seed)
    # a phone opens a new connection for each poll, as a phone a few seconds idle does
    polling = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=True),
        timeout=aiohttp.ClientTimeout(total=30),
    )
    live = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
    )
    staff = [CounterStaff(plan, branch, figures) for branch in plan.branch_ids()]
    line = asyncio.Semaphore(4)  # staff arriving in the morning, a few at once
    logged_in = await asyncio.gather(*(member.log_in(line) for member in staff))
    has_live = await live_channel_exists(polling, plan.server)
    (workdir / "crowd.ready").touch()
    await asyncio.to_thread(wait_for, workdir / "go")
    start = time.monotonic()
    cpu_start = cpu_seconds()
    end = start + plan.call_until_s + plan.linger_s
    counters = [
        asyncio.create_task(member.serve(start + plan.call_until_s))
        for member, ok in zip(staff, logged_in, strict=True)
        if ok
    ]
    phones: list[asyncio.Task] = []
    offsets: dict[Path, int] = {}
    while time.monotonic() < end:
        for paper in sorted(workdir.glob("paper-*.tsv")):
            lines, offsets[paper] = read_new_lines(paper, offsets.get(paper, 0))
            for line in lines:
                if figures.phones >= plan.phones:
                    break
                branch, number, token = line.split("\t")
                on_live = has_live and rng.random() < plan.live_share
                figures.phones += 1
                figures.live_phones += on_live
                follow = follow_live if on_live else follow_polling
                session = live if on_live else polling
                phones.append(
                    asyncio.create_task(
                        follow(plan, session, token, f"{branch} {number}", figures, end)
                    )
                )
        await asyncio.sleep(0.2)
    # the counters stopped calling at call_until_s; their last exchange is awaited
    # (a call the server made but the counter never heard of would be an error)
    await asyncio.gather(*counters)
    for task in phones:
        task.cancel()
    await asyncio.gather(*phones, return_exceptions=True)
    await polling.close()
    await live.close()
    for member in staff:
        await member.close()
    return {
        "poll_s": figures.poll_s,
        "seen": figures.seen,
        "seen_live": sorted(figures.seen_live),
        "followed": sorted(figures.followed),
        "not_yet": figures.not_yet,
        "live_refused": dict(figures.live_refused),
        "live_broken": dict(figures.live_broken),
        "calls": figures.calls,
        "errors": dict(figures.errors),
        "phones": figures.phones,
        "live_phones": figures.live_phones,
        "live_open_peak": figures.live_open_peak,
        "served": figures.served,
        "counters": sum(logged_in),
        "has_live": has_live,
        "cpu_s": round(cpu_seconds() - cpu_start, 2),
        "wall_s": round(time.monotonic() - start, 2),
    }


def read_new_lines(path: Path, offset: int) -> tuple[list[str], int]:
    """Whole lines written since ``offset`` (a line half-written stays for next time)."""
    with path.open("rb") as paper:
        paper.seek(offset)
        data = paper.read()
    complete = data[: data.rfind(b"\n") + 1]
    return complete.decode().splitlines(), offset + len(complete)


async def live_channel_exists(session, server: str) -> bool:
    """Whether the server has the live channel: an unknown token's events answer 404
    either way, so the route is looked for in the API's own description."""
    async with session.get(f"{server}/openapi.json") as reply:
        if reply.status != 200:
            return False
        paths = (await reply.json()).get("paths", {})
    return LIVE_PATH in paths


async def poll_once(plan, session, url, figures) -> str | None:
    """One poll of the ticket's JSON: its status, "" when it is not there yet, None on
    an error (a ticket still on its way from its kiosk is a 404 that says it may
    arrive: not an error)."""
    began = time.monotonic()
    status = None
    try:
        async with session.get(url) as reply:
            body = json.loads(await reply.read())
        if reply.status == 200:
            status = body.get("status", "")
        elif reply.status == 404 and body.get("may_arrive"):
            figures.not_yet += 1
            status = ""
        else:
            figures.errors[f"poll {reply.status}"] += 1
    except (TimeoutError, OSError, ValueError, aiohttp.ClientError) as exc:
        figures.errors[f"poll {type(exc).__name__}"] += 1
    figures.poll_s.append(time.monotonic() - began)
    return status


async def follow_polling(plan, session, token, key, figures, end, until_there=False) -> bool:
    """ticket.js: the JSON every ``poll_s`` until the ticket is called (or, with
    ``until_there``, until the server has it: True then); after a failed poll
    the wait doubles, at most a minute."""
    url = f"{plan.server}{POLL_PATH.format(token=token)}?lang=fi"
    figures.followed.add(key)
    delay = plan.poll_s
    while time.monotonic() < end:
        began = time.monotonic()
        status = await poll_once(plan, session, url, figures)
        if status in DONE:
            figures.seen.setdefault(key, time.monotonic())
            return False
        if status and until_there:
            return True
        delay = plan.poll_s if status is not None else min(delay * 2, 60.0)
        await asyncio.sleep(max(0.0, began + delay - time.monotonic()))
    return False


async def follow_live(plan, session, token, key, figures, end) -> None:
    """The live channel (Server-Sent Events), each event's data the ticket's JSON,
    once the server has the ticket (until then the page polls); a refused or
    broken stream falls back to polling, as the page does."""
    if not await follow_polling(plan, session, token, key, figures, end, until_there=True):
        return
    url = f"{plan.server}{LIVE_PATH.format(token=token)}?lang=fi"
    try:
        async with session.get(url, headers={"Accept": "text/event-stream"}) as reply:
            if reply.status != 200:
                figures.live_refused[str(reply.status)] += 1
                raise aiohttp.ClientError(reply.status)
            figures.live_open += 1
            figures.live_open_peak = max(figures.live_open_peak, figures.live_open)
            try:
                async for raw in reply.content:
                    line = raw.decode().strip()
                    if not line.startswith("data:"):
                        continue
                    try:
                        status = json.loads(line[5:]).get("status", "")
                    except ValueError:
                        continue
                    if status in DONE:
                        figures.seen.setdefault(key, time.monotonic())
                        figures.seen_live.add(key)
                        return
            finally:
                figures.live_open -= 1
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        figures.live_broken[type(exc).__name__] += 1
    await follow_polling(plan, session, token, key, figures, end)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
CURRENT = re.compile(r'id="current"[^>]*>([^<]*)<')


class CounterStaff:
    """One counter's staff member on the console: logs in, then call, start, served."""

    def __init__(self, plan: Plan, branch: str, figures: CrowdFigures) -> None:
        self.plan, self.branch, self.figures = plan, branch, figures
        self.rng = random.Random(f"{plan.seed}-{branch}")
        self.base = f"{plan.server}/console"
        # the session cookie comes from 127.0.0.1: aiohttp keeps cookies of IPs only if told
        self.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            timeout=aiohttp.ClientTimeout(total=COUNTER_TIMEOUT_S),
        )
        self.csrf = ""

    async def log_in(self, line: asyncio.Semaphore) -> bool:
        """The login form; a 503 (the server's password checks are all busy) is
        tried again after its Retry-After, as a person would."""
        for _ in range(LOGIN_TRIES):
            async with (
                line,
                self.session.post(
                    f"{self.base}/login",
                    data={"username": staff_name(self.branch), "password": self.plan.password},
                    allow_redirects=False,
                ) as reply,
            ):
                wait_s = float(reply.headers.get("Retry-After", 1))
                status = reply.status
            if status == 303:
                break
            if status != 503:
                self.figures.errors[f"login {status}"] += 1
                return False
            await asyncio.sleep(wait_s)
        else:
            self.figures.errors["login 503"] += 1
            return False
        async with self.session.get(self.base) as reply:
            found = CSRF.search(await reply.text())
        self.csrf = found.group(1) if found else ""
        return bool(found)

    async def act(self, action: str) -> str | None:
        """The console's form post; the message the console shows, None on an error."""
        try:
            async with self.session.post(
                f"{self.base}/act",
                data={"csrf": self.csrf, "action": action},
                allow_redirects=False,
            ) as reply:
                if reply.status != 303:
                    self.figures.errors[f"{action} {reply.status}"] += 1
                    return None
                return unquote(reply.headers["Location"].partition("msg=")[2])
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            self.figures.errors[f"{action} {type(exc).__name__}"] += 1
            return None

    async def current(self) -> str | None:
        """What the console shows as called at this counter (a person whose button
        press got no answer reloads the page and looks)."""
        try:
            async with self.session.get(self.base) as reply:
                found = CURRENT.search(await reply.text())
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            self.figures.errors[f"console {type(exc).__name__}"] += 1
            return None
        return found.group(1) if found and found.group(1) != "—" else None

    async def serve(self, until: float) -> None:
        figures, mean_s = self.figures, self.plan.service_s / self.plan.compression
        while time.monotonic() < until:
            message = await self.act("call")
            if message is None:  # no answer: the page, reloaded, says what was called
                number = await self.current()
            elif message.endswith(" is still called here"):  # the last "served" got lost
                await self.act("served")
                continue
            elif message.endswith(" called"):
                number = message.removesuffix(" called")
            else:
                number = None
            returned = time.monotonic()
            if number is None:
                await asyncio.sleep(0.5)  # nobody is waiting yet
                continue
            key = f"{self.branch} {number}"
            if key in figures.calls:
                figures.errors["called twice"] += 1
            figures.calls[key] = returned
            await asyncio.sleep(mean_s * 0.1)  # the customer walks up
            await self.act("start")
            await asyncio.sleep(self.rng.expovariate(1 / mean_s))
            await self.act("served")
            figures.served += 1

    async def close(self) -> None:
        await self.session.close()


# -- the command line ---------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("kiosks", "crowd"))
    parser.add_argument("plan", type=Path)
    parser.add_argument("workdir", type=Path)
    parser.add_argument("index", type=int, nargs="?", default=0)
    args = parser.parse_args(argv)
    plan = Plan.load(args.plan)
    if args.role == "kiosks":
        figures = run_kiosks(plan, args.workdir, args.index)
        out = args.workdir / f"kiosks-{args.index}.json"
    else:
        figures = asyncio.run(crowd(plan, args.workdir))
        out = args.workdir / "crowd.json"
    out.write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
