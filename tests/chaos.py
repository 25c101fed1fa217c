"""Fault injection between the sync daemon and the server, and seeded runs.

:class:`ChaosProxy` is an HTTP/1.1 proxy on loopback that, per request and by
a seeded random draw, passes, delays, drops, resets, blackholes, duplicates the
request to the server, loses the reply after the server applied it, or cuts
the reply short. :func:`run_scenario` drives real processes (server, sync
daemon, a kiosk issuing tickets through the state-DB API) through a seeded
sequence of faults and SIGKILLs, then checks the invariants.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import sys
import threading
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from tests.server_process import BIN, DEMO_BRANCH, Managed, Server, run, wait_until

if TYPE_CHECKING:
    from tests.postgres import Cluster

FAULTS = ("pass", "delay", "drop", "reset", "blackhole", "duplicate", "lost_reply", "truncate")
HOLD_S = 3.0  # a blackhole holds the line this long (longer than the daemon's read timeout)
MAX_HEAD = 65536


def _read_message(sock: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes] | None:
    """One HTTP message (head + Content-Length body) and what followed it."""
    data = pending
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            return None
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


@dataclass
class ChaosProxy:
    upstream_port: int
    seed: int
    port: int = 0
    weights: dict[str, float] = field(default_factory=lambda: {"pass": 1.0})
    counts: Counter = field(default_factory=Counter)
    requests: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def set_faults(self, **weights: float) -> None:
        with self.lock:
            self.weights = weights or {"pass": 1.0}

    def _draw(self) -> str:
        with self.lock:
            names = list(self.weights)
            return self.rng.choices(names, [self.weights[n] for n in names])[0]

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(30)
        pending = b""
        try:
            while True:
                message = _read_message(client, pending)
                if message is None:
                    return
                request, pending = message
                self.requests += 1
                fault = self._draw()
                self.counts[fault] += 1
                if not self._answer(client, request, fault):
                    return
        except OSError:
            return
        finally:
            client.close()

    def _forward(self, request: bytes) -> bytes | None:
        try:
            with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10) as up:
                up.sendall(request)
                reply = _read_message(up)
                return None if reply is None else reply[0]
        except OSError:
            return None

    def _answer(self, client: socket.socket, request: bytes, fault: str) -> bool:
        """Handle one request; False closes the client's connection."""
        if fault == "drop":
            return False
        if fault == "reset":
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            return False
        if fault == "blackhole":
            self.stopping.wait(HOLD_S)
            return False
        if fault == "delay":
            time.sleep(self.rng.uniform(0.05, 0.8))
        if fault == "duplicate":
            self._forward(request)
        reply = self._forward(request)
        if reply is None or fault == "lost_reply":
            return False
        if fault == "truncate":
            client.sendall(reply[: max(len(reply) // 2, 1)])
            return False
        client.sendall(reply)
        return True

    def close(self) -> None:
        self.stopping.set()
        self.server.close()


# -- a kiosk issuing tickets, as a process of its own ---------------------------


PAPER = "paper.log"  # the ids of tickets whose paper was cut, as the printer saw it


def kiosk_main(state_dir: str, seed: str) -> None:
    """Issue tickets through the real state-DB API until killed.

    Starts as the kiosk does (settling what the last run left half-way), then
    commits, hands the bytes to the "printer", which cuts the paper (the id
    goes to ``paper.log``) before the kiosk hears back, and records the
    outcome, in a loop; SIGKILL can land anywhere in it, also between the cut
    and the record. It may run on a wrong wall clock (libfaketime).
    """
    from sync import clock, state, tickets

    rng = random.Random(int(seed) * 1000 + time.monotonic_ns() % 1000)
    db = state.connect(Path(state_dir) / "state.db")
    clock.set_policy(db, require_sync=True)
    tickets.settle_interrupted(db)
    services = [s.id for s in tickets.listed_services(db)]
    with open(Path(state_dir) / PAPER, "a") as paper:
        while True:
            ticket = tickets.issue_ticket(db, rng.choice(services), language="fi")
            tickets.mark_handed(db, ticket.id)
            time.sleep(rng.uniform(0, 0.02))  # the printer at work
            if rng.random() < 0.1:
                tickets.mark_print_failed(db, ticket.id, "paper out")
                continue
            paper.write(f"{ticket.id}\n")  # cut: the paper is out, whatever comes next
            paper.flush()
            time.sleep(rng.uniform(0, 0.02))  # the printer's answer on its way
            tickets.mark_printed(db, ticket.id)
            time.sleep(rng.uniform(0, 0.05))


# -- one seeded run -------------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    issued: int
    on_server: int
    requests: int
    faults: dict[str, int]
    kills: dict[str, int]
    seconds: float
    called: int = 0


def run_scenario(
    seed: int,
    workdir: Path,
    steps: int = 12,
    database: str | None = None,
    workers: int = 1,
    cluster: Cluster | None = None,
) -> Outcome:
    """Faults and kills drawn from ``seed``; raises AssertionError on a broken invariant.

    ``database``: the server's (a URL; an SQLite file in ``workdir`` by default),
    served by ``workers`` processes; a server kill may then hit one worker alone.
    ``cluster``: the PostgreSQL cluster behind ``database``, crashed and
    started again among the faults. Two counters call tickets all along.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    server = Server(
        database or workdir / "server" / "server.db", workers=workers, logs=workdir / "server"
    )
    proxy = ChaosProxy(server.port, seed)
    processes: list[Managed] = []
    world = World(server, proxy, cluster, processes)
    try:
        return _scenario(rng, seed, workdir, steps, world, started)
    finally:
        for process in processes:
            process.kill()
        server.stop()
        proxy.close()


@dataclass
class World:
    """What one scenario runs and breaks."""

    server: Server
    proxy: ChaosProxy
    cluster: Cluster | None
    processes: list[Managed]


COUNTERS = ("1", "2")
CALLS = "calls.log"  # "counter ticket-id" for each call a counter saw succeed


def counter_main(database: str, counter: str, log: str) -> None:
    """A counter calling the next ticket (the previous one served) until killed,
    through storage as the console does; the database may be down a while."""
    from server.storage import Storage

    storage = None
    with open(log, "a") as calls:
        while True:
            try:
                storage = storage or Storage(database)
                called = storage.call_next("demo", counter, finish="served")
            except Exception as exc:  # the database restarting: the counter presses again
                print(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}", flush=True)
                time.sleep(0.2)
                continue
            if called:
                calls.write(f"{counter} {called['id']}\n")
                calls.flush()
            time.sleep(0.3)


def branch_day() -> str:
    """The demo branch's day now, on this machine's (true) clock."""
    zone = tomllib.loads(DEMO_BRANCH.read_text(encoding="utf-8"))["branch"]["timezone"]
    return datetime.now(ZoneInfo(zone)).date().isoformat()


def _scenario(rng, seed, workdir, steps, world: World, started) -> Outcome:
    server, proxy, processes = world.server, world.proxy, world.processes
    days = {branch_day()}
    server.load_branch(DEMO_BRANCH)
    kiosk_dir = workdir / "kiosk"
    code = server.pair_code()
    run("vuoro-sync", "--state-dir", str(kiosk_dir), "pair", "--server", proxy.url, "--code", code)
    run("vuoro-sync", "--state-dir", str(kiosk_dir), "run", "--once")  # config and leases
    sync = Managed(
        [
            str(BIN / "vuoro-sync"),
            "--state-dir",
            str(kiosk_dir),
            "run",
            "--max-backoff",
            "1",
            "--connect-timeout",
            "1",
            "--read-timeout",
            "2",
        ],
        workdir / "sync.log",
    )
    kiosk = Managed(
        [sys.executable, "-m", "tests.chaos", "kiosk", str(kiosk_dir), str(seed)],
        workdir / "kiosk.log",
    )
    processes += [sync, kiosk]
    calls = workdir / CALLS
    counters = [
        Managed(
            [sys.executable, "-m", "tests.chaos", "counter", str(server.db), c, str(calls)],
            workdir / f"counter-{c}.log",
        )
        for c in COUNTERS
    ]
    processes += counters
    actions = ["wait", "wait", "kiosk", "sync", "server", "boot"]
    if server.workers > 1:
        actions.append("worker")
    if world.cluster is not None:
        actions.append("postgres")
    kills: Counter = Counter()
    for _ in range(steps):
        faults = rng.sample(FAULTS, rng.randint(1, 4))
        proxy.set_faults(**{f: rng.uniform(0.2, 1.0) for f in faults})
        action = rng.choice(actions)
        if action == "kiosk":
            kiosk.restart()
        elif action == "boot":  # the Pi restarts on a wrong clock, NTP not yet there
            kiosk.kill()
            forget_server_time(kiosk_dir)
            kiosk.env = wrong_clock(rng.choice(WRONG_CLOCKS))
            kiosk.start()
        elif action == "sync":
            sync.restart()
        elif action == "server":
            server.kill()
            time.sleep(rng.uniform(0, 0.5))
            server.start()
        elif action == "worker":  # one worker, perhaps mid-transaction; the others go on
            pids = server.worker_pids()
            if pids:
                os.kill(rng.choice(pids), signal.SIGKILL)
        elif action == "postgres":  # the database crashes and comes back
            world.cluster.kill()
            time.sleep(rng.uniform(0, 1.0))
            world.cluster.start()
        if action != "wait":
            kills[action] += 1
        before = proxy.requests
        time.sleep(rng.uniform(0.2, 1.0))
        # a step lasts until the daemon tried the server again (on a loaded machine
        # processes start slowly: wall time alone would leave the faults unused)
        deadline = time.monotonic() + 10
        while proxy.requests == before and time.monotonic() < deadline:
            time.sleep(0.05)
    kiosk.kill()
    run_settle_only(kiosk_dir)  # what the kiosk does when it starts again
    proxy.set_faults()
    wait_until(lambda: undelivered(kiosk_dir) == 0, timeout=60, what="the backlog drained")
    # tickets may reach the server only now: the counters call today's before they go
    deadline = time.monotonic() + 120
    while waiting := server.sql(
        "SELECT id, queue_id, status, counter FROM tickets WHERE status = 'waiting' AND day = ?",
        [branch_day()],
    ):
        if time.monotonic() > deadline:
            logs = {c.log.name: c.log.read_text()[-2000:] for c in counters}
            alive = [c.process.poll() is None for c in counters]
            raise AssertionError(f"still waiting: {waiting}; counters alive {alive}: {logs}")
        time.sleep(0.1)
    for counter in counters:
        counter.kill()
    issued = check_invariants(kiosk_dir, server.db, days | {branch_day()}, workdir / CALLS)
    return Outcome(
        seed,
        issued[0],
        issued[1],
        proxy.requests,
        dict(proxy.counts),
        dict(kills),
        round(time.monotonic() - started, 1),
        called=len(calls.read_text().splitlines()) if calls.exists() else 0,
    )


#: Wall clocks a Pi may boot on: yesterday's shutdown time, years back, a time zone off.
WRONG_CLOCKS = ("-1d", "@2020-01-01 08:00:00", "-3h", "+2h")


def wrong_clock(spec: str) -> dict[str, str]:
    """The environment that runs a process on another wall clock (libfaketime),
    its monotonic clock true and its kernel saying NTP has not answered."""
    import glob

    libs = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    assert libs, "libfaketime is needed: run `make test` (it installs faketime)"
    return {
        "LD_PRELOAD": libs[0],
        "FAKETIME": spec,
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_NO_CACHE": "1",
        "VUORO_CLOCK_SYNCED": "0",
    }


def forget_server_time(kiosk_dir: Path) -> None:
    """What the kiosk learned of the server's time is of an earlier boot now (a test
    cannot reboot the machine; the kiosk tells boots apart by boot id)."""
    with sqlite3.connect(kiosk_dir / "state.db", timeout=10) as db:
        db.execute(
            "UPDATE config SET value = json_set(value, '$.boot_id', 'an-earlier-boot') "
            "WHERE key = 'server_clock'"
        )


def run_settle_only(kiosk_dir: Path) -> None:
    from sync import state, tickets

    db = state.connect(kiosk_dir / "state.db")
    tickets.settle_interrupted(db)
    db.close()


def undelivered(kiosk_dir: Path) -> int:
    with sqlite3.connect(kiosk_dir / "state.db") as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]


def check_invariants(
    kiosk_dir: Path, server_db: Path | str, days: set[str], calls: Path | None = None
) -> tuple[int, int]:
    """``days``: the real days the run spanned (the branch's, on a true clock);
    ``calls``: what the counters saw called, each ticket once, to one counter."""
    from server.storage import Storage

    with sqlite3.connect(kiosk_dir / "state.db") as db:
        kiosk = {
            r[0]: r[1:]
            for r in db.execute(
                "SELECT id, state, kiosk_seq, service_id, day, series, number FROM tickets"
            )
        }
        parked = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE parked_reason IS NOT NULL"
        ).fetchone()[0]
        kiosk_ok = db.execute("PRAGMA integrity_check").fetchone()[0]
    paper = set((kiosk_dir / PAPER).read_text().split()) if (kiosk_dir / PAPER).exists() else set()
    storage = Storage(server_db)
    with storage.reading() as db:
        server = db.execute(
            "SELECT id, status, kiosk_seq, service_id, day, series, number, display, counter "
            "FROM tickets ORDER BY queued_at, kiosk_seq"
        ).fetchall()
        server_ok = db.execute("PRAGMA integrity_check").fetchone()[0] if storage.path else "ok"
    storage.database.dispose()
    ids = [r[0] for r in server]
    assert (kiosk_ok, server_ok) == ("ok", "ok"), "integrity"
    called = [line.split() for line in calls.read_text().splitlines()] if calls else []
    called_ids = [ticket_id for _, ticket_id in called]
    assert len(called_ids) == len(set(called_ids)), "a ticket called twice"
    on_server = {r[0]: r for r in server}
    for counter, ticket_id in called:
        assert on_server[ticket_id][1] in ("called", "served"), on_server[ticket_id]
        assert on_server[ticket_id][8] == counter, "a ticket called to another counter"

    assert parked == 0, f"{parked} ticket(s) parked"
    assert len(ids) == len(set(ids)), "a ticket applied twice"
    assert "committed" not in {v[0] for v in kiosk.values()}, "an undecided ticket remains"
    assert set(ids) == set(kiosk), "every ticket, printed or void, reached the server once"
    for row in server:
        expected = {"void"} if kiosk[row[0]][0] == "void" else {"waiting", "called", "served"}
        assert row[1] in expected, f"{row[0]} is {row[1]}, expected {expected}"
    numbers = [(r[3], r[4], r[5], r[6]) for r in server]
    assert len(numbers) == len(set(numbers)), "two tickets with one number"
    for ticket_id in paper:  # a customer holds this paper: it is in a queue somebody calls
        row = on_server.get(ticket_id)
        assert row is not None, f"paper {ticket_id} never reached the server"
        assert row[1] != "void", f"paper {row[7]} is {row[1]} on the server"
        assert row[4] in days, f"paper {row[7]} is queued on {row[4]}, not on {days}"
    held = [(r[4], r[7]) for r in server if r[1] != "void"]
    assert len(held) == len(set(held)), "two customers hold one number on one day"
    sequence = [r[2] for r in server]
    assert sequence == sorted(sequence), "the kiosk's order is kept in the queue"
    at_counters = Counter(r[8] for r in server if r[1] == "called")
    assert all(n == 1 for n in at_counters.values()), f"a counter holds two: {at_counters}"
    return len(kiosk), len(server)


if __name__ == "__main__":
    if sys.argv[1] == "kiosk":
        kiosk_main(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "counter":
        counter_main(sys.argv[2], sys.argv[3], sys.argv[4])
