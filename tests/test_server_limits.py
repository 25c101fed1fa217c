"""What one request may cost the server, on the real `vuoro-server serve` over
loopback: bodies bounded by route and refused before they are read, kiosk
calls without a token refused before their body, connections that never finish
a request head closed, slow bodies answered 408, security headers on every
answer, floods of accept errors logged once, and private DB files."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from server import branch_file
from server.limits import TICKET_BATCH_BYTES, BodyLimits, Limits, body_limit
from server.serving import BurstFilter
from server.storage import Storage
from sync import protocol, state
from tests.hostile import answered
from tests.server_data import DEMO, batch, ticket, today
from tests.server_process import BIN, Managed, Server, free_port

WAIT_S = 15  # for an answer that comes at once when the server is right; a bound, not a timing


@pytest.fixture(scope="module")
def served(tmp_path_factory, server_database):
    """A server as `serve` starts by default, the demo branch, a paired kiosk."""
    directory = tmp_path_factory.mktemp("limits")
    db = server_database.new(directory)
    store = Storage(db)
    store.put_branch(*branch_file.load(DEMO))
    token = store.pair(store.new_pairing_code("demo"), "door").token
    server = Server(db, logs=directory)
    yield server, token, store
    server.stop()
    store.database.dispose()


def answer(sock: socket.socket) -> tuple[int | None, dict[str, str], bytes]:
    """Read one response until the server closes; (None, {}, b"") if none came."""
    sock.settimeout(WAIT_S)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        if not data:
            return None, {}, b""
    except ConnectionResetError:
        pass
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        return None, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_S)


def serve_args(db: Path, port: int) -> list[str]:
    return [str(BIN / "vuoro-server"), "--db", str(db), "serve", "--port", str(port)]


def post_head(path: str, length: int | None, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: vuoro", "Content-Type: application/json"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += ["Transfer-Encoding: chunked"] if length is None else []
    return ("\r\n".join([*lines, *headers]) + "\r\n\r\n").encode()


def test_a_body_longer_than_its_route_takes_is_refused_before_it_is_sent(served):
    """20 MB announced to the pairing route: 413 at once, not after reading it."""
    server, _, _ = served
    with connect(server) as sock:
        sock.sendall(post_head(f"{protocol.API}/pair", 20_000_000) + b'{"code": "')
        status, headers, body = answer(sock)
    assert status == 413, "the server waited for a body it will never take"
    assert json.loads(body)["detail"]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(served):
    """No length to go by: the server counts, and stops at the route's limit
    (the pairing route's 4 KiB), long before the 2 MB the client would send."""
    server, _, _ = served
    chunk = b"[" + b"1," * 4095 + b"1]"
    with connect(server) as sock:
        sock.sendall(post_head(f"{protocol.API}/pair", None))
        for _ in range(256):  # 2 MB at most
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:
                break  # the server closed on us: its answer is waiting
            if answered(sock, 0.05):
                break
        else:
            sock.sendall(b"0\r\n\r\n")
        status, _, body = answer(sock)
    assert status == 413, f"answered {status}: the whole body was read"
    assert "detail" in json.loads(body)


def test_a_kiosk_call_without_a_token_is_refused_before_its_body(served):
    server, _, _ = served
    for authorization in (
        (),
        ("Authorization: Basic dm91cm86dm91cm8=",),
        ("Authorization: Bearer",),
    ):
        with connect(server) as sock:
            sock.sendall(post_head(f"{protocol.API}/kiosk/tickets", 50_000_000, *authorization))
            status, headers, body = answer(sock)
        assert status == 401, f"{authorization}: the server waited for a 50 MB body"
        assert headers["www-authenticate"] == "Bearer"
        assert json.loads(body) == {"detail": "a kiosk call needs Authorization: Bearer <token>"}


def test_a_full_batch_and_a_full_heartbeat_fit_their_routes(served):
    """The limits refuse what no kiosk sends, never what a kiosk does send: a
    batch of MAX_BATCH real tickets, a heartbeat with every text at its longest."""
    server, token, store = served
    kiosk = store.kiosk_for_token(token)
    day = today(store)
    store.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=1000))
    rows = [ticket(n, day=day, mono=n) for n in range(1, protocol.MAX_BATCH + 1)]
    body = batch(*rows, mono=protocol.MAX_BATCH + 1).model_dump_json()
    assert len(body) * 4 < TICKET_BATCH_BYTES, "a real batch, with room to grow"
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    reply = requests.post(
        f"{server.url}{protocol.API}/kiosk/tickets", data=body, headers=auth, timeout=60
    )
    assert reply.status_code == 200, reply.text[:300]
    assert {r["result"] for r in reply.json()["results"]} == {"created"}

    beat = protocol.Heartbeat(clock="🕰" * 500, problems=["💾" * 500] * 20).model_dump_json()
    assert len(beat.encode()) <= body_limit(f"{protocol.API}/kiosk/heartbeat")
    reply = requests.post(
        f"{server.url}{protocol.API}/kiosk/heartbeat", data=beat, headers=auth, timeout=60
    )
    assert reply.status_code == 200, reply.text[:300]


def test_connections_that_never_finish_a_request_head_are_closed(served):
    """A socket that sends nothing, one that sends half a head, and a keep-alive
    one that starts its second head and stalls (uvicorn's keep-alive timer stops
    at its first byte): each is closed at the head deadline (10 s by default)."""
    server, _, _ = served
    silent, half, second = (connect(server) for _ in range(3))
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: vuoro\r\n")
    second.sendall(b"GET /healthz HTTP/1.1\r\nHost: vuoro\r\n\r\n")
    first = b""
    while not first.endswith(b"}"):  # the whole JSON answer, and no more
        first += second.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    second.sendall(b"GET /healthz HTTP/1.1\r\n")
    held = []
    for name, sock in (("silent", silent), ("half a head", half), ("second head", second)):
        sock.settimeout(Limits.head_timeout_s + WAIT_S)
        try:
            if sock.recv(65536) != b"":
                held.append(f"{name}: answered")
        except TimeoutError:
            held.append(f"{name}: held open")
        except ConnectionResetError:
            pass
        sock.close()
    assert not held


def test_a_body_slower_than_the_body_deadline_gets_408(tmp_path):
    server = Server(tmp_path / "server.db", options=("--body-timeout", "1"))
    try:
        with connect(server) as sock:
            sock.sendall(post_head(f"{protocol.API}/pair", 100) + b'{"code": "AB')
            status, _, body = answer(sock)
    finally:
        server.stop()
    assert status == 408
    assert "detail" in json.loads(body)


def test_every_answer_carries_the_security_headers(served):
    server, _, _ = served
    for path in (
        "/healthz",
        "/t/QQQQQQQQQQQQQQQQQQQQQQ",
        f"{protocol.API}/tickets/QQQQQQQQQQQQQQQQQQQQQQ",
        "/console/login",
        "/static/ticket.js",
        "/no/such/page",
    ):
        reply = requests.get(server.url + path, timeout=WAIT_S)
        policy = reply.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy, path
        assert reply.headers.get("X-Content-Type-Options") == "nosniff", path
        if reply.headers["Content-Type"].startswith("application/json"):
            assert policy == "default-src 'none'; frame-ancestors 'none'", path  # data only
        else:
            assert "script-src 'self'" in policy, path
            assert reply.headers.get("X-Frame-Options") == "DENY", path
            assert reply.headers.get("Referrer-Policy") == "no-referrer", path
        assert "Strict-Transport-Security" not in reply.headers, f"{path}: HSTS over plain HTTP"
    # TLS ended at a proxy on this host (trusted by default): HSTS
    behind_tls = requests.get(
        f"{server.url}/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=WAIT_S
    )
    assert behind_tls.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_connection_flood_never_exhausts_the_open_files(tmp_path):
    """With a hard open-file limit of 160, 300 idle sockets: the server closes
    the ones past its connection budget at once instead of running out of files
    (where asyncio fails accept() thousands of times a second and logs each),
    says the limit is too low, and answers again as soon as they are gone."""
    db = tmp_path / "server.db"
    Storage(db)
    port = free_port()
    limited = (
        "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160)); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    server = Managed(
        [sys.executable, "-c", limited, *serve_args(db, port)],
        tmp_path / "server.log",
    )
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        assert healthy(url), "the server starts"
        sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        time.sleep(2)  # let it fail to accept for a while
        for each in sockets:
            each.close()
        assert healthy(url), "the server recovers once they are gone"
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    accept_errors = log.count("socket.accept() out of system resource")
    assert accept_errors <= 1, f"{accept_errors} accept errors logged ({len(log)} bytes of log)"
    assert "Traceback" not in log, log[:3000]
    assert "open-file limit (160)" in log, "the operator is told the limit is too low"
    assert log.count("too many connections") == 1, "said once a burst"


def healthy(url: str) -> bool:
    """Whether /healthz answers within a bound (a server shedding connections may
    reset a few first)."""
    deadline = time.monotonic() + 2 * WAIT_S
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=WAIT_S).ok:
                return True
        except requests.RequestException:
            time.sleep(0.1)
    return False


def test_the_burst_filter_counts_what_it_left_out():
    clock = [0.0]
    burst = BurstFilter(["socket.accept() out of system resource"], 60, lambda: clock[0])

    def record(message: str) -> logging.LogRecord:
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            info = sys.exc_info()
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, (), info)

    first = record("socket.accept() out of system resource\nsocket: <...>")
    assert burst.filter(first)
    assert first.getMessage().startswith(
        "socket.accept() out of system resource: [Errno 24] Too many open files"
    )
    assert first.exc_info is None
    for _ in range(500):
        clock[0] += 0.01
        assert not burst.filter(record("socket.accept() out of system resource"))
    assert burst.filter(record("something else"))
    clock[0] += 60
    later = record("socket.accept() out of system resource")
    assert burst.filter(later)
    assert "500 more in the 60 s before were not logged" in later.getMessage()


def test_the_databases_are_created_private(tmp_path):
    """server.db holds token and password hashes, the kiosk's state.db every
    ticket's token: 0600 (with their -wal and -shm), in a 0700 directory, even
    under a umask of 022 (outside systemd)."""
    old = os.umask(0o022)
    try:
        store = Storage(tmp_path / "server" / "server.db")
        store.put_branch(*branch_file.load(DEMO))
        kiosk_db = state.connect(tmp_path / "kiosk" / "state.db")
        kiosk_db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
        made = [
            tmp_path / "server" / name for name in ("server.db", "server.db-wal", "server.db-shm")
        ]
        made += [tmp_path / "kiosk" / name for name in ("state.db", "state.db-wal", "state.db-shm")]
        for path in made:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for directory in (tmp_path / "server", tmp_path / "kiosk"):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        kiosk_db.close()
    finally:
        os.umask(old)


def test_serve_exits_non_zero_when_it_cannot_listen(tmp_path):
    """serve reports uvicorn's start-up failure rather than exiting 0."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            serve_args(tmp_path / "server.db", taken.getsockname()[1]),
            capture_output=True,
            timeout=60,
        )
    assert result.returncode == 3


def test_the_body_deadline_ends_with_the_body():
    """Once the whole body is in, a handler may wait on the connection (for the
    client to go) as long as it likes: the body deadline is not a response deadline."""

    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        with contextlib.suppress(TimeoutError):  # a streaming response listens for the client
            await asyncio.wait_for(receive(), 0.3)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def run() -> list[dict]:
        sent: list[dict] = []
        messages = [{"type": "http.request", "body": b"{}", "more_body": False}]
        forever = asyncio.Event()

        async def receive():
            if messages:
                return messages.pop(0)
            await forever.wait()

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "path": "/t/QQQQQQQQQQQQQQQQQQQQQQ/feedback",
            "headers": [(b"content-length", b"2")],
        }
        await BodyLimits(app, timeout_s=0.1)(scope, receive, send)
        return sent

    sent = asyncio.run(run())
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"done"
