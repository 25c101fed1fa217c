"""``vuoro-sync``: the state DB from the command line (the daemon comes later)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sync import state, tickets


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vuoro-sync", description="Vuoro's state DB and sync.")
    p.add_argument("--db", type=Path, default=Path("var/state.db"), help="state DB file")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the state DB or bring its schema up to date")
    sub.add_parser("status", help="schema version, tickets by state, outbox depth, integrity")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "migrate" and not args.db.exists():
        print(f"vuoro-sync: {args.db}: no state DB here (see --db)", file=sys.stderr)
        return 2
    try:
        db = state.connect(args.db)
    except state.SchemaTooNew as exc:
        print(f"vuoro-sync: {args.db}: {exc}", file=sys.stderr)
        return 2
    print(f"{args.db}: schema version {state.schema_version(db)}")
    if args.command == "status":
        for row in db.execute(
            "SELECT state, COUNT(*) FROM tickets GROUP BY state ORDER BY state"
        ).fetchall():
            print(f"tickets {row[0]}: {row[1]}")
        print(f"outbox waiting: {tickets.outbox_depth(db)}")
        print(f"integrity: {'ok' if state.integrity_ok(db) else 'DAMAGED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
