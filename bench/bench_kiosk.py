"""Tap to paper through the real app: a key press on the real ``vuoro-kiosk`` (Kivy,
on a virtual X screen) until the printer emulator (``vuoro-printer emulator``,
its own process on loopback TCP) has received the ticket's cut.

Two kiosks run side by side, one with speech always on, each paired to a real
server with its own sync daemon, and take turns ticket by ticket. The daemons
are pointed in turn, in blocks, at three networks: the server up, a port that
refuses connections, and a blackhole (a loopback listener that accepts and
never answers). Every figure of a state is taken in the same run as the
others, interleaved, so their ratios cancel the machine's speed: the network
and speech must not slow the paper.

The moment of the cut is the emulator's ``.bin`` file of the ticket appearing
(it is written when the cut command arrives, before the picture is rendered),
polled every millisecond; the clock starts before xdotool sends the key, so a
figure includes xdotool's start (a few ms, the same in every state).

Also the kiosk's cold start (process start to its "kiosk ready" log line, said
when the first frame is drawn and systemd is notified) and its memory (RSS)
after 100 and 1,000 tickets (5 and 10 in the tiny run).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.conftest import FULL
from sync.credentials import CREDENTIALS
from tests.emulator_process import BIN
from tests.kiosk_driver import KIOSK, READY, SCREEN, VirtualScreen
from tests.server_process import DEMO_BRANCH, Server, SyncProcess

pytestmark = [pytest.mark.ui, pytest.mark.timeout(3600 if FULL else 300)]

STATES = ("server up", "refused", "blackholed")
BLOCK = 40 if FULL else 1  # tickets per kiosk before the network changes
ROUNDS = 5 if FULL else 1  # times through the three states: 200 tickets a state a kiosk
RSS_AT = (100, 1000) if FULL else (5, 10)  # tickets of one kiosk
WARM_UP = 5 if FULL else 1  # tickets a kiosk prints before the measured ones
WAIT_S = 60  # the longest any one step may take before the run fails
POLL_S = 0.001
#: Between customers: the kiosk that just went home has redrawn its home screen
#: before the next key press (a real next customer comes seconds later).
CUSTOMER_GAP_S = 0.1
HOME_AGAIN = "time limit ticket: warning gone"  # the ticket screen's limit ran out: home

CONFIG = """
[kiosk]
language = "en"
languages = ["en"]
return_home_s = 0.1
warn_before_s = 10
min_tap_interval_s = 0.01
max_tickets_per_minute = 100000

[branch]
name = "Benchmark branch"
timezone = "Europe/Helsinki"

[ticket]
url_template = "http://127.0.0.1:8000/t/{{token}}"

[printer]
backend = "network"
host = "127.0.0.1"
port = {port}
timeout_s = 10
{speech}
[[services]]
id = "payments"
prefix = "A"
name = {{ en = "Payments" }}
"""

SPEECH_ON = """
[speech]
always_on = true
speaker_device = "null"
"""


class Log:
    """A growing log file read from where it was left: counting a line stays
    cheap however long the run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._text = ""

    def count(self, needle: str) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                new = f.read()
        except FileNotFoundError:
            return 0
        self._offset += len(new)
        self._text += new.decode(errors="replace")
        return self._text.count(needle)

    def wait(self, needle: str, times: int, process: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + WAIT_S
        while self.count(needle) < times:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{self.path.name} exited:\n{self._text[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {needle!r} x{times} in {self.path}:\n{self._text[-3000:]}"
                )
            time.sleep(POLL_S)


class Blackhole:
    """A loopback listener that accepts and never answers; its connections are
    held until :meth:`close` (at most ``WAIT_S`` after the last accept)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            self.accepted += 1

    def release(self) -> None:
        """Close the held connections: a daemon waiting on one stops at once."""
        held, self._held = self._held, []
        for conn in held:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.release()
        self.server.close()


def refused_port() -> tuple[socket.socket, int]:
    """A port bound but not listening: a connection to it is refused at once
    (and nothing else can take the port while we hold it)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


@dataclass
class Printer:
    """``vuoro-printer emulator`` on a free loopback port, its tickets in ``out``;
    started at once, its port read (waited for) when first asked."""

    out: Path
    process: subprocess.Popen = field(init=False)
    _port: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.log = self.out.parent / f"{self.out.name}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "vuoro-printer"), "emulator", "--port", "0", "--out", str(self.out)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.out.mkdir(parents=True, exist_ok=True)

    @property
    def port(self) -> int:
        deadline = time.monotonic() + WAIT_S
        while not self._port:
            said = self.log.read_text(errors="replace")
            if "emulated printer on " in said:
                address = said.split("emulated printer on ")[1].split()[0]
                self._port = int(address.rsplit(":", 1)[1])
                break
            assert self.process.poll() is None and time.monotonic() < deadline, said
            time.sleep(0.01)
        return self._port

    def files(self, suffix: str) -> list[str]:
        return [e.name for e in os.scandir(self.out) if e.name.endswith(suffix)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class BenchKiosk:
    """One real kiosk on a virtual screen of its own, with its printer and daemon."""

    name: str
    screen: VirtualScreen
    state_dir: Path
    printer: Printer
    speech: bool
    process: subprocess.Popen | None = None
    sync: SyncProcess | None = None
    cold_start_s: float = 0.0
    issued: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STATES})
    rss_mb: dict[int, float] = field(default_factory=dict)

    def start(self) -> None:
        config = self.state_dir.parent / f"{self.name}.toml"
        config.write_text(
            CONFIG.format(port=self.printer.port, speech=SPEECH_ON if self.speech else ""),
            encoding="utf-8",
        )
        self.log = Log(self.state_dir.parent / f"{self.name}.log")
        env = os.environ | self.screen.env() | {"PYTHONUNBUFFERED": "1"}
        env.pop("VUORO_CONFIG", None)
        args = [str(KIOSK), "--state-dir", str(self.state_dir), "--windowed"]
        args += ["--size", f"{SCREEN[0]}x{SCREEN[1]}", "--config", str(config)]
        with open(self.log.path, "wb") as out:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        self.log.wait(READY, 1, self.process)
        self.cold_start_s = time.perf_counter() - started
        self.screen.xdotool("mousemove", str(SCREEN[0] // 2), "5")  # keys go to its window

    def point_sync_at(self, url: str) -> None:
        """The daemon talks to ``url`` from now on (started again: it reads its
        credentials once; stop it first)."""
        path = self.state_dir / CREDENTIALS
        credentials = json.loads(path.read_text())
        credentials["server"] = url
        path.write_text(json.dumps(credentials))
        self.sync = SyncProcess(self.state_dir)

    def tap_to_paper(self, network: str | None) -> None:
        """One customer: key 1, the cut at the printer, the ticket's picture
        rendered (not timed), home again. ``network`` None: a warm-up, not kept."""
        assert not self.printer.files(".bin"), "the last ticket was cleared"
        started = time.perf_counter()
        self.screen.xdotool("key", "1")
        deadline = time.monotonic() + WAIT_S
        while not self.printer.files(".bin"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{self.name}: no cut within {WAIT_S}s:\n{self.log.path}")
            time.sleep(POLL_S)
        if network is not None:
            self.latencies[network].append(time.perf_counter() - started)
        self.issued += 1
        while not self.printer.files(".png"):
            assert time.monotonic() < deadline, f"{self.name}: the emulator rendered nothing"
            time.sleep(POLL_S)
        for name in self.printer.files(".bin") + self.printer.files(".png"):
            os.unlink(self.printer.out / name)
        self.log.wait(HOME_AGAIN, self.issued, self.process)
        time.sleep(CUSTOMER_GAP_S)
        if self.issued in RSS_AT:
            self.rss_mb[self.issued] = rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.sync is not None:
            self.sync.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise AssertionError(f"no VmRSS for {pid}")


def undelivered(state_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(state_dir / "state.db", timeout=10) as db:
        query = "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
        return db.execute(query).fetchone()[0]


def failed_syncs(state_dir: Path) -> int:
    """How many sync attempts the daemon's log says failed, in all its runs."""
    try:
        return (state_dir / "sync.log").read_text(errors="replace").count("sync failed")
    except FileNotFoundError:
        return 0


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {WAIT_S}s"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def kiosks(tmp_path_factory) -> Iterator[tuple[Server, list[BenchKiosk]]]:
    """The server with the demo branch, and two paired kiosks (speech off, on)."""
    root = tmp_path_factory.mktemp("kiosk-bench")
    names = (("speech-off", False), ("speech-on", True))
    printers = [Printer(root / f"{name}-printed") for name, _ in names]  # start meanwhile
    started: list[BenchKiosk] = []
    screens: list[VirtualScreen] = []
    server = None
    try:
        server = Server(root / "server" / "server.db")
        demo = root / "branch.toml"
        demo.write_text(
            DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", server.url),
            encoding="utf-8",
        )
        server.load_branch(demo)
        for (name, speech), printer in zip(names, printers, strict=True):
            state_dir = root / name
            server.pair(state_dir, name)
            screens.append(VirtualScreen())
            kiosk = BenchKiosk(name, screens[-1], state_dir, printer, speech)
            started.append(kiosk)
            kiosk.start()
        yield server, started
    finally:
        for kiosk in started:  # all told at once: they stop side by side
            if kiosk.process is not None and kiosk.process.poll() is None:
                kiosk.process.terminate()
            if kiosk.sync is not None and kiosk.sync.process.poll() is None:
                kiosk.sync.process.terminate()
        for kiosk in started:
            kiosk.stop()
        for each in (*printers, *screens):
            each.stop() if isinstance(each, Printer) else each.close()
        if server is not None:
            server.stop()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": _ms(statistics.median(values)),
        "p95_ms": _ms(_percentile(values, 0.95)),
        "p99_ms": _ms(_percentile(values, 0.99)),
        "max_ms": _ms(max(values)),
    }


def test_tap_to_paper_through_the_real_app(kiosks, record):
    server, both = kiosks
    refusing, refused = refused_port()
    blackhole = Blackhole()
    urls = {
        "server up": server.url,
        "refused": f"http://127.0.0.1:{refused}",
        "blackholed": f"http://127.0.0.1:{blackhole.port}",
    }
    off, on = both

    current = [""]

    def switch(network: str) -> None:
        """Both daemons to ``network``, once each has met it."""
        if current[0] == network:
            return
        current[0] = network
        blackhole.release()  # a daemon waiting on the blackhole stops at once
        running = [k.sync for k in both if k.sync is not None]
        for sync in running:
            sync.process.terminate()
        for sync in running:
            sync.stop()
        failures = [failed_syncs(k.state_dir) for k in both]
        accepted = blackhole.accepted
        for kiosk in both:
            kiosk.point_sync_at(urls[network])
        settle(network, both, failures, accepted, blackhole)

    try:
        switch("server up")
        for _ in range(WARM_UP):  # first imports, first connections: not a customer's wait
            for kiosk in both:
                kiosk.tap_to_paper(None)
        for _round in range(ROUNDS):
            for network in STATES:
                switch(network)
                for n in range(BLOCK):
                    for kiosk in both if n % 2 == 0 else both[::-1]:
                        kiosk.tap_to_paper(network)
        while off.issued < max(RSS_AT):  # the rest of the memory run: speech off, blackholed
            off.tap_to_paper(None)
    finally:
        blackhole.close()
        refusing.close()
    for kiosk in both:
        for network in STATES:
            record(
                f"tap to paper, real kiosk, speech {'on' if kiosk.speech else 'off'}, {network}",
                **summary(kiosk.latencies[network]),
            )
    by_network = {s: summary([v for k in both for v in k.latencies[s]]) for s in STATES}
    by_speech = {k.speech: summary([v for s in STATES for v in k.latencies[s]]) for k in both}

    def ratio(a: dict, b: dict, figure: str) -> float:
        return round(a[figure] / b[figure], 2)

    up = by_network["server up"]
    record(
        "tap to paper, real kiosk: ratios",
        blackholed_vs_up_p50=ratio(by_network["blackholed"], up, "p50_ms"),
        blackholed_vs_up_p95=ratio(by_network["blackholed"], up, "p95_ms"),
        refused_vs_up_p50=ratio(by_network["refused"], up, "p50_ms"),
        refused_vs_up_p95=ratio(by_network["refused"], up, "p95_ms"),
        speech_on_vs_off_p50=ratio(by_speech[True], by_speech[False], "p50_ms"),
        speech_on_vs_off_p95=ratio(by_speech[True], by_speech[False], "p95_ms"),
    )
    record(
        "kiosk cold start (process to first frame)",
        speech_off_s=round(off.cold_start_s, 2),
        speech_on_s=round(on.cold_start_s, 2),
    )
    small, large = RSS_AT
    record(
        "kiosk memory (RSS)",
        **{f"after_{small}_mb": off.rss_mb[small], f"after_{large}_mb": off.rss_mb[large]},
        rss_ratio=round(off.rss_mb[large] / off.rss_mb[small], 2),
    )
    assert off.issued == max(RSS_AT)
    assert all(len(k.latencies[s]) == BLOCK * ROUNDS for k in both for s in STATES)


def settle(
    network: str, both: list[BenchKiosk], failures: list[int], accepted: int, blackhole: Blackhole
) -> None:
    """Until each restarted daemon has met the network once: the backlog
    delivered, a refusal logged, or a connection swallowed by the blackhole."""
    for kiosk, failed in zip(both, failures, strict=True):
        if network == "server up":
            wait_for(lambda k=kiosk: undelivered(k.state_dir) == 0, f"{kiosk.name}: delivered")
        elif network == "refused":
            wait_for(
                lambda k=kiosk, f=failed: failed_syncs(k.state_dir) > f, f"{kiosk.name}: a refusal"
            )
    if network == "blackholed":
        wait_for(lambda: blackhole.accepted >= accepted + len(both), "both daemons swallowed")
