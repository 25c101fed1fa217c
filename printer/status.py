"""Asking a printer how it is, in real time (``DLE EOT n``), and what the answer means.

Real-time status commands are answered even while the printer is offline
(cover open, paper out), which is exactly when we need them. A printer that
does not answer, or answers nonsense, is *unknown*, never "ok".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DLE_EOT = b"\x10\x04"
#: printer status, offline cause, roll paper sensor
QUERIES = (1, 2, 4)
QUERY_BYTES = b"".join(DLE_EOT + bytes([n]) for n in QUERIES)


class Paper(enum.Enum):
    OK = "ok"
    NEAR_END = "near_end"
    OUT = "out"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer said. ``answered`` is False when it said nothing usable."""

    answered: bool
    online: bool = False
    cover_open: bool = False
    paper: Paper = Paper.UNKNOWN
    error: bool = False

    @property
    def state(self) -> str:
        """One word for the DB, the admin menu and the heartbeat."""
        if not self.answered:
            return "unknown"
        if self.cover_open:
            return "cover_open"
        if self.paper is Paper.OUT:
            return "paper_out"
        if self.error:
            return "error"
        if not self.online:
            return "offline"
        if self.paper is Paper.NEAR_END:
            return "paper_near_end"
        return "ok"

    @property
    def can_print(self) -> bool:
        """False only when the printer said it cannot: unknown still tries."""
        return self.state in ("ok", "paper_near_end", "unknown")


UNKNOWN = PrinterStatus(answered=False)


def _valid(byte: int) -> bool:
    """Every DLE EOT answer has bit 1 and bit 4 set, bit 0 and bit 7 clear."""
    return byte & 0b1001_0011 == 0b0001_0010


def parse(reply: bytes) -> PrinterStatus:
    """The answers to :data:`QUERY_BYTES`, in order, one byte each."""
    if len(reply) < len(QUERIES) or not all(_valid(b) for b in reply[: len(QUERIES)]):
        return UNKNOWN
    printer, offline_cause, paper_sensor = reply[:3]
    if paper_sensor & 0b0110_0000:
        paper = Paper.OUT
    elif paper_sensor & 0b0000_1100:
        paper = Paper.NEAR_END
    else:
        paper = Paper.OK
    return PrinterStatus(
        answered=True,
        online=not printer & 0b0000_1000,
        cover_open=bool(offline_cause & 0b0000_0100),
        paper=Paper.OUT if offline_cause & 0b0010_0000 else paper,
        error=bool(offline_cause & 0b0100_0000),
    )


def reply_for(
    *, cover_open: bool = False, paper_out: bool = False, near_end: bool = False
) -> dict[int, int]:
    """The bytes a healthy Epson-style printer answers to ``DLE EOT n``, by n.

    Used by the emulator, so the two halves of the protocol are written once.
    """
    offline = cover_open or paper_out
    return {
        1: 0b0001_0010 | (0b0000_1000 if offline else 0),
        2: 0b0001_0010 | (0b0000_0100 if cover_open else 0) | (0b0010_0000 if paper_out else 0),
        3: 0b0001_0010,
        4: 0b0001_0010 | (0b0000_1100 if near_end else 0) | (0b0110_0000 if paper_out else 0),
    }
