"""The admin PIN: checked against its argon2 hash, with a lock-out that grows
after wrong tries and survives a restart (kept in the state DB)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from sync.tickets import get_config, iso, now_utc, set_config

FREE_TRIES = 5  # wrong PINs before the lock-out starts
LOCK_BASE_S = 30
LOCK_CAP_S = 3600
MIN_DIGITS, MAX_DIGITS = 4, 12
_KEY = "admin_pin_failures"
_hasher = PasswordHasher()


def hash_pin(pin: str) -> str:
    """For ``vuoro-kiosk --hash-pin``: the line to paste into ``[admin] pin_hash``."""
    if not (pin.isdigit() and pin.isascii() and MIN_DIGITS <= len(pin) <= MAX_DIGITS):
        raise ValueError(f"a PIN is {MIN_DIGITS} to {MAX_DIGITS} digits 0-9")
    return _hasher.hash(pin)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    tries_left: int = 0
    locked_s: int = 0  # > 0: no tries until then


class PinLock:
    def __init__(self, db: sqlite_utils.Database, pin_hash: str) -> None:
        self.db = db
        self.pin_hash = pin_hash

    @property
    def enabled(self) -> bool:
        return bool(self.pin_hash)

    def locked_s(self) -> int:
        state = get_config(self.db, _KEY, {}) or {}
        until = state.get("locked_until")
        if not until:
            return 0
        left = (datetime.fromisoformat(until) - now_utc()).total_seconds()
        return max(0, int(left + 0.999))

    def verify(self, pin: str) -> bool:
        """Only the hash check (slow, touches no DB): safe off the UI thread."""
        if not (self.pin_hash and pin.isdigit() and pin.isascii() and len(pin) <= MAX_DIGITS):
            return False
        try:
            return _hasher.verify(self.pin_hash, pin)
        except (VerificationError, InvalidHashError):
            return False

    def record(self, ok: bool) -> Verdict:
        """Count a try; five wrong ones lock out for 30 s, doubling each time after."""
        if ok:
            set_config(self.db, _KEY, {})
            return Verdict(True)
        state = get_config(self.db, _KEY, {}) or {}
        failures = int(state.get("failures", 0)) + 1
        locked_until = None
        if failures >= FREE_TRIES:
            seconds = min(LOCK_CAP_S, LOCK_BASE_S * 2 ** (failures - FREE_TRIES))
            locked_until = iso(now_utc() + timedelta(seconds=seconds))
        set_config(self.db, _KEY, {"failures": failures, "locked_until": locked_until})
        return Verdict(False, tries_left=max(0, FREE_TRIES - failures), locked_s=self.locked_s())

    def check(self, pin: str) -> Verdict:
        """One try in one go. While locked, no PIN is even looked at."""
        locked = self.locked_s()
        if locked:
            return Verdict(False, locked_s=locked)
        return self.record(self.verify(pin))
