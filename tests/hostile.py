"""A hostile client against a real server, and the kiosk and phone that must
keep being served meanwhile: shared by tests/test_hostile_client.py and the
benchmark bench/bench_hostile.py.

The attack, from threads of this process over loopback, until stopped:
~1,100 sockets (more than the usual 1,024 open files) that send nothing or
half a request head and wait; a few threads of wrong logins, each from another
address (X-Forwarded-For, which the server believes from a proxy on its own
host) and for another user, so that every one costs a password hash; and 20 MB
bodies, announced and chunked, to the pairing and the ticket routes.
"""

from __future__ import annotations

import contextlib
import re
import resource
import secrets
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from server import branch_file
from server.staff import Staff
from server.storage import Storage
from sync import protocol
from tests.server_data import DEMO, batch, ticket, today
from tests.server_process import Server

REQUEST_TIMEOUT_S = 30  # a bound for a request that hangs, far above any real answer
BODY_BYTES = 20_000_000
IDLE_SOCKETS = 1100  # past the usual soft open-file limit (1,024), as in the field
LOGIN_THREADS = 4
BODY_THREADS = 2
DEFAULT_SOFT_NOFILE = 1024  # what systemd and most shells give a process


@dataclass
class Target:
    """A served branch: its server, a paired kiosk's token, a ticket a phone polls."""

    server: Server
    kiosk_token: str
    ticket_token: str
    day: str
    next_number: int = 2

    def poll(self) -> requests.Response:
        """The phone's poll of its ticket (a new connection, as a phone's would be)."""
        return requests.get(
            f"{self.server.url}{protocol.API}/tickets/{self.ticket_token}",
            timeout=REQUEST_TIMEOUT_S,
            headers={"Connection": "close"},
        )

    def heartbeat(self) -> requests.Response:
        beat = protocol.Heartbeat(printer="ok", outbox=0, version="hostile-test")
        return self._kiosk_post("heartbeat", beat.model_dump_json())

    def push_ticket(self) -> requests.Response:
        n = self.next_number
        self.next_number += 1
        body = batch(ticket(n, day=self.day, mono=n), mono=n + 1).model_dump_json()
        return self._kiosk_post("tickets", body)

    def _kiosk_post(self, route: str, body: str) -> requests.Response:
        return requests.post(
            f"{self.server.url}{protocol.API}/kiosk/{route}",
            data=body,
            headers={
                "Authorization": f"Bearer {self.kiosk_token}",
                "Content-Type": "application/json",
                "Connection": "close",
            },
            timeout=REQUEST_TIMEOUT_S,
        )


def served_branch(directory: Path) -> Target:
    """The demo branch with a staff member, a paired kiosk holding a lease and
    one delivered ticket, on `vuoro-server serve` started with the usual soft
    open-file limit (the server must raise it itself)."""
    db = directory / "server.db"
    store = Storage(db)
    store.put_branch(*branch_file.load(DEMO))
    Staff(store).add("demo", "clerk", "correct horse battery", "1", [], "staff")
    token = store.pair(store.new_pairing_code("demo"), "door").token
    kiosk = store.kiosk_for_token(token)
    day = today(store)
    store.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=1000))
    store.ingest(kiosk, batch(ticket(1, day=day, mono=1), mono=2))
    with usual_open_file_limit():
        server = Server(db)
    return Target(server, token, "token-" + f"{1:016d}", day)


@contextlib.contextmanager
def usual_open_file_limit() -> Iterator[None]:
    """Start children with the soft open-file limit most processes get."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(DEFAULT_SOFT_NOFILE, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@dataclass
class Attack:
    """The hostile client's threads; ``with Attack(port):`` runs them."""

    port: int
    idle: int = IDLE_SOCKETS
    login_threads: int = LOGIN_THREADS
    body_threads: int = BODY_THREADS
    done: Counter = field(default_factory=Counter)  # what the attack managed to do
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Attack:
        for n in range(self.idle):
            try:
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                if n % 2:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: vuoro\r\n")  # and no more
            except OSError:
                self.done["idle refused"] += 1
                continue
            self._sockets.append(sock)
            self.done["idle sockets"] += 1
        workers = [self._log_in] * self.login_threads
        workers += [self._big_bodies] * self.body_threads
        for n, work in enumerate(workers):
            thread = threading.Thread(target=work, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=REQUEST_TIMEOUT_S + 10)
        for sock in self._sockets:
            sock.close()

    def _log_in(self, n: int) -> None:
        """Wrong passwords, each for another user from another address."""
        session = requests.Session()
        while not self._stop.is_set():
            try:
                page = session.get(f"{self.url}/console/login", timeout=REQUEST_TIMEOUT_S)
                form = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
                form |= {"username": f"user{n}-{secrets.token_hex(4)}", "password": "wrong" * 3}
                address = ".".join(str(secrets.randbelow(254) + 1) for _ in range(4))
                reply = session.post(
                    f"{self.url}/console/login",
                    data=form,
                    headers={"X-Forwarded-For": address},
                    timeout=REQUEST_TIMEOUT_S,
                    allow_redirects=False,
                )
                self.done[f"login {reply.status_code}"] += 1
            except requests.RequestException:
                self.done["login failed"] += 1

    def _big_bodies(self, n: int) -> None:
        """20 MB bodies: announced to the pairing route, chunked to the ticket route."""
        while not self._stop.is_set():
            chunked = n % 2 == 1
            status = self._one_big_body(chunked)
            self.done[f"20 MB {'chunked' if chunked else 'announced'} {status}"] += 1

    def _one_big_body(self, chunked: bool) -> int | str:
        path = f"{protocol.API}/kiosk/tickets" if chunked else f"{protocol.API}/pair"
        head = [f"POST {path} HTTP/1.1", "Host: vuoro", "Content-Type: application/json"]
        head += ["Authorization: Bearer " + "A" * 43] if chunked else []
        head += ["Transfer-Encoding: chunked"] if chunked else [f"Content-Length: {BODY_BYTES}"]
        piece = b"1," * 32768
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                sent = 0
                opening, closing = b"[", b"1]"
                while sent < BODY_BYTES and not self._stop.is_set():
                    data = (opening if sent == 0 else b"") + piece
                    sock.sendall(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                    sent += len(data)
                    if answered(sock, 0):
                        break  # the server answered before the end: refused
                else:
                    if self._stop.is_set():
                        return "stopped"  # half sent: not worth waiting for the 408
                    tail = (b"%x\r\n%s\r\n0\r\n\r\n" % (2, closing)) if chunked else closing
                    sock.sendall(tail)
                sock.settimeout(REQUEST_TIMEOUT_S)
                answer = sock.recv(64)
                return int(answer.split()[1]) if answer.startswith(b"HTTP/") else "closed"
        except (OSError, ValueError, IndexError):
            return "closed"


def answered(sock: socket.socket, wait_s: float) -> bool:
    """Whether the server has sent something (poll: select() fails past fd 1024)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(wait_s * 1000))


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (``share`` in 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def timed(call) -> tuple[float, requests.Response]:
    start = time.perf_counter()
    reply = call()
    return time.perf_counter() - start, reply
