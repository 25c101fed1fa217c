"""sd_notify: the messages on a real datagram socket, and the kiosk's watchdog
pings coming from its Kivy main loop (so they stop when that loop hangs) while
the sync daemon pings from its own loop."""

from __future__ import annotations

import itertools
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from appliance.notify import Notifier
from tests.kiosk_driver import Kiosk

SERVER_DATABASES = ("sqlite",)  # the daemon's systemd notifications, with the server as a backdrop


class NotifySocket:
    """What systemd listens on: a Unix datagram socket, read with timestamps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self, seconds: float) -> list[tuple[float, str]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))
        return self.messages

    def wait_for(self, prefix: str, timeout: float = 60.0) -> float:
        """When a message starting with `prefix` arrived (a process's start
        is slow on a busy machine, so the wait is bounded, not fixed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, text in self.messages:
                if text.startswith(prefix):
                    return at
            self.drain(0.1)
        raise AssertionError(f"no {prefix!r} within {timeout} s: {self.messages}")

    def until(self, condition, what: str, timeout: float = 20.0) -> None:
        """Read messages until ``condition()`` holds, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"not {what} within {timeout} s: {self.messages}"
            self.drain(0.05)

    def close(self) -> None:
        self.sock.close()


def pings_in(listener: NotifySocket) -> list[float]:
    """When each watchdog ping arrived."""
    return [t for t, m in listener.messages if m == "WATCHDOG=1"]


@pytest.fixture
def notify_socket(tmp_path):
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


def test_messages_reach_the_socket(notify_socket):
    notifier = Notifier(
        {
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "3000000",
            "WATCHDOG_PID": str(os.getpid()),
        }
    )
    assert notifier.ready("ready: 3 services")
    assert notifier.status("printer: paper near end")
    assert notifier.watchdog() and notifier.stopping()
    assert notifier.ping_interval_s() == 1.0
    assert [m for _, m in notify_socket.drain(0.3)] == [
        "READY=1\nSTATUS=ready: 3 services",
        "STATUS=printer: paper near end",
        "WATCHDOG=1",
        "STOPPING=1",
    ]


def test_outside_systemd_nothing_is_sent_and_nothing_fails(tmp_path):
    assert not Notifier({}).ready()
    assert Notifier({}).ping_interval_s() is None
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.enabled and not gone.watchdog(), "a vanished manager is not an error"
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.address == "\0x" and other.ping_interval_s() is None, "another process's"
    assert Notifier({"WATCHDOG_USEC": "soon"}).ping_interval_s() is None


@pytest.mark.ui
def test_the_watchdog_stops_when_the_kivy_main_loop_hangs(screen, tmp_path, notify_socket):
    hang = tmp_path / "hang-now"
    kiosk = Kiosk(
        screen,
        tmp_path / "state",
        env={
            "NOTIFY_SOCKET": str(notify_socket.path),
            "WATCHDOG_USEC": "600000",  # WatchdogSec=0.6: a ping every 0.2 s
            "VUORO_HANG_WHEN": str(hang),
        },
        command=(sys.executable, "-m", "tests.hanging_kiosk"),
    )
    try:
        notify_socket.wait_for("READY=1")
        notify_socket.until(lambda: len(pings_in(notify_socket)) >= 10, "ten pings")
        screen.key("1")  # a ticket: the app works while it pings
        kiosk.wait_for_tickets(1, ("printed",))
        hang.touch()  # the next home refresh (every 5 s) blocks the main loop
        touched = time.monotonic()
        notify_socket.until(
            lambda: (
                pings_in(notify_socket)[-1] > touched
                and time.monotonic() - pings_in(notify_socket)[-1] > 2.0
            ),
            "the pings stopped for 2 s",
            timeout=30,
        )
        assert kiosk.alive(), "hung, not dead: only the watchdog can tell"
    finally:
        kiosk.stop()
    assert "READY=1\nSTATUS=ready: 3 services" in [m for _, m in notify_socket.messages]
    pings = pings_in(notify_socket)
    assert len(pings) >= 10, "pinging while the loop runs"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps[:5]) < 0.6, gaps[:5]
    assert time.monotonic() - pings[-1] > 2.0, "the pings stopped with the loop"


def test_the_sync_daemon_is_ready_and_pings_while_it_waits(branch, notify_socket):
    import subprocess

    from tests.server_process import BIN

    server, kiosk_dir = branch
    env = os.environ | {
        "NOTIFY_SOCKET": str(notify_socket.path),
        "WATCHDOG_USEC": "900000",
    }
    daemon = subprocess.Popen(
        [str(BIN / "vuoro-sync"), "--state-dir", str(kiosk_dir), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready_at = notify_socket.wait_for("READY=1")
        messages = notify_socket.drain(ready_at + 3.0 - time.monotonic())
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    texts = [m for _, m in notify_socket.drain(0.5)]
    assert texts[0] == f"READY=1\nSTATUS=syncing with {server.url}"
    pings = [t for t, m in messages if m == "WATCHDOG=1" and t <= ready_at + 3.0]
    assert len(pings) >= 6, "every 0.3 s while idle"
    assert texts[-1] == "STOPPING=1"
