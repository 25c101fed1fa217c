"""`make run`: the whole demo on one machine, all state under ./var.

The central queue server with the demo branch (127.0.0.1:8000), the kiosk
paired to it once, the sync daemon, and the kiosk in a window printing to the
emulator (var/printed/). Ctrl-C (or closing the window) stops every process
it started. With --standalone, only the kiosk, numbering tickets itself.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
PORT = 8000


def _run(*args: str) -> str:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        check=True,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    ).stdout.strip()


def _wait(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def _server_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as reply:
            return reply.status == 200
    except OSError:
        return False


def _services_listed(db: Path) -> bool:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM services WHERE listed = 1").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("STATE", "var")))
    parser.add_argument("--standalone", action="store_true", help="the kiosk alone, no server")
    parser.add_argument("--port", type=int, default=PORT, help=f"the server's port ({PORT})")
    args = parser.parse_args()
    var = args.state_dir.resolve()
    var.mkdir(parents=True, exist_ok=True)
    kiosk = [str(BIN / "vuoro-kiosk"), "--windowed", "--state-dir", str(var)]
    print(f"Printed tickets land in {var / 'printed'}/ (one .png and one .bin each).", flush=True)
    if args.standalone:
        return subprocess.call(kiosk)

    url = f"http://127.0.0.1:{args.port}"
    children: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the finally below runs
    try:
        server_db = var / "server.db"
        _run(
            "vuoro-server",
            "--db",
            str(server_db),
            "branch",
            str(REPO / "server" / "demo_branch.toml"),
        )
        if _server_up(url):
            raise SystemExit(f"demo: something already answers on {url}; stop it first")
        children.append(
            subprocess.Popen(
                [
                    str(BIN / "vuoro-server"),
                    "--db",
                    str(server_db),
                    "serve",
                    "--port",
                    str(args.port),
                ]
            )
        )
        _wait(lambda: _server_up(url), "the server start")
        if not (var / "credentials.json").exists():
            code = _run("vuoro-server", "--db", str(server_db), "pair-code", "--branch", "demo")
            print(
                _run(
                    "vuoro-sync",
                    "--state-dir",
                    str(var),
                    "pair",
                    "--server",
                    url,
                    "--code",
                    code,
                    "--name",
                    "demo-kiosk",
                ),
                flush=True,
            )
        children.append(subprocess.Popen([str(BIN / "vuoro-sync"), "--state-dir", str(var), "run"]))
        _wait(lambda: _services_listed(var / "state.db"), "the first sync")
        print(
            f"\nServer:        {url}  (API: {url}/docs, OpenAPI: {url}/openapi.json)\n"
            f"Ticket pages:  {url}/t/<token>  (scan a printed ticket's QR code)\n"
            f"Kiosk state:   {var / 'state.db'}; server DB: {server_db}\n"
            "Stop everything with Ctrl-C.\n",
            flush=True,
        )
        kiosk_process = subprocess.Popen(kiosk)
        children.append(kiosk_process)
        return kiosk_process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
