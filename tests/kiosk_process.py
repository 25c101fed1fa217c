"""A kiosk's ticket path as a short process of its own, for tests that run it
under another clock (libfaketime) or kill it: it starts as the kiosk does
(the clock policy, settling what the last run left), issues N tickets through
the real state-DB API, "prints" each and exits, printing their numbers.

    python -m tests.kiosk_process STATE_DIR SERVICE N
"""

from __future__ import annotations

import sys
from pathlib import Path

from sync import clock, state, tickets


def main(state_dir: str, service: str, count: str) -> None:
    db = state.connect(Path(state_dir) / "state.db")
    clock.set_policy(db, require_sync=True)
    tickets.settle_interrupted(db)
    for _ in range(int(count)):
        ticket = tickets.issue_ticket(db, service, language="fi")
        tickets.mark_handed(db, ticket.id)
        tickets.mark_printed(db, ticket.id)
        print(ticket.display, ticket.day, ticket.time_source, flush=True)
    db.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
