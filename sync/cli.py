"""``vuoro-sync``: pair the kiosk, run the sync daemon, look at the state DB."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
from pathlib import Path

from sync import clock, devices, exchange, state, tickets
from sync.client import SyncError
from sync.daemon import BACKOFF_CAP_S, Credentials, SyncDaemon, pair, wait_for_pairing


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY``, else ``$VUORO_STATE_DIR``, else ./var (as the kiosk)."""
    for name in ("STATE_DIRECTORY", "VUORO_STATE_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name].split(":")[0])
    return Path("var")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vuoro-sync", description="Vuoro's state DB and sync daemon.")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="the kiosk's state directory (default: $STATE_DIRECTORY, $VUORO_STATE_DIR or ./var)",
    )
    p.add_argument(
        "--db", type=Path, default=None, help="state DB file (default: STATE_DIR/state.db)"
    )
    sub = p.add_subparsers(dest="command", required=True)
    pairing = sub.add_parser("pair", help="pair this kiosk with a server, once")
    pairing.add_argument("--server", required=True, help="e.g. https://queue.example.org")
    pairing.add_argument("--code", required=True, help="the pairing code from the server")
    pairing.add_argument("--name", default=os.uname().nodename, help="this kiosk's name")
    pairing.add_argument("--ca-bundle", help="a CA bundle for a private certificate authority")
    run = sub.add_parser("run", help="run the sync daemon")
    run.add_argument("--once", action="store_true", help="one cycle, then exit (1 on failure)")
    run.add_argument(
        "--max-backoff",
        type=float,
        default=BACKOFF_CAP_S,
        metavar="SECONDS",
        help=f"the longest wait between retries (default {BACKOFF_CAP_S:g})",
    )
    run.add_argument(
        "--wait-for-pairing",
        action="store_true",
        help="if not paired yet, wait for a code from the kiosk's admin menu instead of exiting",
    )
    run.add_argument(
        "--server",
        default=os.environ.get("VUORO_SERVER"),
        help="the queue server to pair with from the admin menu (default: $VUORO_SERVER)",
    )
    run.add_argument("--connect-timeout", type=float, default=5.0, metavar="SECONDS")
    run.add_argument("--read-timeout", type=float, default=20.0, metavar="SECONDS")
    sub.add_parser("migrate", help="create the state DB or bring its schema up to date")
    sub.add_parser("status", help="schema version, tickets by state, outbox depth, integrity")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state_dir = args.state_dir or (args.db.parent if args.db else default_state_dir())
    db_path = args.db or state_dir / "state.db"
    if args.command == "pair":
        try:
            credentials = pair(
                state_dir, args.server, args.code.strip().upper(), args.name, args.ca_bundle
            )
        except SyncError as exc:
            print(f"vuoro-sync: pairing failed: {exc}", file=sys.stderr)
            return 1
        print(
            f"paired as {credentials.kiosk_id} in branch {credentials.branch_id} "
            f"(reserve series {credentials.reserve_tag})"
        )
        return 0
    if args.command == "run":
        credentials = Credentials.load(state_dir)
        if credentials is None and args.wait_for_pairing:
            stopping = threading.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
            state.connect(db_path).close()  # the kiosk may not have made it yet
            credentials = wait_for_pairing(state_dir, args.server, stopping, socket.gethostname())
            if credentials is None:
                return 0  # stopped while waiting
        if credentials is None:
            print(f"vuoro-sync: {state_dir}: not paired yet (vuoro-sync pair)", file=sys.stderr)
            return 2
        daemon = SyncDaemon(
            state_dir,
            credentials,
            version=_version(),
            timeouts=(args.connect_timeout, args.read_timeout),
        )
        daemon.backoff.cap = args.max_backoff
        if args.once:
            try:
                daemon.cycle()
            except SyncError as exc:
                print(f"vuoro-sync: {exc}", file=sys.stderr)
                return 1
            return 0
        daemon.install_signal_handlers()
        daemon.run()
        return 0
    if args.command != "migrate" and not db_path.exists():
        print(f"vuoro-sync: {db_path}: no state DB here (see --db)", file=sys.stderr)
        return 2
    try:
        db = state.connect(db_path)
        print(f"{db_path}: schema version {state.schema_version(db)}")
        if args.command == "status":
            _status(db)
    except state.SchemaTooNew as exc:
        print(f"vuoro-sync: {db_path}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(
            f"vuoro-sync: {db_path}: the state DB is damaged ({exc}). The kiosk keeps it "
            "aside and salvages what it can at its next start: restart vuoro-kiosk "
            "(README: a damaged SD card).",
            file=sys.stderr,
        )
        return 3
    return 0


def _status(db) -> None:
    """Tickets by state, the outbox, the clock, problems for staff, counter tickets
    printed here (or why not), integrity."""
    for row in db.execute(
        "SELECT state, COUNT(*) FROM tickets GROUP BY state ORDER BY state"
    ).fetchall():
        print(f"tickets {row[0]}: {row[1]}")
    counts = exchange.counts(db)
    print(f"outbox waiting: {tickets.outbox_depth(db)}")
    print(f"outbox parked: {counts['parked']}")
    for reason, count in db.execute(
        "SELECT parked_reason, COUNT(*) FROM outbox WHERE parked_reason IS NOT NULL "
        "GROUP BY parked_reason"
    ).fetchall():
        print(f"  parked {count}: {reason}")
    reading = clock.read(db)
    print(f"clock: {reading.source}{': ' + reading.reason if reading.reason else ''}")
    for problem in devices.problems(db):
        print(f"problem: {problem}")
    for result, count in db.execute(  # tickets given at a counter, printed here or not
        "SELECT COALESCE(result, 'waiting'), COUNT(*) FROM commands WHERE kind = 'print_ticket' "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall():
        print(f"counter tickets {result}: {count}")
    print(f"integrity: {'ok' if state.integrity_ok(db) else 'DAMAGED'}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vuoro")
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
