"""Shared by tests/ and bench/: what every test process and its children see."""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    # This machine's kernel may say its clock is unsynchronised (a container
    # cannot see its host's NTP state), which would send every ticket to the
    # kiosk's own series. Tests of the unsynchronised clock set "0" themselves.
    os.environ.setdefault("VUORO_CLOCK_SYNCED", "1")
