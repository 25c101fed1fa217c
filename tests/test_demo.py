"""`make run`'s demo: server, sync daemon and kiosk started together, a tap
reaches the server, and Ctrl-C stops every process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.kiosk_driver import button_center, wait_for_drawn
from tests.server_process import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.ui


def like_a_terminal() -> None:
    """Ctrl-C reaches the demo as in a terminal, also when the test run itself
    was started in the background (its children then inherit SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_demo_runs_everything_and_ctrl_c_stops_everything(screen, tmp_path):
    port = free_port()
    out = tmp_path / "demo.log"
    with open(out, "wb") as log:
        demo = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tools" / "demo.py"),
                "--state-dir",
                str(tmp_path / "var"),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | screen.env() | {"PYTHONUNBUFFERED": "1"},
            preexec_fn=like_a_terminal,
            process_group=0,  # to clean up after a failure, never before the check
        )
    try:
        check_the_demo(demo, screen, tmp_path, port, out)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)


def processes_of(var: Path) -> list[str]:
    """Process ids whose command line names the demo's state directory."""
    found = subprocess.run(["pgrep", "-f", str(var)], capture_output=True, text=True)
    return found.stdout.split()


def check_the_demo(demo: subprocess.Popen, screen, tmp_path, port: int, out) -> None:
    try:
        wait_until(lambda: "kiosk ready" in out.read_text(), timeout=90, what="the demo start")
        wait_for_drawn(screen)
        screen.click(*button_center(1, 3))
        server_db = tmp_path / "var" / "server.db"

        def on_server() -> list:
            with sqlite3.connect(server_db) as db:
                return db.execute("SELECT display, public_token FROM tickets").fetchall()

        wait_until(lambda: len(on_server()) == 1, what="the ticket on the server")
        ((display, token),) = on_server()
        page = requests.get(f"http://127.0.0.1:{port}/t/{token}", timeout=5)
        assert display == "B001" and "B001" in page.text
        assert list((tmp_path / "var" / "printed").glob("*-B001.png"))
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)  # the demo gives each of its three children 10 s
    leftovers = processes_of(tmp_path / "var")
    deadline = time.monotonic() + 5  # the last exits are being reaped
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.05)
        leftovers = processes_of(tmp_path / "var")
    assert leftovers == [], "every process the demo started has stopped"
    assert f"http://127.0.0.1:{port}/openapi.json" in out.read_text()
