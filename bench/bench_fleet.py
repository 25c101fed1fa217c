"""A city's fleet on one server, on PostgreSQL with several workers against
SQLite with one, in one run (bench/fleet.py runs the crowds).

40 branches made from the demo branch's file, 3 kiosks each running the real
sync daemon (a sixth of them behind a chaos proxy that is cut for a while),
phones following the printed tickets, one counter a branch calling through
the staff console. Figures: the phones' poll p99, the call-to-page latency
p99 (from the counter's call returning to the phone seeing ``called``), the
rate the server accepted tickets at, the errors (a correctness assert: every
ticket issued arrives exactly once, each called once), the server's memory
(summed over its processes) and CPU, and the load generator's own CPU, which
shares this machine's cores with the server.

Both databases live in memory-backed directories (/dev/shm): the throwaway
PostgreSQL cluster runs with fsync off, so the SQLite file gets no disk
either, and each kiosk's state DB would be on its own SD card, not queued on
this machine's one disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from bench.conftest import FULL
from bench.fleet import Plan, branch_id, percentile, staff_name
from server import branch_file
from server.staff import Staff
from server.storage import Storage
from sync import daemon, state
from tests.postgres import children_of, running_cluster
from tests.server_process import BIN, DEMO_BRANCH, Managed, free_port

PG_WORKERS = 4  # `vuoro-server serve --workers`


def full_plan() -> Plan:
    return Plan()


def tiny_plan() -> Plan:
    """A few kiosks, phones and counters for seconds: proves the benchmark works."""
    return Plan(
        branches=2,
        kiosks_per_branch=2,
        kiosk_processes=1,
        tickets_per_kiosk=5,
        compression=20.0,
        outage_share=0.25,
        outage_start_s=1.0,
        outage_s=2.0,
        phones=20,
        poll_s=1.0,
        service_s=40.0,
        call_until_s=6.0,
        linger_s=2.0,
    )


# -- the server and its processes ---------------------------------------------------


class FleetServer(Managed):
    """``vuoro-server --db URL serve`` on a free loopback port, ``workers`` processes."""

    def __init__(self, db_url: str, log: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        many = ["--workers", str(workers)] if workers > 1 else []
        command = [str(BIN / "vuoro-server"), "--db", db_url, "serve", "--port", str(self.port)]
        super().__init__([*command, *many], log)

    def start(self) -> None:
        super().start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"server did not start:\n{self.log.read_text()}")


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found, todo = [], [pid]
    while todo:
        each = todo.pop()
        found.append(each)
        todo.extend(children_of(each))
    return found


def proc_field(pid: int, name: str) -> int:
    """A kB figure from /proc/PID/status or smaps_rollup (VmRSS, Pss); 0 once it is gone."""
    source = "smaps_rollup" if name == "Pss" else "status"
    with contextlib.suppress(OSError, StopIteration):
        text = Path(f"/proc/{pid}/{source}").read_text()
        return int(next(ln for ln in text.splitlines() if ln.startswith(name + ":")).split()[1])
    return 0


def cpu_ticks(pid: int) -> int:
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    return 0


class Sampler:
    """The server's (and the database's) memory and CPU, every half second."""

    TICK = 100  # clock ticks a second (Linux's USER_HZ)

    def __init__(self, server_pid: int, db_pids) -> None:
        self.server_pid, self.db_pids = server_pid, db_pids
        self.server_cpu: dict[int, int] = {}
        self.db_cpu: dict[int, int] = {}
        self.peak_rss_kb = self.peak_db_pss_kb = 0
        self.load: list[float] = []  # the machine's 1-minute load average: neighbours too
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        """One sample; the server's RSS now (kB)."""
        self.load.append(os.getloadavg()[0])
        pids = tree(self.server_pid)
        rss = sum(proc_field(pid, "VmRSS") for pid in pids)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        for pid in pids:
            self.server_cpu[pid] = max(self.server_cpu.get(pid, 0), cpu_ticks(pid))
        db = self.db_pids()
        self.peak_db_pss_kb = max(self.peak_db_pss_kb, sum(proc_field(p, "Pss") for p in db))
        for pid in db:
            self.db_cpu[pid] = max(self.db_cpu.get(pid, 0), cpu_ticks(pid))
        return rss

    def _run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()

    def start(self) -> int:
        self.server_cpu = {pid: cpu_ticks(pid) for pid in tree(self.server_pid)}
        self.db_cpu = {pid: cpu_ticks(pid) for pid in self.db_pids()}
        self._cpu_before = (sum(self.server_cpu.values()), sum(self.db_cpu.values()))
        baseline = self.sample()
        self.thread.start()
        return baseline

    def stop(self) -> tuple[float, float]:
        """The server's and the database's CPU seconds since start()."""
        self.stopping.set()
        self.thread.join()
        self.sample()
        server = (sum(self.server_cpu.values()) - self._cpu_before[0]) / self.TICK
        db = (sum(self.db_cpu.values()) - self._cpu_before[1]) / self.TICK
        return server, db


# -- setting the city up ------------------------------------------------------------


def set_up_city(plan: Plan, storage: Storage, workdir: Path, kiosk_root: Path) -> None:
    """The branches (the demo's file under new ids), a staff account a branch;
    the kiosks' specs go into the plan. What ``vuoro-server branch`` and
    ``vuoro-server staff`` do, through one open storage rather than a process
    (and a second of start-up) a command."""
    demo = DEMO_BRANCH.read_text(encoding="utf-8")
    (workdir / "branches").mkdir()
    every = max(1, round(1 / plan.outage_share)) if plan.outage_share else 0
    staff = Staff(storage)
    for n in range(plan.branches):
        branch = branch_id(n)
        toml = demo.replace('id = "demo"', f'id = "{branch}"', 1).replace(
            'name = "Vuoro demo branch"', f'name = "Fleet branch {n + 1}"', 1
        )
        path = workdir / "branches" / f"{branch}.toml"
        path.write_text(toml, encoding="utf-8")
        storage.put_branch(*branch_file.load(path))
        staff.add(branch, staff_name(branch), plan.password, "1", [], "staff")
        for k in range(plan.kiosks_per_branch):
            number = len(plan.kiosks)
            plan.kiosks.append(
                {
                    "name": f"{branch}-k{k + 1}",
                    "branch": branch,
                    "state_dir": str(kiosk_root / f"{branch}-k{k + 1}"),
                    "proxied": bool(every) and number % every == every - 1,
                }
            )


def pair_kiosks(plan: Plan, storage: Storage, server_url: str) -> float:
    """Each kiosk paired with a fresh code (``vuoro-server pair-code``'s), three
    at a time, as technicians do; the seconds it took. Not all codes first: the
    server checks a code against every live one, an Argon2 check each, so 120
    live codes would cost each pairing up to 120 of them."""

    def one(kiosk: dict) -> None:
        code = storage.new_pairing_code(kiosk["branch"], 600)
        daemon.pair(Path(kiosk["state_dir"]), server_url, code, kiosk["name"])

    began = time.monotonic()
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(one, plan.kiosks))
    return time.monotonic() - began


# -- one run ------------------------------------------------------------------------


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.fleet", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def finish(process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired as late:
        process.kill()
        process.wait()
        raise AssertionError(f"{process.args} did not finish:\n{log.read_text()[-3000:]}") from late
    assert process.returncode == 0, f"{process.args}:\n{log.read_text()[-3000:]}"


def wait_ready(files: list[Path], processes: list[tuple[subprocess.Popen, Path]]) -> None:
    deadline = time.monotonic() + 240
    while not all(path.exists() for path in files):
        for process, log in processes:
            assert process.poll() is None, f"{process.args}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"not ready: {files}"
        time.sleep(0.1)


def run_city(plan: Plan, db_url: str, workers: int, workdir: Path, db_pids) -> dict:
    """Set up, run the crowds against a fresh server, check the database; the figures."""
    workdir.mkdir(parents=True)
    kiosk_root = Path(tempfile.mkdtemp(prefix="vuoro-fleet-", dir=memory_dir()))
    try:
        return _run_city(plan, db_url, workers, workdir, kiosk_root, db_pids)
    finally:
        shutil.rmtree(kiosk_root, ignore_errors=True)


def _run_city(plan, db_url, workers, workdir, kiosk_root, db_pids) -> dict:
    storage = Storage(db_url)
    set_up_city(plan, storage, workdir, kiosk_root)
    server = FleetServer(db_url, workdir / "server.log", workers)
    processes: list[tuple[subprocess.Popen, Path]] = []
    try:
        plan.server = server.url
        plan_file = workdir / "plan.json"
        plan.save(plan_file)
        # the counters log in first, while the server is quiet (Argon2 checks, a few at once)
        crowd_log = workdir / "crowd.log"
        crowd = spawn(["crowd", str(plan_file), str(workdir)], crowd_log)
        processes.append((crowd, crowd_log))
        wait_ready([workdir / "crowd.ready"], [(crowd, crowd_log)])
        pairing_s = pair_kiosks(plan, storage, server.url)
        plan.save(plan_file)
        for index in range(plan.kiosk_processes):
            log = workdir / f"kiosks-{index}.log"
            args = ["kiosks", str(plan_file), str(workdir), str(index)]
            processes.append((spawn(args, log), log))
        ready = [workdir / f"kiosks-{i}.ready" for i in range(plan.kiosk_processes)]
        wait_ready(ready, processes)
        sampler = Sampler(server.process.pid, db_pids)
        idle_rss_kb = sampler.start()
        began = time.monotonic()
        (workdir / "go").touch()
        for process, log in processes:
            finish(process, 300, log)
        wall_s = time.monotonic() - began
        server_cpu_s, db_cpu_s = sampler.stop()
    finally:
        for process, _ in processes:
            if process.poll() is None:
                process.kill()
        server.stop()
        storage.database.dispose()
    kiosks = [
        json.loads((workdir / f"kiosks-{i}.json").read_text()) for i in range(plan.kiosk_processes)
    ]
    crowd_figures = json.loads((workdir / "crowd.json").read_text())
    checked = check_database(plan, db_url, crowd_figures)
    return figures(
        plan,
        workers,
        kiosks,
        crowd_figures,
        checked,
        wall_s=wall_s,
        server_cpu_s=server_cpu_s,
        db_cpu_s=db_cpu_s,
        idle_rss_kb=idle_rss_kb,
        sampler=sampler,
    ) | {"pairing_s": round(pairing_s, 1)}


def check_database(plan: Plan, db_url: str, crowd: dict) -> dict:
    """Every ticket the kiosks printed is on the server once, no number twice, each
    called ticket called once and by its own branch's counter, as the console said."""
    printed: set[str] = set()
    for kiosk in plan.kiosks:
        db = state.connect(Path(kiosk["state_dir"]) / "state.db")
        printed |= {row[0] for row in db.execute("SELECT id FROM tickets")}
        db.close()
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as db:
            rows = db.execute(
                sa.text(
                    "SELECT id, branch_id, display, day, status, counter, called_at, "
                    "received_at FROM tickets"
                )
            ).all()
    finally:
        engine.dispose()
    on_server = {row.id for row in rows}
    numbers = Counter((row.branch_id, row.day, row.display) for row in rows)
    called = {f"{row.branch_id} {row.display}": row for row in rows if row.called_at}
    console = set(crowd["calls"])
    received = sorted(datetime.fromisoformat(row.received_at).timestamp() for row in rows)
    return {
        "printed": len(printed),
        "lost": len(printed - on_server),
        "unknown": len(on_server - printed),
        "number_clashes": sum(n - 1 for n in numbers.values() if n > 1),
        "parked": sum(row.status == "parked" for row in rows),
        "called": len(called),
        "calls_not_on_server": len(console - set(called)),
        "calls_not_by_console": len(set(called) - console),
        "wrong_counter": sum(row.counter != "1" for row in called.values()),
        "received": received,
    }


def figures(plan, workers, kiosks, crowd, checked, *, wall_s, server_cpu_s, db_cpu_s,
            idle_rss_kb, sampler) -> dict:  # fmt: skip
    calls, seen, live = crowd["calls"], crowd["seen"], set(crowd["seen_live"])
    latency_poll = [seen[k] - calls[k] for k in calls if k in seen and k not in live]
    latency_live = [seen[k] - calls[k] for k in calls if k in seen and k in live]
    received = checked.pop("received")
    span = (received[-1] - received[0]) if len(received) > 1 else 0.0
    per_second = Counter(int(t) for t in received)
    # errors: what must never happen however slow the server is
    errors = {
        **{k: v for k, v in checked.items() if k not in ("printed", "called") and v},
        "outbox left": sum(k["outbox_left"] for k in kiosks),
        "called twice": crowd["errors"].get("called twice", 0),
    }
    errors = {k: v for k, v in errors.items() if v}
    # failed requests: a phone's poll or a counter's press that got no answer (a
    # timeout, a reset, a 5xx): counted, as a slow server shows them
    failed = {k: v for k, v in crowd["errors"].items() if k != "called twice"}
    loadgen_cpu_s = sum(k["cpu_s"] for k in kiosks) + crowd["cpu_s"]
    issued = sum(k["issued"] for k in kiosks)
    issuing_s = max(k["issued_s"] for k in kiosks)

    def ms(values, share=0.99):
        found = percentile(values, share)
        return None if found is None else round(found * 1000, 1)

    def s(values, share=0.99):
        found = percentile(values, share)
        return None if found is None else round(found, 2)

    result = {
        "workers": workers,
        "kiosks": len(plan.kiosks),
        "tickets": issued,
        "offered_per_s": round(issued / issuing_s, 1),
        "ingest_per_s": round(len(received) / span, 1) if span else None,
        "ingest_peak_1s": max(per_second.values(), default=0),
        "drained_s": max(k["drained_s"] for k in kiosks),
        "phones": crowd["phones"],
        "live_phones": crowd["live_phones"],
        "polls": len(crowd["poll_s"]),
        "poll_p50_ms": ms(crowd["poll_s"], 0.5),
        "poll_p99_ms": ms(crowd["poll_s"]),
        "polls_not_yet_delivered": crowd["not_yet"],
        "calls": len(calls),
        "calls_followed_unseen": len(set(calls) & set(crowd["followed"]) - set(seen)),
        "call_to_page_poll_p50_s": s(latency_poll, 0.5),
        "call_to_page_poll_p99_s": s(latency_poll),
        "call_to_page_live_p99_s": s(latency_live),
        "errors": sum(errors.values()),
        "correct": round(1 - sum(errors.values()) / max(issued, 1), 4),
        "failed_requests": sum(failed.values()),
        "server_rss_mb": round(sampler.peak_rss_kb / 1024),
        "server_idle_rss_mb": round(idle_rss_kb / 1024),
        "server_cpu_cores": round(server_cpu_s / wall_s, 2),
        "db_cpu_cores": round(db_cpu_s / wall_s, 2),
        "db_pss_mb": round(sampler.peak_db_pss_kb / 1024),
        "loadgen_cpu_cores": round(loadgen_cpu_s / wall_s, 2),
        "wall_s": round(wall_s, 1),
        "load_avg_1m": round(statistics.median(sampler.load), 1),
    }
    if crowd["live_open_peak"]:
        result["kb_per_live_connection"] = round(
            (sampler.peak_rss_kb - idle_rss_kb) / crowd["live_open_peak"], 1
        )
    result["error_kinds"] = errors | {f"failed: {k}": v for k, v in failed.items()}
    # cycles the daemons retried: while cut off, and (timeouts) while not
    result["failed_cycles_cut_off"] = sum(k["failed_cycles_proxied"] for k in kiosks)
    result["failed_cycles_not_cut_off"] = sum(k["failed_cycles_direct"] for k in kiosks)
    return {k: v for k, v in result.items() if v is not None}


def memory_dir() -> str:
    """/dev/shm when it is there (see the module's docstring), else the temporary directory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else tempfile.gettempdir()


# -- the benchmark ------------------------------------------------------------------


@pytest.mark.timeout(900)
def test_fleet_on_postgresql_and_sqlite(tmp_path, record):
    """SQLite with one worker, then PostgreSQL with several, each against a fresh
    city; errors must be 0 (a correctness check), the speed is for the table."""
    make_plan = full_plan if FULL else tiny_plan
    results = {}
    sqlite_dir = Path(tempfile.mkdtemp(prefix="vuoro-fleet-db-", dir=memory_dir()))
    try:
        results["SQLite"] = run_city(
            make_plan(), f"sqlite:///{sqlite_dir / 'server.db'}", 1, tmp_path / "sqlite", list
        )
    finally:
        shutil.rmtree(sqlite_dir, ignore_errors=True)
    with running_cluster() as cluster:
        url = cluster.url(cluster.create_database())
        results["PostgreSQL"] = run_city(
            make_plan(), url, PG_WORKERS, tmp_path / "postgresql", cluster.server_processes
        )

    for name, figures_ in results.items():
        kinds = figures_.pop("error_kinds")
        print(f"\nfleet, {name}: {json.dumps(figures_)}\n  errors: {kinds}")
        assert figures_["errors"] == 0, f"{name}: {kinds}"  # correctness, not speed
        assert figures_["calls"] > 0 and figures_["phones"] > 0
        record(f"fleet, {name}", **figures_)
    pg, lite = results["PostgreSQL"], results["SQLite"]
    record(
        "fleet, PostgreSQL vs SQLite",
        poll_p99_ratio=round(pg["poll_p99_ms"] / lite["poll_p99_ms"], 2),
        ingest_ratio=round(pg["ingest_per_s"] / lite["ingest_per_s"], 2),
        server_rss_ratio=round(pg["server_rss_mb"] / lite["server_rss_mb"], 2),
    )
