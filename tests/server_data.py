"""A branch on a real server DB, and tickets to feed it, for storage-level tests."""

from __future__ import annotations

from pathlib import Path

from server.storage import Storage, iso, now
from sync import protocol

DEMO = Path(__file__).resolve().parent.parent / "server" / "demo_branch.toml"


def paired(storage: Storage, name: str = "door") -> dict:
    reply = storage.pair(storage.new_pairing_code("demo"), name)
    return storage.kiosk_for_token(reply.token)


def today(storage: Storage) -> str:
    with storage.reading() as db:
        return storage.branch_today(db, "demo")[0]


def ticket(
    n: int,
    *,
    day: str,
    seq: int | None = None,
    series: str = "",
    state="printed",
    service: str = "payments",
    mono: int = 0,
) -> protocol.TicketIn:
    return protocol.TicketIn(
        id=f"{n:032x}",
        public_token=f"token-{n:016d}",
        kiosk_seq=seq or n,
        service_id=service,
        day=day,
        number=n,
        series=series,
        display=f"A{n:03d}",
        language="fi",
        issued_at=iso(now()),
        state=state,
        issued_mono_ns=mono,
        boot_id="boot",
    )


def batch(*tickets: protocol.TicketIn, mono: int = 0) -> protocol.TicketBatch:
    return protocol.TicketBatch(
        sent_at=iso(now()), sent_mono_ns=mono, boot_id="boot", tickets=list(tickets)
    )
