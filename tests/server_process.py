"""The central queue server and the sync daemon as processes of their own."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import time
import unittest.mock
from collections.abc import Iterator
from pathlib import Path

import requests

BIN = Path(sys.executable).parent
DEMO_BRANCH = Path(__file__).resolve().parent.parent / "server" / "demo_branch.toml"


#: Ports handed out for test servers: below Linux's default ephemeral range
#: (32768-60999), where the kernel never picks the local port of an outgoing
#: connection, split into one block per pytest-xdist worker.
PORT_BLOCKS = range(12000, 32000, 2500)


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = PORT_BLOCKS[int(worker or 0) % len(PORT_BLOCKS)]
    return range(start, start + PORT_BLOCKS.step)


_next_ports: Iterator[int] | None = None


def free_port() -> int:
    """A loopback port that is free now and stays ours for the test: a server
    may be killed and restarted on it while other tests run in parallel.

    A port the kernel gives for ``bind(("127.0.0.1", 0))`` comes from the
    ephemeral range, from which it also picks the local ports of outgoing
    connections: another worker's client could take it while our server
    restarts. So each worker takes ports from its own block below that range,
    in turn from a random start (runs side by side rarely meet), skipping any
    port something already holds.
    """
    global _next_ports
    if _next_ports is None:
        block = _port_block()
        start = random.randrange(len(block))
        _next_ports = itertools.cycle([*block[start:], *block[:start]])
    for _ in range(PORT_BLOCKS.step):
        port = next(_next_ports)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_port_block()}")


def run(*args: str, stdin: str = "") -> str:
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )
    assert result.returncode == 0, f"{args}: {result.stderr}"
    return result.stdout.strip()


def cli_in_process(*args: str, stdin: str = "") -> tuple[int | str | None, str, str]:
    """``vuoro-server ARGS`` by its ``main()`` in this process, with ``stdin``
    as its input: its exit status, output and errors."""
    from server.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        unittest.mock.patch("sys.stdin", io.StringIO(stdin)),
    ):
        try:
            status = main(list(args))
        except SystemExit as exit:  # argparse's refusals
            status = exit.code
    return status, out.getvalue(), err.getvalue()


class Managed:
    """A process of ours with a log file: start, SIGKILL (a power cut), stop politely."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args, self.log = args, log
        self.env = env or {}  # on top of ours; may change between restarts
        self.start()

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=os.environ | {"PYTHONUNBUFFERED": "1"} | self.env,
                start_new_session=True,  # its own group: a kill takes its workers too
            )

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers outliving their parent

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.kill()


def is_url(db: Path | str) -> bool:
    """Whether ``db`` names a database by URL (PostgreSQL) rather than an SQLite file."""
    return "://" in str(db)


def demo_server(directory: Path, db: Path | str | None = None) -> Iterator[Server]:
    """A server with the demo branch for a test module (its fixture yields from
    this); ``db`` is its database (by default an SQLite file in ``directory``)."""
    server = Server(db or directory / "server.db", logs=directory)
    server.load_branch(DEMO_BRANCH)
    yield server
    server.stop()


class Server(Managed):
    """``vuoro-server serve`` on a free loopback port; its DB outlives restarts."""

    def __init__(
        self,
        db: Path | str,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
        options: tuple[str, ...] = (),
        workers: int = 1,
        logs: Path | None = None,
    ) -> None:
        """``db``: an SQLite file, or a database URL (then ``logs`` is where the
        log goes); ``workers`` processes serve (``serve --workers``)."""
        self.db = db
        if logs is None:
            if is_url(db):
                raise ValueError("a server on a database URL needs logs, a directory")
            logs = Path(db).parent
        self.port = port or free_port()
        self.tls = tls
        self.workers = workers
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        logs.mkdir(parents=True, exist_ok=True)
        tls_args = ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])] if tls else []
        workers_args = ["--workers", str(workers)] if workers != 1 else []
        super().__init__(
            [
                str(BIN / "vuoro-server"),
                "--db",
                str(db),
                "serve",
                "--port",
                str(self.port),
                *workers_args,
                *tls_args,
                *options,  # more of serve's own
            ],
            logs / f"server-{self.port}.log",
        )

    def worker_pids(self) -> list[int]:
        """The processes that serve: the workers, or the server itself."""
        if self.workers == 1:
            return [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()]
        except OSError:
            return []

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + max(90, 30 * self.workers)  # a busy machine
        verify = str(self.tls[0]) if self.tls else True
        while time.monotonic() < deadline:
            try:
                answered = requests.get(f"{self.url}/healthz", timeout=1, verify=verify).ok
            except requests.RequestException:
                answered = False
            if answered and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.05)
        self.kill()  # a server that never answered must not outlive the test
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")

    def cli(self, *args: str, stdin: str = "") -> str:
        """``vuoro-server --db DB ARGS`` (an operator's command, never ``serve``)
        by the command's own ``main()`` in this process; what it printed. A new
        interpreter would cost a second or more of a core each time; the
        command starting as a process of its own is tested with ``run()``
        (tests/test_cli.py, tests/test_staff_security.py, tests/test_transfer.py)."""
        status, out, err = cli_in_process("--db", str(self.db), *args, stdin=stdin)
        assert status == 0, f"{args}: {err}"
        return out.strip()

    @property
    def sqlite(self) -> bool:
        """Whether this server keeps its storage in an SQLite file."""
        return not is_url(self.db)

    @functools.cached_property
    def storage(self):
        """The server's storage opened from the test, as the server opens it
        (on SQLite or PostgreSQL alike); closed when the server stops."""
        from server.storage import Storage

        return Storage(self.db, upgrade=False)

    def sql(self, query: str, params: list | tuple = ()) -> list[tuple]:
        """Run one statement on the server's database in a transaction of its
        own (``?`` placeholders on either database); the rows, if any."""
        with self.storage.transaction() as db:
            result = db.execute(query, params)
            return [tuple(row) for row in result] if result.returns_rows else []

    def assert_intact(self) -> None:
        """The database survived whatever the test did to the server: SQLite's
        integrity check of its file, or, on PostgreSQL (whose WAL is its own
        integrity), that every table still reads."""
        if self.sqlite:
            assert self.sql("PRAGMA integrity_check") == [("ok",)]
            return
        from server.storage import schema

        for table in schema.metadata.sorted_tables:
            self.sql(f"SELECT COUNT(*) FROM {table.name}")

    def stop(self) -> None:
        super().stop()
        storage = self.__dict__.pop("storage", None)
        if storage is not None:
            storage.database.dispose()

    def kiosk_token(self, name: str = "door", branch: str = "demo") -> str:
        """A new kiosk's bearer token, paired over the API as a kiosk does."""
        code = self.pair_code(branch)
        reply = requests.post(
            f"{self.url}/api/v1/pair", json={"code": code, "name": name}, timeout=5
        )
        assert reply.status_code == 200, reply.text
        return reply.json()["token"]

    def display_token(self, name: str = "Lobby", branch: str = "demo") -> str:
        """A new display's token, paired through its page's form as a TV's browser does."""
        code = self.pair_code(branch)
        reply = requests.post(
            f"{self.url}/display/pair",
            data={"code": code, "name": name},
            allow_redirects=False,
            timeout=30,
        )
        assert reply.status_code == 303, reply.text
        return reply.cookies["vuoro_display"]

    # The backdrop of most tests (a branch, codes, a paired kiosk) is set up
    # in the test's own process, through the same calls the CLIs make: a new
    # interpreter importing the server costs 1.5 s of a core each time, and
    # the CLIs themselves have tests of their own (tests/test_cli.py).

    def load_branch(self, path: Path) -> None:
        """``vuoro-server branch FILE``: the branch and its services from TOML."""
        from server import branch_file

        self.storage.put_branch(*branch_file.load(path))

    def pair_code(self, branch: str = "demo") -> str:
        """``vuoro-server pair-code``: a single-use code for a kiosk or a display."""
        return self.storage.new_pairing_code(branch, 600)

    def pair(self, state_dir: Path, name: str = "kiosk", branch: str = "demo") -> str:
        """Pair a kiosk state directory (as ``vuoro-sync pair`` does); its first sync."""
        from sync.daemon import pair as pair_kiosk

        credentials = pair_kiosk(state_dir, self.url, self.pair_code(branch), name)
        sync_once(state_dir)
        return f"paired as {credentials.kiosk_id} in branch {credentials.branch_id}"

    def call_next(
        self, counter: str, *services: str, branch: str = "demo", finish: str = ""
    ) -> str:
        """``vuoro-server call-next``: the longest-waiting ticket to a counter;
        what the CLI prints (tests/test_display.py runs the CLI itself)."""
        from server.cli import shown

        called = self.storage.call_next(branch, counter, list(services) or None, finish)
        if called is None:
            return "nobody is waiting"
        return f"{shown(called['number'])} to counter {shown(called['counter'])}"


def sync_once(state_dir: Path) -> None:
    """One cycle of a paired kiosk's sync daemon, as ``vuoro-sync run --once``
    runs it, in this process: a new interpreter costs a second or more of a
    core, and the CLI itself is tested in tests/test_sync.py."""
    from importlib.metadata import version

    from sync.credentials import Credentials
    from sync.daemon import SyncDaemon

    credentials = Credentials.load(state_dir)
    assert credentials is not None, f"{state_dir}: not paired"
    daemon = SyncDaemon(state_dir, credentials, version=version("vuoro"))
    try:
        daemon.cycle()
    finally:
        daemon.client.close()
        daemon.db.close()


class SyncProcess(Managed):
    """``vuoro-sync run`` for a kiosk state directory, retrying quickly."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.state_dir = state_dir
        super().__init__(
            [
                str(BIN / "vuoro-sync"),
                "--state-dir",
                str(state_dir),
                "run",
                "--max-backoff",
                "1",
                *extra,
            ],
            state_dir / "sync.log",
        )


def wait_until(condition, timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
