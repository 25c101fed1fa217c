"""Getting the state DB ready for the screen, whatever the SD card did meanwhile.

Runs before the first tap and again, every few seconds, while it cannot: a
full disk or a read-only card puts the kiosk out of order with the reason on
screen (never a crash loop under ``Restart=always``), and it comes back by
itself when space returns. A damaged DB is set aside and salvaged
(:mod:`sync.recovery`).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path

import sqlite_utils

from kiosk.config import KioskConfig
from sync import clock, commands, recovery, tickets
from sync.recovery import StateUnavailable

log = logging.getLogger("vuoro.kiosk.startup")

RETRY_S = 5.0  # how often an out-of-order kiosk tries the state DB again


@dataclass(frozen=True)
class Prepared:
    settings: KioskConfig  # with the server's branch and ticket URL once paired
    not_set_up: bool  # an appliance meant for a server, not yet paired
    recovered: str  # what a recovery of a damaged DB did, "" if none


def prepare(db_path: Path, settings: KioskConfig) -> Prepared:
    """Open (checked), apply the config, settle what the last run left half-way.

    Raises :class:`StateUnavailable` when the disk refuses; nothing is lost then.
    """
    try:
        db, recovered = recovery.open_checked(db_path)
        try:
            return _prepare(db, settings, recovered)
        finally:
            db.close()
    except (sqlite3.Error, OSError) as exc:
        if problem := recovery.unavailable(exc):
            raise problem from exc
        raise


def _prepare(
    db: sqlite_utils.Database, settings: KioskConfig, recovered: recovery.Recovered | None
) -> Prepared:
    clock.set_policy(db, require_sync=settings.require_time_sync)
    paired = tickets.get_config(db, "mode") == "paired"
    if paired:
        settings = with_server_config(settings, db)  # services come from the server
    elif settings.mode == "standalone":
        tickets.apply_standalone_config(
            db,
            branch=settings.branch,
            ticket=settings.ticket,
            services=[s.as_state() for s in settings.services],
            categories=[c.as_state() for c in settings.categories],
        )
    settled = tickets.settle_interrupted(db)
    if settled.voided:
        log.warning(
            "voided %d ticket(s) committed but never printed: %s",
            len(settled.voided),
            ", ".join(settled.voided),
        )
    if settled.kept:
        log.warning(
            "kept %d ticket(s) whose print was cut short (the paper may exist): %s",
            len(settled.kept),
            ", ".join(settled.kept),
        )
    cut = commands.settle_interrupted(db)
    if cut.again:
        log.warning("counter ticket(s) to print again, never sent to the printer: %s", cut.again)
    if cut.cut_short:
        log.warning(
            "counter ticket(s) whose print was cut short, not printed again: %s", cut.cut_short
        )
    return Prepared(
        settings,
        not_set_up=settings.mode == "paired" and not paired,
        recovered=recovered.summary() if recovered else "",
    )


def with_server_config(settings: KioskConfig, db: sqlite_utils.Database) -> KioskConfig:
    """A paired kiosk shows the branch and ticket URL the server gave the sync daemon."""
    branch = tickets.get_config(db, "branch", {}) or {}
    ticket = tickets.get_config(db, "ticket", {}) or {}
    return replace(
        settings,
        branch={**settings.branch, **{k: branch[k] for k in ("name", "timezone") if k in branch}},
        ticket={**settings.ticket, **{k: ticket[k] for k in ("url_template",) if k in ticket}},
    )


__all__ = ["RETRY_S", "Prepared", "StateUnavailable", "prepare", "with_server_config"]
