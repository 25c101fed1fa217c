"""What time it is, as far as the kiosk can tell.

A Raspberry Pi has no real-time clock: until NTP answers, its wall clock may
be the time it was shut down (fake-hwclock) or a date years back. A ticket
numbered on such a clock lands on the wrong day: three customers holding A001
on one real morning, or a ticket in a queue nobody calls. So every tap asks
here first, and the answer is one of:

- the server's time, carried forward on the monotonic clock from the last
  heartbeat of this boot (the best we have: it needs no NTP at all);
- the wall clock, when the system says it is synchronised and it is not
  earlier than the kiosk's own last ticket or the server time it last saw;
- *unsure*: the kiosk still issues (the door cannot close because NTP is
  slow), but from its own series numbered across days, which cannot clash
  on any real day, and the server places the ticket by the monotonic clock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from sync.state import boot_id, get_config, iso, now_utc, set_config

SERVER_CLOCK_KEY = "server_clock"  # {server_time, mono_ns, boot_id}
POLICY_KEY = "clock_policy"  # {require_sync}: written by the kiosk from its config
TIMESYNCD_FLAG = "/run/systemd/timesync/synchronized"
SYNCED_ENV = "VUORO_CLOCK_SYNCED"  # "1"/"0": overrides the kernel's word (tests, odd systems)

#: A wall clock this close to the server's is the server's (NTP keeps both well within).
AGREE_S = 120
#: How far before the kiosk's last ticket the clock may be before it is called wrong
#: (a small step back from an NTP correction is normal).
BEHIND_S = 300

_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@dataclass(frozen=True)
class Reading:
    """Now, as the kiosk takes it; ``sure`` False means its day is unknown."""

    moment: datetime
    sure: bool
    source: str  # server | system | unsure
    reason: str = ""  # why unsure, or how the wall clock was corrected


class _Timex(ctypes.Structure):
    # struct timex begins with these; the rest (reserved ints) only needs room
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("rest", ctypes.c_byte * 256),
    ]


def system_synced() -> bool:
    """Whether an NTP client has set the clock since boot.

    systemd-timesyncd (Raspberry Pi OS's) touches a file in /run, which is
    empty at each boot; otherwise the kernel's word (chrony, ntpd), which a
    unit with ``ProtectClock=`` cannot ask. ``$VUORO_CLOCK_SYNCED`` (1 or 0)
    overrides both: a container cannot see its host's NTP state, and tests
    need both answers.
    """
    forced = os.environ.get(SYNCED_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if os.path.exists(TIMESYNCD_FLAG):
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = _Timex()  # modes 0: read only
        return libc.adjtimex(ctypes.byref(timex)) not in (-1, _TIME_ERROR)
    except (OSError, AttributeError):
        return False


def remember_server_time(db: sqlite_utils.Database, server_time: str, mono_ns: int) -> None:
    """The server's clock at ``mono_ns`` of this boot (call inside a transaction)."""
    set_config(
        db, SERVER_CLOCK_KEY, {"server_time": server_time, "mono_ns": mono_ns, "boot_id": boot_id()}
    )


def set_policy(db: sqlite_utils.Database, *, require_sync: bool) -> None:
    set_config(db, POLICY_KEY, {"require_sync": require_sync})


def server_now(db: sqlite_utils.Database, mono_ns: int | None = None) -> datetime | None:
    """The server's time now, if a heartbeat of this boot told it; else None."""
    ref = get_config(db, SERVER_CLOCK_KEY) or {}
    if ref.get("boot_id") != boot_id() or "mono_ns" not in ref:
        return None
    try:
        then = datetime.fromisoformat(ref["server_time"])
    except (TypeError, ValueError):
        return None
    mono_ns = time.monotonic_ns() if mono_ns is None else mono_ns
    return then + timedelta(microseconds=(mono_ns - ref["mono_ns"]) / 1000)


def read(
    db: sqlite_utils.Database, wall: datetime | None = None, mono_ns: int | None = None
) -> Reading:
    """Now, checked against everything the kiosk knows (see the module's doc)."""
    wall = wall or now_utc()
    server = server_now(db, mono_ns)
    if server is not None:
        off = (wall - server).total_seconds()
        if abs(off) <= AGREE_S:
            return Reading(wall, True, "system")
        return Reading(server, True, "server", f"wall clock {off:+.0f} s off the server's")
    last = _last_sure_issue(db)
    if last is not None and wall < last - timedelta(seconds=BEHIND_S):
        return Reading(wall, False, "unsure", f"clock is before the last ticket ({iso(last)})")
    seen = (get_config(db, SERVER_CLOCK_KEY) or {}).get("server_time")
    if seen and wall < datetime.fromisoformat(seen) - timedelta(seconds=BEHIND_S):
        return Reading(wall, False, "unsure", f"clock is before the server time it saw ({seen})")
    policy = get_config(db, POLICY_KEY) or {}
    if policy.get("require_sync", True) and not system_synced():
        return Reading(wall, False, "unsure", "clock not yet synchronised since boot")
    return Reading(wall, True, "system")


def _last_sure_issue(db: sqlite_utils.Database) -> datetime | None:
    row = db.execute(
        "SELECT issued_at FROM tickets WHERE time_source != 'unsure' "
        "ORDER BY kiosk_seq DESC LIMIT 1"
    ).fetchone()
    return None if row is None else datetime.fromisoformat(row[0])
