"""The live channel and several workers, as real processes on real sockets:
`vuoro-server serve --workers 2` on SQLite and on PostgreSQL, ticket pages
following their tickets over Server-Sent Events, calls made by the CLI and by
the console on one worker arriving at pages connected to the other, a worker
killed, PostgreSQL restarted under a live stream, an event never sent for a
change that rolled back."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from server import branch_file, events
from server.storage import Storage
from sync import protocol
from tests.postgres import children_of, process_alive
from tests.server_data import DEMO, batch, paired, ticket, today
from tests.server_process import BIN, Managed, free_port, run, wait_until
from tests.web import PASSWORD

#: the longest a page may wait for a change (SQLite's listener looks every 0.5 s)
ARRIVAL_S = 10.0


class Workers(Managed):
    """`vuoro-server serve --workers N` on a free loopback port, on any database."""

    def __init__(self, db: str, directory: Path, workers: int = 2, *options: str) -> None:
        self.db, self.port = db, free_port()
        self.verify: str | bool = True
        if "--tls-cert" in options:
            self.verify = options[options.index("--tls-cert") + 1]
        self.url = f"{'https' if self.verify is not True else 'http'}://127.0.0.1:{self.port}"
        self.workers = workers
        args = [str(BIN / "vuoro-server"), "--db", db, "serve", "--port", str(self.port)]
        args += ["--workers", str(workers), *options]
        super().__init__(args, directory / f"server-{self.port}.log")

    def start(self) -> None:
        super().start()
        try:
            wait_until(self._up, timeout=120, what=f"{self.workers} workers serving")
        except AssertionError:
            self.stop()  # a server that never came up must not outlive the test, nor its workers
            raise

    def stop(self) -> None:
        """SIGTERM (the supervisor stops its workers); no process of it is left."""
        workers = children_of(self.process.pid) if self.process.poll() is None else []
        super().stop()
        for pid in workers:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the server exited:\n{self.log.read_text()}")
        try:
            answered = requests.get(f"{self.url}/healthz", timeout=1, verify=self.verify).ok
        except requests.RequestException:
            return False
        return answered and len(self.worker_pids()) >= self.workers

    def worker_pids(self) -> list[int]:
        """The processes holding a connection to our port (not the supervisor's helpers)."""
        candidates = [self.process.pid] if self.workers == 1 else children_of(self.process.pid)
        return [pid for pid in candidates if _listens(pid, self.port)]

    def cli(self, *args: str, stdin: str = "") -> str:
        return run("vuoro-server", "--db", self.db, *args, stdin=stdin)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _tcp_sockets() -> list[tuple[int, int, str]]:
    """(local port, remote port, inode) of every IPv4 TCP socket."""
    found = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            found.append(
                (int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), fields[9])
            )
    return found


def _listens(pid: int, port: int) -> bool:
    inodes = _socket_inodes(pid)
    return any(local == port and inode in inodes for local, _, inode in _tcp_sockets())


def serving_worker(server: Workers, client_port: int) -> int | None:
    """Which worker holds the server's end of the connection from ``client_port``."""
    pair = (server.port, client_port)
    ends = {inode for local, remote, inode in _tcp_sockets() if (local, remote) == pair}
    for pid in server.worker_pids():
        if ends & _socket_inodes(pid):
            return pid
    return None


class Stream:
    """An EventSource of our own: the ticket JSON of each `data:` line."""

    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.response = (session or requests).get(
            url, stream=True, timeout=(5, ARRIVAL_S), headers={"Accept": "text/event-stream"}
        )
        assert self.response.status_code == 200, self.response.text
        assert self.response.headers["content-type"].startswith("text/event-stream")
        self.lines = self.response.iter_lines(chunk_size=None, decode_unicode=True)
        self.latest = self.next()

    @property
    def client_port(self) -> int:
        return self.response.raw._fp.fp.raw._sock.getsockname()[1]

    def next(self) -> dict:
        for line in self.lines:
            if line.startswith("data: "):
                return json.loads(line[6:])
        raise AssertionError("the stream ended")

    def until(self, wanted, what: str) -> dict:
        """Messages until one is ``wanted``; the read timeout bounds each wait."""
        deadline = time.monotonic() + ARRIVAL_S
        while not wanted(self.latest):
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not arrive: {self.latest}")
            self.latest = self.next()
        return self.latest

    def close(self) -> None:
        self.response.close()


def demo_with_tickets(db: str, count: int) -> list[str]:
    """The demo branch with ``count`` waiting payments tickets; their tokens."""
    storage = Storage(db)
    try:
        storage.put_branch(*branch_file.load(DEMO))
        kiosk = paired(storage)
        day = today(storage)
        storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=count))
        tickets = [ticket(n, day=day, mono=n) for n in range(1, count + 1)]
        storage.ingest(kiosk, batch(*tickets, mono=count + 1))
        return [t.public_token for t in tickets]
    finally:
        storage.database.dispose()


@pytest.fixture
def two_workers(database: str, tmp_path: Path) -> Iterator[tuple[Workers, list[str]]]:
    tokens = demo_with_tickets(database, 4)
    server = Workers(database, tmp_path)
    yield server, tokens
    server.stop()


def streams_on_every_worker(server: Workers, token: str, tries: int = 40) -> list[Stream]:
    """Streams of one ticket until each worker serves at least one (the kernel
    hands connections to whichever worker accepts first)."""
    streams: list[Stream] = []
    served_by: set[int] = set()
    workers = set(server.worker_pids())
    for _ in range(tries):
        stream = Stream(f"{server.url}/api/v1/tickets/{token}/events?lang=en")
        streams.append(stream)
        pid = serving_worker(server, stream.client_port)
        if pid is not None:
            served_by.add(pid)
        if served_by >= workers:
            return streams
        time.sleep(0.05)
    for stream in streams:
        stream.close()
    raise AssertionError(f"{tries} connections never reached every worker of {workers}")


def called(counter: str):
    return lambda t: t["status"] == "called" and t["counter"] == counter


def test_a_call_from_the_cli_reaches_pages_on_every_worker(two_workers):
    server, tokens = two_workers
    first = streams_on_every_worker(server, tokens[0])
    second = Stream(f"{server.url}/api/v1/tickets/{tokens[1]}/events")
    assert first[0].latest["status"] == "waiting" and second.latest["position"] == 2

    assert server.cli("call-next", "--branch", "demo", "--counter", "3") == "A001 to counter 3"
    for stream in first:
        stream.until(called("3"), "the call on every worker")
    # the next ticket moves up at once: its worker forgot the queue's cached places
    second.until(lambda t: t["position"] == 1, "the second ticket's new place")
    health = requests.get(f"{server.url}/healthz", timeout=5).json()
    assert health["live_streams"] >= 1
    server.stop()  # with the streams open: they end, and so do the workers
    assert server.process.returncode == 0
    for stream in [*first, second]:
        with contextlib.suppress(requests.RequestException):
            assert stream.response.raw.read() is not None  # the server ended it
        stream.close()


def test_a_call_from_the_console_on_one_worker_reaches_the_other(two_workers, tmp_path):
    server, tokens = two_workers
    server.cli(
        "staff", "--branch", "demo", "--username", "anna", "--counter", "5", stdin=PASSWORD + "\n"
    )
    streams = streams_on_every_worker(server, tokens[0])
    console = requests.Session()
    login = console.post(
        f"{server.url}/console/login",
        data={"username": "anna", "password": PASSWORD},
        headers={"Origin": server.url},
        timeout=30,
    )
    assert login.ok, login.text
    counter = Stream(f"{server.url}/console/events", session=console)
    waiting = {"advice": 0, "payments": 4, "permits": 0}
    assert counter.latest == {"current": None, "waiting": waiting}
    csrf = re.search(r'name="csrf" value="([^"]+)"', console.get(f"{server.url}/console").text)
    done = console.post(
        f"{server.url}/console/act", data={"csrf": csrf[1], "action": "call"}, timeout=10
    )
    assert done.ok and "A001 called" in done.url.replace("%20", " ")
    for stream in streams:
        stream.until(called("5"), "the console's call on every worker")
    assert counter.until(lambda s: s["current"], "the counter's own ticket") == {
        "current": {"number": "A001", "status": "called"},
        "waiting": {"advice": 0, "payments": 3, "permits": 0},
    }
    for stream in [*streams, counter]:
        stream.close()


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(two_workers):
    server, tokens = two_workers
    streams = streams_on_every_worker(server, tokens[0])
    victim = serving_worker(server, streams[0].client_port)
    survivor = next(pid for pid in server.worker_pids() if pid != victim)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: not process_alive(victim), timeout=10, what="the worker gone")
    survivors = [s for s in streams if serving_worker(server, s.client_port) == survivor]
    assert survivors, "a stream on the surviving worker"
    server.cli("call-next", "--branch", "demo", "--counter", "2")
    for stream in survivors:
        stream.until(called("2"), "the call, on the surviving worker")
    wait_until(  # a new interpreter: as long as a server's start may take on a busy machine
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
        timeout=90,
        what="the supervisor's new worker",
    )
    for _ in range(10):  # every worker answers, the new one too
        assert requests.get(f"{server.url}/api/v1/tickets/{tokens[1]}", timeout=5).ok
    for stream in streams:
        stream.close()
    server.stop()
    assert server.process.returncode == 0, "SIGTERM stops the supervisor and its workers"
    assert not [pid for pid in server.worker_pids() if process_alive(pid)]


def test_a_postgresql_restart_under_a_live_stream(postgres_url, postgres_cluster, tmp_path):
    tokens = demo_with_tickets(postgres_url, 3)
    server = Workers(postgres_url, tmp_path)
    try:
        streams = streams_on_every_worker(server, tokens[0])
        postgres_cluster.restart()  # every connection breaks, the LISTEN ones too
        # pages that lost their stream reconnect; the ones that kept it must still hear
        server.cli("call-next", "--branch", "demo", "--counter", "4")
        for stream in streams:
            stream.until(called("4"), "the call after the restart")
    finally:
        server.stop()
    said = server.log.read_text()
    assert "live channel: listening again" in said, "the listener saw the break and came back"


def test_no_event_for_a_change_that_rolled_back(storage):
    tokens_day = today(storage)
    kiosk = paired(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=tokens_day, count=2))
    with events.recorded(storage) as seen:
        storage.ingest(kiosk, batch(ticket(1, day=tokens_day, mono=1), mono=2))
    assert [(e.kind, e.queue_id, e.data) for e in seen] == [
        ("created", "payments", {"tickets": [f"{1:032x}"]})
    ]
    with (
        events.recorded(storage) as seen,
        pytest.raises(RuntimeError),
        storage.transaction() as db,
    ):
        events.record(db, "demo", "payments", events.CALLED, ticket="x")
        raise RuntimeError("the change fails after its event was recorded")
    assert seen == []
    with events.recorded(storage) as seen:
        assert storage.call_next("demo", "1")["number"] == "A001"
    assert [(e.kind, e.data["counter"]) for e in seen] == [("called", "1")]


def test_a_hub_hears_what_committed_and_nothing_that_rolled_back(storage):
    """In one process, as a worker's hub does: a change that rolled back is never
    heard of; the committed one after it is, within a bounded wait."""
    import asyncio

    async def scenario() -> list[events.Event]:
        hub = events.Hub(storage)
        await hub.start()
        try:
            with hub.subscribe("demo", "payments") as subscription:

                def rolled_back() -> None:
                    with contextlib.suppress(RuntimeError), storage.transaction() as db:
                        events.record(db, "demo", "payments", events.CALLED, ticket="undone")
                        raise RuntimeError("the change fails")

                def committed() -> None:
                    with storage.transaction() as db:
                        events.record(db, "demo", "payments", events.CALLED, ticket="done")

                await asyncio.to_thread(rolled_back)
                await asyncio.to_thread(committed)
                heard: list[events.Event] = []
                deadline = time.monotonic() + ARRIVAL_S
                while not heard and time.monotonic() < deadline:
                    heard += await subscription.next(1.0)
                heard += await subscription.next(1.0)  # anything more would be here by now
                return heard
        finally:
            await hub.stop()

    heard = asyncio.run(scenario())
    assert [event.ticket_id for event in heard] == ["done"]


def test_a_subscriber_that_falls_behind_is_dropped_not_buffered(storage):
    import asyncio

    async def scenario() -> bool:
        hub = events.Hub(storage, queue_size=4)
        subscription = hub.subscribe("demo")
        for n in range(1, 6):  # never read
            hub.dispatch(events.Event(n, "demo", "payments", events.CREATED, {"tickets": []}))
        with contextlib.suppress(events.Ended):
            await subscription.next(0.1)
            return False
        return hub.subscriptions == 0

    assert asyncio.run(scenario())


def test_live_pages_past_the_bound_are_refused_and_poll(tmp_path):
    tokens = demo_with_tickets(str(tmp_path / "server.db"), 1)
    server = Workers(str(tmp_path / "server.db"), tmp_path, 1, "--max-streams", "1")
    try:
        first = Stream(f"{server.url}/api/v1/tickets/{tokens[0]}/events")
        refused = requests.get(
            f"{server.url}/api/v1/tickets/{tokens[0]}/events",
            headers={"Accept": "text/event-stream"},
            timeout=5,
        )
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        assert requests.get(f"{server.url}/healthz", timeout=5).json()["live_streams"] == 1
        # a client that does not ask for a stream gets the state once, as JSON
        once = requests.get(f"{server.url}/api/v1/tickets/{tokens[0]}/events", timeout=5)
        assert once.json() == first.latest
        first.close()
    finally:
        server.stop()


def test_workers_keep_tls_and_the_connection_guards(tmp_path):
    """What `serve` holds against in one process it holds in each worker: TLS,
    and a connection that never sends its request head is closed."""
    import socket
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    tokens = demo_with_tickets(str(tmp_path / "server.db"), 1)
    options = ("--tls-cert", str(cert), "--tls-key", str(key), "--header-timeout", "1")
    server = Workers(str(tmp_path / "server.db"), tmp_path, 2, *options)
    try:
        reply = requests.get(
            f"{server.url}/api/v1/tickets/{tokens[0]}", verify=str(cert), timeout=5
        )
        assert reply.json()["position"] == 1
        tls = ssl.create_default_context(cafile=str(cert))
        silent = [  # past the handshake, then not a byte of a request
            tls.wrap_socket(
                socket.create_connection(("127.0.0.1", server.port)), server_hostname="127.0.0.1"
            )
            for _ in range(4)
        ]
        for each in silent:
            each.settimeout(ARRIVAL_S)
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                assert each.recv(1024) == b"", "closed by the worker that accepted it"
            each.close()
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_events_older_than_a_day_are_pruned(storage):
    from datetime import timedelta

    from server.storage import iso, now

    with storage.transaction() as db:
        for age_h in (25, 23):
            db.insert(
                "events",
                {
                    "branch_id": "demo",
                    "queue_id": None,
                    "kind": events.STATUS,
                    "data": "{}",
                    "created_at": iso(now() - timedelta(hours=age_h)),
                },
            )
    events.Hub(storage)._prune()
    with storage.reading() as db:
        left = db.execute("SELECT created_at FROM events").fetchall()
    assert len(left) == 1 and left[0][0] > iso(now() - timedelta(hours=24))
