"""Shared by tests/ and bench/: what every test process and its children see."""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    # This machine's kernel may say its clock is unsynchronised (a container
    # cannot see its host's NTP state), which would send every ticket to the
    # kiosk's own series. Tests of the unsynchronised clock set "0" themselves.
    os.environ.setdefault("VUORO_CLOCK_SYNCED", "1")


#: The longest test modules, started first: `make test` runs modules in parallel
#: workers (one module per worker at a time), and a long module picked up last
#: would keep the run going after the other workers are done.
SLOW_MODULES = (
    "tests/test_display_voice.py",
    "tests/test_install.py",
    "tests/test_display_page.py",
    "tests/test_display.py",
    "tests/test_display_appliance.py",
    "tests/test_live.py",
    "tests/test_counter_race.py",
    "tests/test_chaos_postgresql.py",
    "bench/bench_fleet.py",
    "tests/test_hostile_values.py",
    "tests/test_field_faults.py",
    "tests/test_console.py",
    "tests/test_ticket_page.py",
    "tests/test_manage.py",
    "tests/test_admin_ui.py",
    "tests/test_staff_security.py",
    "tests/test_kiosk_ui.py",
    "tests/test_sync.py",
    "tests/test_chaos.py",
    "tests/test_kiosk_promises.py",
    "tests/test_openapi_fuzz.py",
)


def pytest_collection_modifyitems(items) -> None:
    first = {module: rank for rank, module in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: first.get(item.nodeid.split("::")[0], len(first)))
