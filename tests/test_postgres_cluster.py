"""The throwaway PostgreSQL cluster the server's tests run against (tests/postgres.py):
a real server on a Unix socket, fresh databases, restarts and crashes, and nothing
left behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import postgres
from tests.postgres import Cluster, PostgresUnavailable, process_alive

ROOT = Path(__file__).resolve().parent.parent


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _wait_until(condition, timeout_s: float = 60.0) -> bool:
    """Poll a condition (bounded); whether it came true."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _hold_a_connection(cluster: Cluster, dbname: str) -> subprocess.Popen[bytes]:
    """A psql client sitting in a query, as a server worker's pooled connection would."""
    return subprocess.Popen(
        [
            *(str(cluster.bindir / "psql"), "-X", "-q", "-h", str(cluster.socket_dir)),
            *("-p", str(cluster.port), "-U", postgres.SUPERUSER, "-d", dbname),
            *("-c", "SELECT pg_sleep(600)"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_the_server_listens_on_its_own_unix_socket_only(postgres_cluster: Cluster):
    assert postgres_cluster.psql("SHOW listen_addresses").strip() == ""
    # A client on the Unix socket has no server address.
    assert postgres_cluster.psql("SELECT inet_server_addr() IS NULL").strip() == "t"
    assert (postgres_cluster.socket_dir / f".s.PGSQL.{postgres_cluster.port}").is_socket()
    assert len(str(postgres_cluster.socket_dir / ".s.PGSQL.5432")) <= 107
    settings = postgres_cluster.psql(
        "SELECT current_setting('max_connections'), current_setting('server_encoding'),"
        " current_setting('lc_collate'), current_setting('fsync')"
    )
    assert settings.strip() == "300|UTF8|C|off"
    expected_uid = os.geteuid() if os.geteuid() else postgres_cluster.account.pw_uid
    assert expected_uid != 0
    assert _uid_of(postgres_cluster.pid) == expected_uid


def test_two_fresh_databases_are_empty_and_separate(postgres_cluster: Cluster):
    first, second = postgres_cluster.create_database(), postgres_cluster.create_database()
    assert first != second
    postgres_cluster.psql("CREATE TABLE ticket (number int); INSERT INTO ticket VALUES (7)", first)
    assert postgres_cluster.psql("SELECT number FROM ticket", first).strip() == "7"
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres_cluster.psql(tables, second).strip() == "0"
    postgres_cluster.drop_database(first)
    postgres_cluster.drop_database(second)
    names = postgres_cluster.psql("SELECT datname FROM pg_database").split()
    assert first not in names and second not in names


def test_each_test_gets_a_database_of_its_own(postgres_cluster: Cluster, postgres_url: str):
    name = postgres_url.split("/")[3].split("?")[0]
    assert postgres_url == postgres_cluster.url(name)
    assert postgres_url.startswith(f"postgresql+psycopg://{postgres.SUPERUSER}@/{name}?host=/")
    assert f"host={postgres_cluster.socket_dir}&port={postgres_cluster.port}" in postgres_url
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert postgres_cluster.psql(tables, name).strip() == "0"


def test_text_sorts_in_byte_order_as_sqlite_does(postgres_cluster: Cluster, postgres_url: str):
    name = postgres_url.split("/")[3].split("?")[0]
    words = ["b", "B", "ä", "a", "Z", "é", "10", "9", "Ö", "o", "", "å", "A-1", "a1"]
    values = ", ".join(f"('{word}')" for word in words)
    postgres_cluster.psql(f"CREATE TABLE word (w text); INSERT INTO word VALUES {values}", name)
    in_postgres = postgres_cluster.psql("SELECT w FROM word ORDER BY w", name).split("\n")[:-1]
    with sqlite3.connect(":memory:") as lite:
        lite.execute("CREATE TABLE word (w text)")
        lite.executemany("INSERT INTO word VALUES (?)", [(word,) for word in words])
        in_sqlite = [row[0] for row in lite.execute("SELECT w FROM word ORDER BY w")]
    assert in_postgres == in_sqlite == sorted(words, key=lambda word: word.encode())


def test_a_restart_keeps_committed_data(postgres_cluster: Cluster, postgres_url: str):
    name = postgres_url.split("/")[3].split("?")[0]
    postgres_cluster.psql("CREATE TABLE ticket (number int); INSERT INTO ticket VALUES (1)", name)
    before = postgres_cluster.pid
    postgres_cluster.restart()
    assert postgres_cluster.pid != before and not process_alive(before)
    assert postgres_cluster.psql("SELECT number FROM ticket", name).strip() == "1"


@pytest.mark.parametrize("backends", [True, False], ids=["with-backends", "postmaster-alone"])
def test_a_killed_server_recovers_committed_data(
    postgres_cluster: Cluster, postgres_url: str, backends: bool
):
    name = postgres_url.split("/")[3].split("?")[0]
    postgres_cluster.psql("CREATE TABLE ticket (number int)", name)
    postgres_cluster.psql("INSERT INTO ticket SELECT g FROM generate_series(1, 1000) g", name)
    holder = _hold_a_connection(postgres_cluster, name)
    query = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"
    assert _wait_until(lambda: postgres_cluster.psql(query).strip() == "1")
    killed = postgres_cluster.server_processes()
    log_size = postgres_cluster.log_file.stat().st_size

    postgres_cluster.kill(backends=backends)
    assert postgres_cluster.pid is None and not process_alive(killed[0])
    assert holder.wait(timeout=60) != 0  # its server went away under it
    postgres_cluster.start()

    assert all(not process_alive(pid) for pid in killed)
    assert postgres_cluster.psql("SELECT count(*) FROM ticket", name).strip() == "1000"
    with postgres_cluster.log_file.open("rb") as log:
        log.seek(log_size)
        assert b"automatic recovery in progress" in log.read()


def test_a_second_cluster_shares_nothing_and_leaves_nothing_behind(postgres_cluster: Cluster):
    second = Cluster()
    second.start()
    try:
        assert second.socket_dir != postgres_cluster.socket_dir
        second.psql("CREATE DATABASE only_here")
        assert "only_here" not in postgres_cluster.psql("SELECT datname FROM pg_database")
        pid_file = second.data_dir / "postmaster.pid"
        assert pid_file.read_text().splitlines()[0] == str(second.pid)
        client = _hold_a_connection(second, "postgres")
        assert _wait_until(lambda: len(second.server_processes()) >= 2)
        processes, root = second.server_processes(), second.root
    finally:
        second.close()
    assert client.wait(timeout=60) != 0
    assert not pid_file.exists() and not root.exists()
    assert [pid for pid in processes if process_alive(pid)] == []
    assert postgres_cluster.psql("SELECT 1").strip() == "1"


def test_a_test_process_killed_outright_leaves_no_server_behind(tmp_path: Path):
    script = textwrap.dedent(
        """
        import os, signal
        from tests.postgres import Cluster
        cluster = Cluster()
        cluster.start()
        print(cluster.pid, cluster.root, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid, root = done.stdout.split()
    assert _wait_until(lambda: not process_alive(int(pid)) and not Path(root).exists())


def test_without_the_server_programs_the_tests_fail_naming_what_to_install(
    monkeypatch, tmp_path: Path
):
    monkeypatch.delenv("VUORO_PG_BIN", raising=False)
    monkeypatch.setattr(postgres, "_candidate_bindirs", lambda: iter([tmp_path]))
    with pytest.raises(PostgresUnavailable, match="`postgresql` package"):
        postgres.find_bindir()

    # A test that needs the cluster errors (it is not skipped) with that message.
    (tmp_path / "test_needs_postgres.py").write_text(
        "def test_it(postgres_url):\n    pass\n", encoding="utf-8"
    )
    env = {**os.environ, "VUORO_PG_BIN": str(tmp_path), "PYTHONPATH": str(ROOT)}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only this harness: a quicker start
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.postgres", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout and "skipped" not in done.stdout
    assert f"VUORO_PG_BIN={tmp_path} lacks initdb" in done.stdout
