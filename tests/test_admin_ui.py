"""The hidden admin menu in the real kiosk app under Xvfb: the corner gesture,
the PIN pad and its lock-out, the menu, confirmed power commands (recorded by
a stand-in command), out of order, and closing by itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest

from kiosk.pinlock import hash_pin
from sync import devices, state, tickets
from tests.conftest import TWO_SERVICES
from tests.kiosk_driver import Kiosk, find_on_screen, find_text, ocr_text
from tests.server_process import run
from tests.test_machine import talking_from

pytestmark = pytest.mark.ui


def config_with_admin(write_config, tmp_path, idle_s: float = 60) -> tuple:
    reboots = tmp_path / "reboots.log"
    text = (
        TWO_SERVICES.replace('language = "fi"', 'language = "en"')
        + f"""
[admin]
pin_hash = "{hash_pin("1234")}"
reboot_command = ["sh", "-c", "echo reboot >> {reboots}"]
poweroff_command = ["sh", "-c", "echo poweroff >> {reboots}"]
idle_s = {idle_s}
hold_s = 1.5
"""
    )
    return write_config(text), reboots


def type_pin(screen, pin: str) -> None:
    screen.key(*pin, "Return")


@pytest.mark.screenshot
def test_the_corner_gesture_opens_the_pin_pad_and_a_short_tap_does_not(
    screen,
    write_config,
    tmp_path,
    shots,
):
    config, _ = config_with_admin(write_config, tmp_path)
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        screen.click(20, 20)  # a tap in the corner is just a tap
        time.sleep(2.0)
        assert "admin PIN pad opened" not in kiosk.log
        screen.hold(20, 20, 2.0)
        kiosk.wait_for_log("admin PIN pad opened", timeout=30)
        time.sleep(0.3)
        pad = screen.screenshot()
        pad.save(shots / "kiosk-pin.png")
        screen.click(*find_text(pad, "Cancel"))
        time.sleep(0.5)
        home = ocr_text(screen.screenshot())
    finally:
        kiosk.stop()
    assert "enter the admin PIN" in ocr_text(pad)
    assert "Choose a service" in home, "Cancel goes back to the customers"
    assert kiosk.tickets() == [], "the gesture never issued a ticket"


def test_five_wrong_pins_lock_out_even_the_right_one(screen, write_config, tmp_path):
    config, _ = config_with_admin(write_config, tmp_path)
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        screen.key("ctrl+alt+a")
        kiosk.wait_for_log("admin PIN pad opened", timeout=30)
        for attempt in range(1, 5):
            type_pin(screen, "9999")
            kiosk.wait_for_log(f"wrong ({5 - attempt} tries left)", timeout=10)
        type_pin(screen, "0000")
        kiosk.wait_for_log("admin PIN: locked for 30 s", timeout=10)
        time.sleep(0.3)
        locked = ocr_text(screen.screenshot())
        type_pin(screen, "1234")  # right, but locked out
        time.sleep(2.0)
    finally:
        kiosk.stop()
    assert "Locked: try again in" in locked, locked
    assert "admin menu opened" not in kiosk.log
    assert kiosk.log.count("admin PIN: locked") == 2, "the right PIN was not even checked"


@pytest.mark.screenshot
def test_the_right_pin_opens_the_menu_and_reboot_runs_once_after_confirming(
    screen,
    write_config,
    tmp_path,
    shots,
):
    config, reboots = config_with_admin(write_config, tmp_path)
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        screen.key("ctrl+alt+a")
        kiosk.wait_for_log("admin PIN pad opened", timeout=30)
        type_pin(screen, "1234")
        kiosk.wait_for_log("admin menu opened", timeout=30)
        menu, reboot = find_on_screen(screen, "Reboot")
        menu.save(shots / "kiosk-admin.png")
        screen.click(*reboot)
        asked, cancel = find_on_screen(screen, "Cancel")
        assert not reboots.exists(), "nothing runs before the confirmation"
        screen.click(*cancel)  # changed my mind
        time.sleep(0.6)
        assert not reboots.exists()
        screen.click(*find_on_screen(screen, "Reboot")[1])
        screen.click(*find_on_screen(screen, "Yes,")[1])
        time.sleep(1.0)
        screen.click(*find_on_screen(screen, "Reboot")[1])  # a second try meanwhile
        screen.click(*find_on_screen(screen, "Yes,")[1])
        time.sleep(1.0)
    finally:
        kiosk.stop()
    facts = ocr_text(menu)
    for label in ("Version", "Addresses", "Pairing", "Outbox", "Printer", "Numbers left"):
        assert label in facts, facts
    assert "Reboot the kiosk now?" in ocr_text(asked)
    assert reboots.read_text() == "reboot\n", "exactly once"


def test_the_menu_closes_itself_and_out_of_order_stops_tickets(screen, write_config, tmp_path):
    # time enough to find the button by OCR before the idle warning (a third
    # of the limit before it) covers the top of the menu
    config, _ = config_with_admin(write_config, tmp_path, idle_s=15)
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        screen.key("ctrl+alt+a")
        type_pin(screen, "1234")
        kiosk.wait_for_log("admin menu opened", timeout=30)
        screen.click(*find_on_screen(screen, "order")[1])  # "Set out of order"
        kiosk.wait_for_log("admin action: toggle_open", timeout=30)
        kiosk.wait_for_log("admin menu idle", timeout=30)
        time.sleep(0.5)
        home = ocr_text(screen.screenshot())
        screen.key("1")  # a customer tries anyway
        time.sleep(1.0)
        rows = kiosk.tickets()
        screen.key("ctrl+alt+a")
        type_pin(screen, "1234")
        kiosk.wait_for_log("admin menu opened", timeout=30, times=2)
        screen.click(*find_on_screen(screen, "customers")[1])  # "Open for customers"
        time.sleep(0.3)
        screen.click(*find_on_screen(screen, "Close")[1])
        time.sleep(0.5)
        screen.key("1")
        reopened = kiosk.wait_for_tickets(1, ("printed",))
    finally:
        kiosk.stop()
    assert "Out of order" in home, home
    assert rows == [], "no ticket while out of order"
    assert [r["display"] for r in reopened] == ["A001"]


def test_an_operator_reboots_a_kiosk_through_the_server_once(
    screen, write_config, tmp_path, branch
):
    server, kiosk_dir = branch
    config, reboots = config_with_admin(write_config, tmp_path)
    kiosk = Kiosk(screen, kiosk_dir, config)
    try:
        kiosk_id = server.cli("kiosks", "--branch", "demo").splitlines()[1].split()[0]
        assert server.cli("kiosk-command", kiosk_id, "reboot") == f"reboot queued for {kiosk_id}"
        run("vuoro-sync", "--state-dir", str(kiosk_dir), "run", "--once")  # its heartbeat
        kiosk.wait_for_log("server command: reboot", timeout=15)
        time.sleep(1.0)
        run("vuoro-sync", "--state-dir", str(kiosk_dir), "run", "--once")
        time.sleep(6.0)  # a home refresh later: nothing new
    finally:
        kiosk.stop()
    assert reboots.read_text() == "reboot\n", "once, and not again after"


def pair_letter_center(letter: str) -> tuple[int, int]:
    """Where a letter is on the pairing pad (admin.kv: PairView, 8 columns)."""
    from kiosk.admin import PAIR_ALPHABET

    index = PAIR_ALPHABET.index(letter)
    width, height = 1024 * 0.92, 600 * 0.9
    left, top = (1024 - width) / 2 + 14, (600 - height) / 2 + 14
    inner = height - 28 - 16
    grid_top = top + inner * 0.15 / 1.33 + 8
    cell_w, cell_h = (width - 28 - 7 * 6) / 8, (inner / 1.33 - 3 * 6) / 4
    row, col = divmod(index, 8)
    return round(left + col * (cell_w + 6) + cell_w / 2), round(
        grid_top + row * (cell_h + 6) + cell_h / 2
    )


def test_a_technician_pairs_the_kiosk_from_the_menu(screen, write_config, tmp_path):
    from sync import devices, state
    from tests.server_process import DEMO_BRANCH, Server, SyncProcess, wait_until

    server = Server(tmp_path / "server" / "server.db")
    server.load_branch(DEMO_BRANCH)
    config, _ = config_with_admin(write_config, tmp_path)
    state_dir = tmp_path / "state"
    kiosk = Kiosk(screen, state_dir, config)
    daemon = SyncProcess(state_dir, "--wait-for-pairing", "--server", server.url)
    try:
        code = server.pair_code()
        screen.key("ctrl+alt+a")
        type_pin(screen, "1234")
        kiosk.wait_for_log("admin menu opened", timeout=30)
        time.sleep(0.5)
        screen.click(*find_text(screen.screenshot(), "Pair"))
        time.sleep(0.5)
        for letter in code:
            screen.click(*pair_letter_center(letter))
        time.sleep(0.3)
        pad = screen.screenshot()
        screen.click(*find_text(pad, "Pair", last=True))
        db = state.connect(state_dir / "state.db")
        wait_until(
            lambda: (
                (devices.get(db, "pairing") or object)
                and devices.get(db, "pairing").state == "paired"
            ),
            what="paired from the menu",
        )
        db.close()
    finally:
        daemon.stop()
        kiosk.stop()
        server.stop()
    assert (state_dir / "credentials.json").exists()
    assert "Pairing with" in kiosk.log or "admin action: pair" in kiosk.log


FACTS_SCRIPT = """
import json, sys
from zoneinfo import ZoneInfo
from kiosk.admin import facts
from sync import state
print(json.dumps(dict(facts(state.connect(sys.argv[1]), ZoneInfo(sys.argv[2])))))
"""


def menu_facts(db_path, zone: str, tmp_path, **extra_env: str) -> dict[str, str]:
    """The menu's lines as the kiosk builds them (Kivy in a process of its own)."""
    env = os.environ | {"KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp_path / "kivy")} | extra_env
    done = subprocess.run(
        [sys.executable, "-c", FACTS_SCRIPT, str(db_path), zone],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_menu_gives_times_on_the_branch_clock_and_the_machine_addresses(tmp_path):
    db_path = tmp_path / "state.db"
    db = state.connect(db_path)
    tickets.set_config(db, "last_sync_ok", "2026-07-01T09:30:05.120+00:00")  # summer: +3
    devices.record(db, "server", "ok")
    db.execute("UPDATE device_status SET updated_at = '2026-01-15T22:10:00.000+00:00'")  # +2
    db.conn.commit()
    db.close()
    helsinki = menu_facts(db_path, "Europe/Helsinki", tmp_path)
    assert helsinki["Last sync"] == "2026-07-01 12:30:05 EEST"
    assert helsinki["Server"] == "ok since 2026-01-16 00:10:00 EET"
    assert menu_facts(db_path, "Europe/Stockholm", tmp_path)["Last sync"] == (
        "2026-07-01 11:30:05 CEST"
    )
    addresses = helsinki["Addresses"]
    assert addresses != "no network" and talking_from() in addresses.replace(",", " ").split()


def test_the_menu_says_when_the_clock_is_unsure_and_what_staff_should_know(tmp_path):
    db_path = tmp_path / "state.db"
    db = state.connect(db_path)
    devices.record(db, "tickets", "conflict", "A007 printed, but the state DB has it void")
    db.close()
    facts = menu_facts(db_path, "Europe/Helsinki", tmp_path, VUORO_CLOCK_SYNCED="0")
    assert facts["Clock"] == (
        "UNSURE (clock not yet synchronised since boot): own series, no date on paper"
    )
    assert facts["Problem"].startswith("tickets conflict ")
    assert facts["Problem"].endswith("A007 printed, but the state DB has it void")
    synced = menu_facts(db_path, "Europe/Helsinki", tmp_path, VUORO_CLOCK_SYNCED="1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d EE(S)?T \(synchronised\)", synced["Clock"])
