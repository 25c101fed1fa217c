"""A throwaway PostgreSQL cluster for the tests, from the distribution's packages.

`initdb` in a temporary directory, the server listening on a Unix socket only
(no TCP, no port to collide on, no root service), one cluster per test process
(so each pytest-xdist worker has its own) and a fresh empty database per test.
The cluster lives in /dev/shm when there is room there, else in the temporary
directory, and goes when the session ends or the test process dies.
The cluster's SQL goes through `psql`, so this harness needs no Python driver.

As root (CI) the server runs as the `postgres` system user (or `nobody`),
because initdb and postgres refuse to run as root; otherwise as ourselves.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

SUPERUSER = "vuoro"
PORT = 5432  # only names the socket file: there is no TCP listener
TOOLS = ("initdb", "postgres", "pg_ctl", "psql")
INSTALL_HINT = (
    "PostgreSQL's server is needed for these tests: run `make test` (it installs Debian's "
    "`postgresql` package), or install your distribution's PostgreSQL server package "
    "(initdb, pg_ctl, postgres and psql), or set VUORO_PG_BIN to the directory holding them"
)
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
# A Unix socket path is limited to 107 bytes; the cluster's socket is
# <base>/vuoro-pg-XXXXXXXX/sock/.s.PGSQL.5432, so the base must stay short.
MAX_BASE_LEN = 60
MIN_SHM_FREE = 2 << 30  # a container's default 64 MB /dev/shm is too small for a cluster

# Test-only settings, never for a real server: the cluster is thrown away, so
# fsync and full-page writes buy nothing here. Commits stay synchronous
# (synchronous_commit = on): with fsync off a commit costs one write() to the
# kernel, and a commit the server acknowledged must survive a SIGKILL of every
# PostgreSQL process (the kernel keeps what was written), which the "server
# restarted" tests rely on. With synchronous_commit off it could be lost.
SETTINGS = """
# --- throwaway test cluster (tests/postgres.py): never use these settings for real data ---
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
port = {port}
max_connections = 300
shared_buffers = 32MB
fsync = off
full_page_writes = off
synchronous_commit = on
max_wal_size = 256MB
"""
# Trust on the Unix socket only: there is no TCP listener to authenticate.
HBA = "local all all trust\n"

# The watchdog stops the cluster and removes its directory when the test
# process dies without closing it (SIGKILL, os._exit): its stdin is a pipe
# whose other end only the test process holds, so read() returns at its death.
WATCHDOG = (
    'read line; [ "$line" = closed ] && exit 0; '
    '"$0" stop -D "$1" -m immediate -s >/dev/null 2>&1; rm -rf "$2"'
)


class PostgresUnavailable(RuntimeError):
    """PostgreSQL's server programs cannot be found or cannot run here."""


def find_bindir() -> Path:
    """The directory holding initdb, postgres, pg_ctl and psql, without relying on PATH.

    VUORO_PG_BIN wins; then Debian's newest /usr/lib/postgresql/<version>/bin;
    then `pg_config --bindir`; then wherever PATH finds initdb."""
    override = os.environ.get("VUORO_PG_BIN")
    if override:
        missing = _missing_tools(Path(override))
        if missing:
            raise PostgresUnavailable(
                f"VUORO_PG_BIN={override} lacks {', '.join(missing)}. {INSTALL_HINT}"
            )
        return Path(override)
    for candidate in _candidate_bindirs():
        if not _missing_tools(candidate):
            return candidate
    raise PostgresUnavailable(INSTALL_HINT)


def _missing_tools(bindir: Path) -> list[str]:
    return [tool for tool in TOOLS if not os.access(bindir / tool, os.X_OK)]


def _candidate_bindirs() -> Iterator[Path]:
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [p for p in debian.iterdir() if re.fullmatch(r"\d+(\.\d+)*", p.name)]
        versions.sort(key=lambda p: tuple(int(part) for part in p.name.split(".")), reverse=True)
        yield from (version / "bin" for version in versions)
    for pg_config in dict.fromkeys(filter(None, (shutil.which("pg_config"), "/usr/bin/pg_config"))):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            )
            yield Path(found.stdout.strip())
    initdb = shutil.which("initdb")
    if initdb:
        yield Path(initdb).resolve().parent


def _server_account() -> pwd.struct_passwd | None:
    """Whom the server runs as: None for ourselves; as root, an unprivileged user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable(
        "the tests run as root and PostgreSQL refuses to: neither a `postgres` nor a "
        "`nobody` user exists to run it as"
    )


def _can_enter(path: Path, account: pwd.struct_passwd) -> bool:
    """Whether the account may traverse every directory down to path."""
    groups = set(os.getgrouplist(account.pw_name, account.pw_gid))
    for each in (path, *path.parents):
        info = each.stat()
        if info.st_uid == account.pw_uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _base_dir(account: pwd.struct_passwd | None) -> Path:
    """Where the cluster's directory goes: /dev/shm when it has room (in memory, a
    database is created in tens of milliseconds, against half a second on a busy
    disk), else the temporary directory, else /tmp; one the server's account can
    reach, short enough for the socket's path."""
    candidates = [Path(tempfile.gettempdir()), Path("/tmp")]
    with contextlib.suppress(OSError):
        shm = os.statvfs("/dev/shm")
        if shm.f_bavail * shm.f_frsize >= MIN_SHM_FREE:
            candidates.insert(0, Path("/dev/shm"))
    for base in dict.fromkeys(candidates):
        if len(str(base)) > MAX_BASE_LEN or not base.is_dir():
            continue
        if account is None or _can_enter(base, account):
            return base
    who = f"user {account.pw_name}" if account else "this user"
    raise PostgresUnavailable(
        f"no short temporary directory that {who} can enter (tried /dev/shm, $TMPDIR, /tmp)"
    )


def _process_state(pid: int) -> str | None:
    """The /proc state letter of a process, None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()[0]


def process_alive(pid: int) -> bool:
    """Whether pid is a running process (a zombie has exited: it only awaits reaping)."""
    return _process_state(pid) not in (None, "Z", "X")


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is pid (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    """Wait (bounded) until none of pids runs; return those still running."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [pid for pid in pids if process_alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


class Cluster:
    """One throwaway PostgreSQL cluster: start() creates it, close() removes it.

    restart() is a clean restart; kill() then start() is a crash and recovery."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.account = _server_account()
        self.port = PORT
        self.root: Path | None = None
        self._postmaster: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._orphans: list[int] = []
        self._names = itertools.count(1)

    @property
    def data_dir(self) -> Path:
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root / "sock"

    @property
    def log_file(self) -> Path:
        return self._root / "server.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster has not been started")
        return self.root

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        if self._postmaster is None or self._postmaster.poll() is not None:
            return None
        return self._postmaster.pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def url(self, dbname: str) -> str:
        """The SQLAlchemy URL of a database here (psycopg 3 over the Unix socket)."""
        socket_dir = quote(str(self.socket_dir), safe="/")
        return f"postgresql+psycopg://{SUPERUSER}@/{dbname}?host={socket_dir}&port={self.port}"

    def start(self) -> None:
        """Create the cluster on first use, then run the server until it accepts connections."""
        if self.root is None:
            self._create()
        if self.running:
            return
        left = _wait_gone(self._orphans, STOP_TIMEOUT_S)
        if left:
            raise RuntimeError(f"processes of the killed server still run: {left}")
        self._orphans = []
        with self.log_file.open("ab") as log:
            self._postmaster = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on the tests is not a signal to the server
                **self._as_server(),
            )
        self._wait_ready(self._postmaster)

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server as `pg_ctl stop -m MODE` would (smart, fast or immediate)."""
        postmaster = self._postmaster
        if postmaster is None or postmaster.poll() is not None:
            return
        signum = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        postmaster.send_signal(signum)
        # The postmaster exits only once its children have (it reaps them itself).
        postmaster.wait(timeout=STOP_TIMEOUT_S)

    def restart(self) -> None:
        """A clean restart (fast shutdown, then start): the clients' connections break."""
        self.stop("fast")
        self.start()

    def kill(self, backends: bool = True) -> None:
        """Crash the server: SIGKILL the postmaster and, when backends, every process it
        started. Otherwise the backends notice their postmaster's death and exit on their
        own; start() waits for them either way, then recovers from the WAL."""
        postmaster = self._postmaster
        if postmaster is None or postmaster.poll() is not None:
            return
        os.kill(postmaster.pid, signal.SIGSTOP)  # no new backend between the listing and the kill
        children = children_of(postmaster.pid)
        postmaster.kill()
        postmaster.wait()
        if backends:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
        self._orphans = children

    def server_processes(self) -> list[int]:
        """The postmaster and its children while it runs (for tests that check cleanup)."""
        pid = self.pid
        return [pid, *children_of(pid)] if pid else []

    def create_database(self, template: str = "template0") -> str:
        """A fresh empty database (a copy of template); returns its name."""
        name = f"vuoro_test_{next(self._names)}"
        # FILE_COPY (PostgreSQL 15+) copies the template's files instead of writing
        # them all to the WAL: several times quicker for a small database.
        strategy = " STRATEGY FILE_COPY" if self.server_version >= 150000 else ""
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return name

    @functools.cached_property
    def server_version(self) -> int:
        """The server's version as a number, e.g. 150018 for 15.18."""
        return int(self.psql("SHOW server_version_num"))

    def drop_database(self, name: str) -> None:
        """Drop a database, ending whatever connections to it are left."""
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL statements through psql; returns the rows, unaligned, fields split by |."""
        done = subprocess.run(
            [
                str(self.bindir / "psql"),
                *("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"),
                *("-h", str(self.socket_dir), "-p", str(self.port)),
                *("-U", SUPERUSER, "-d", dbname, "-f", "-"),
            ],
            input=sql,
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=STOP_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr.strip()}")
        return done.stdout

    def close(self) -> None:
        """Stop the server (immediate: nothing here is worth a checkpoint) and remove
        the cluster's directory."""
        atexit.unregister(self.close)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.stop("immediate")
        if self._postmaster is not None and self._postmaster.poll() is None:
            self._postmaster.kill()
            self._postmaster.wait()
        _wait_gone(self._orphans, STOP_TIMEOUT_S)
        if self._watchdog is not None:
            with contextlib.suppress(BrokenPipeError):
                self._watchdog.communicate(b"closed\n", timeout=STOP_TIMEOUT_S)
            self._watchdog = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="vuoro-pg-", dir=_base_dir(self.account)))
        self.root = root
        atexit.register(self.close)
        self.socket_dir.mkdir()
        if self.account is not None:
            for path in (root, self.socket_dir):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", WATCHDOG, str(self.bindir / "pg_ctl"), str(self.data_dir), str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **self._as_server(),
        )
        # Locale C: text sorts by its UTF-8 bytes, as SQLite's does.
        done = subprocess.run(
            [
                str(self.bindir / "initdb"),
                *("-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust"),
                *("--encoding=UTF8", "--locale=C", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            **self._as_server(),
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        socket_dir = str(self.socket_dir).replace("'", "''")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(SETTINGS.format(socket_dir=socket_dir, port=self.port))
        (self.data_dir / "pg_hba.conf").write_text(HBA, encoding="utf-8")

    def _as_server(self) -> dict:
        """subprocess arguments that run a program as the server's account, in its directory."""
        options: dict = {"cwd": str(self._root), "env": _clean_env()}
        if self.account is not None:
            options |= {
                "user": self.account.pw_uid,
                "group": self.account.pw_gid,
                "extra_groups": [],
            }
            options["env"] |= {"HOME": self.account.pw_dir, "USER": self.account.pw_name}
        return options

    def _wait_ready(self, postmaster: subprocess.Popen[bytes]) -> None:
        """Wait (bounded) until postmaster.pid says this postmaster is ready, as pg_ctl -w does."""
        deadline = time.monotonic() + START_TIMEOUT_S
        pid_file = self.data_dir / "postmaster.pid"
        while True:
            if postmaster.poll() is not None:
                raise RuntimeError(
                    f"postgres exited ({postmaster.returncode}) while starting: {self._log_tail()}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 1 holds the postmaster's pid, line 8 its status.
                if (
                    len(lines) >= 8
                    and lines[0] == str(postmaster.pid)
                    and lines[7].strip() == "ready"
                ):
                    return
            if time.monotonic() > deadline:
                postmaster.kill()
                postmaster.wait()
                raise RuntimeError(
                    f"postgres did not get ready in {START_TIMEOUT_S}s: {self._log_tail()}"
                )
            time.sleep(0.01)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def _clean_env() -> dict[str, str]:
    """Our environment without libpq's PG* variables (they would redirect psql), in the C locale."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env |= {"LC_ALL": "C", "LANG": "C"}
    return env


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    """A cluster started now and removed at the end of the block; a test that
    needs one fails (never skips) naming what to install when it cannot start."""
    try:
        cluster = Cluster()
        cluster.start()
    except PostgresUnavailable as why:
        pytest.fail(str(why), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """This test process's PostgreSQL cluster (each pytest-xdist worker starts its own),
    started on first use and removed at the end of the session."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """The SQLAlchemy URL of a fresh empty database, dropped after the test."""
    postgres_cluster.start()  # a test before this one may have left it stopped
    name = postgres_cluster.create_database()
    yield postgres_cluster.url(name)
    postgres_cluster.start()
    postgres_cluster.drop_database(name)
