"""A paired kiosk's printing path as a process of its own, without its screen:
it starts as the kiosk does (the shipped kiosk.toml, :func:`kiosk.startup.prepare`
settling what the last run left), then does what the app's clock does: looks
for counter tickets to print every tenth of a second (the app: every second)
and asks the printer how it is every half second (the app: every 20 s idle),
through the real :class:`kiosk.issuing.TicketIssuer` and a network printer.
Each command's result goes to stdout as ``result <id> <result>``, and the
first printer check as ``checked <state>``. SIGTERM stops it.

    python -m tests.counter_print_process STATE_DIR HOST:PORT [PRINTER_TIMEOUT_S]
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from kiosk import config
from kiosk.issuing import TicketIssuer
from kiosk.startup import prepare
from printer.backends import NetworkBackend
from sync import state

SHIPPED = Path(__file__).resolve().parent.parent / "systemd" / "kiosk.toml"


def main(state_dir: str, printer: str, timeout_s: str = "2") -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    settings = config.parse(
        SHIPPED.read_text(encoding="utf-8").replace("require_time_sync = true", "")
    )
    db_path = Path(state_dir) / "state.db"
    prepared = prepare(db_path, settings)
    host, port = printer.rsplit(":", 1)
    backend = NetworkBackend(host, int(port), timeout=float(timeout_s))
    issuer = TicketIssuer(db_path, prepared.settings, backend, lambda f, *a: f(*a))
    db = state.connect(db_path)
    print("ready", flush=True)
    ticks = 0
    while not stopping.wait(0.1):
        for command, future in issuer.take_counter_tickets(db).items():
            print("result", command, future.result(), flush=True)
        ticks += 1
        if ticks % 5 == 0:
            seen = []
            issuer.check_printer(seen.append).result()
            if ticks == 5:  # it has looked for commands five times by now
                print("checked", seen[0], flush=True)
    issuer.shutdown()
    db.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
