"""The printer emulator as a process of its own, for tests through real links."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from printer.backends import NetworkBackend, SerialBackend

BIN = Path(sys.executable).parent
TIMEOUT = 2.0


class Emulator:
    def __init__(self, out: Path, *flags: str, pty: bool = False, port: int = 0) -> None:
        where = ["--pty"] if pty else ["--port", str(port)]
        self.out = out
        self.process = subprocess.Popen(
            [str(BIN / "vuoro-printer"), "emulator", *where, "--out", str(out), *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.process.stdout.readline()
        assert line.startswith("emulated printer on "), line
        self.address = line.removeprefix("emulated printer on ").strip()

    def backend(self, **kwargs):
        kwargs.setdefault("timeout", TIMEOUT)
        if self.address.startswith("/dev/"):
            return SerialBackend(self.address, 9600, **kwargs)
        host, port = self.address.rsplit(":", 1)
        return NetworkBackend(host, int(port), **kwargs)

    def printed(self) -> list[Path]:
        return sorted(self.out.glob("*.png"))

    def wait_printed(self, count: int) -> list[Path]:
        deadline = time.monotonic() + 10
        while len(self.printed()) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.printed()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
