"""A local SMTP server as a process of its own (aiosmtpd):
``python -m tests.smtp_sink PORT DIRECTORY`` writes each message it
receives to DIRECTORY as one ``.eml`` file."""

from __future__ import annotations

import itertools
import sys
import threading
from pathlib import Path

from aiosmtpd.controller import Controller

_seq = itertools.count(1)


class Sink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, _server, _session, envelope) -> str:
        name = self.directory / f"message-{next(_seq):04d}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        return "250 OK"


def main(port: int, directory: Path) -> None:
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    threading.Event().wait()


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
