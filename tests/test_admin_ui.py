"""The hidden admin menu in the real kiosk app under Xvfb: the corner gesture,
the PIN pad and its lock-out, the menu, confirmed power commands (recorded by
a stand-in command), out of order, closing by itself, and the language the
staff read (the kiosk's own, whatever the last customer chose).

The app runs as ``tests.kiosk_probe`` (the real kiosk that also describes its
widget tree on request), so the tests find a button by its text in the app's
own widgets and tap where the app says it is: no OCR, and the same test reads
the menu in any language.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import catalogue
from kiosk.i18n import ntr, ptr, tr
from kiosk.pinlock import hash_pin
from sync import devices, state, tickets
from tests.conftest import TWO_SERVICES
from tests.kiosk_driver import SCREEN, Kiosk
from tests.screens import overflowing
from tests.server_process import run
from tests.test_kiosk_modes_ui import PI_SCREEN, ProbedKiosk, centre
from tests.test_machine import talking_from

pytestmark = pytest.mark.ui


def config_with_admin(
    write_config, tmp_path, idle_s: float = 60, language: str = "en", languages: str = ""
) -> tuple:
    reboots = tmp_path / "reboots.log"
    kiosk = f'language = "{language}"' + (f"\nlanguages = {languages}" if languages else "")
    text = (
        TWO_SERVICES.replace('language = "fi"', kiosk)
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


class StaffKiosk(ProbedKiosk):
    """The real kiosk, describing its widgets on request, at a screen size of choice."""

    def __init__(
        self,
        screen,
        state_dir: Path,
        config: Path,
        size: tuple[int, int] = SCREEN,
        locale: Path | None = None,
    ) -> None:
        self.probe_dir = state_dir.parent / f"probe-{time.monotonic_ns()}"
        self.probe_dir.mkdir(parents=True)
        env = {"VUORO_PROBE": str(self.probe_dir)}
        if locale is not None:
            env["VUORO_PROBE_LOCALE"] = str(locale)
        Kiosk.__init__(
            self,
            screen,
            state_dir,
            config,
            size=size,
            command=(sys.executable, "-m", "tests.kiosk_probe"),
            env=env,
        )

    def show(self, what: str) -> dict:
        """The state once ``what`` (a button or label text) is on screen."""
        return self.until(lambda s: has(s, what), repr(what))

    def tap(self, text: str) -> None:
        """A real tap on the button showing ``text``, once it is there and laid
        out (a new widget stands at 0,0 for a frame)."""
        self.until(lambda s: button(s, text) is not None, f"button {text!r}")
        found = button(self.settled(), text)
        assert found is not None, f"button {text!r} went away"
        self.screen.click(*centre(found))

    def gone(self, text: str) -> dict:
        return self.until(lambda s: not has(s, text), f"{text!r} gone")

    def order(self, wanted: dict) -> None:
        """A screen put on show by the probe (tests.screen_stages), once it is done."""
        order = self.probe_dir / "do.json"
        draft = self.probe_dir / "do.json.new"
        draft.write_text(json.dumps(wanted), encoding="utf-8")
        draft.replace(order)
        deadline = time.monotonic() + 20
        while order.exists():
            assert self.alive(), self.log
            assert time.monotonic() < deadline, f"the probe did not show {wanted}\n{self.log}"
            time.sleep(0.05)


def button(state: dict, text: str) -> dict | None:
    return next((b for b in state["buttons"] if b["text"] == text), None)


def unmarked(text: str) -> str:
    return re.sub(r"\[/?b\]", "", text)


def has(state: dict, text: str) -> bool:
    """Whether a button or label on screen shows ``text`` (the facts' bold aside)."""
    return any(text in unmarked(item["text"]) for item in state["buttons"] + state["labels"])


def facts_of(state: dict) -> str:
    """The menu's fact lines, without their markup."""
    found = [label["text"] for label in state["labels"] if "[b]" in label["text"]]
    assert found, state["labels"]
    return unmarked(found[0])


def type_pin(screen, pin: str) -> None:
    screen.key(*pin, "Return")


def open_menu(kiosk: StaffKiosk, times: int = 1) -> dict:
    kiosk.screen.key("ctrl+alt+a")
    kiosk.wait_for_log("admin PIN pad opened", timeout=30, times=times)
    type_pin(kiosk.screen, "1234")
    kiosk.wait_for_log("admin menu opened", timeout=30, times=times)
    return kiosk.until(lambda s: s["screen"] == "admin", "the admin menu")


@pytest.mark.screenshot
def test_the_corner_gesture_opens_the_pin_pad_and_a_short_tap_does_not(
    screen,
    write_config,
    tmp_path,
    shots,
):
    config, _ = config_with_admin(write_config, tmp_path)
    kiosk = StaffKiosk(screen, tmp_path / "state", config)
    try:
        screen.click(20, 20)  # a tap in the corner is just a tap
        time.sleep(2.0)  # longer than hold_s: the menu would have opened by now
        tapped = kiosk.ask()
        assert "admin PIN pad opened" not in kiosk.log
        screen.hold(20, 20, 2.0)
        kiosk.wait_for_log("admin PIN pad opened", timeout=30)
        kiosk.show("Staff only: enter the admin PIN")
        kiosk.settled()
        grab_at(screen, SCREEN).save(shots / "kiosk-pin.png")
        kiosk.tap("Cancel")
        home = kiosk.until(lambda s: s["screen"] == "home", "home after Cancel")
    finally:
        kiosk.stop()
    assert tapped["screen"] == "home"
    assert has(home, "Choose a service"), "Cancel goes back to the customers"
    assert kiosk.tickets() == [], "the gesture never issued a ticket"


def test_five_wrong_pins_lock_out_even_the_right_one(screen, write_config, tmp_path):
    config, _ = config_with_admin(write_config, tmp_path)
    kiosk = StaffKiosk(screen, tmp_path / "state", config)
    try:
        screen.key("ctrl+alt+a")
        kiosk.wait_for_log("admin PIN pad opened", timeout=30)
        for attempt in range(1, 5):
            type_pin(screen, "9999")
            kiosk.wait_for_log(f"wrong ({5 - attempt} tries left)", timeout=10)
        wrong = kiosk.show("Wrong PIN: 1 try left")  # the last free try, in the singular
        type_pin(screen, "0000")
        kiosk.wait_for_log("admin PIN: locked for 30 s", timeout=10)
        locked = kiosk.show("Locked: try again in")
        type_pin(screen, "1234")  # right, but locked out
        kiosk.wait_for_log("admin PIN: locked", timeout=10, times=2)
        still = kiosk.ask()
    finally:
        kiosk.stop()
    assert wrong["screen"] == locked["screen"] == still["screen"] == "pin"
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
    kiosk = StaffKiosk(screen, tmp_path / "state", config)
    try:
        menu = open_menu(kiosk)
        kiosk.settled()
        grab_at(screen, SCREEN).save(shots / "kiosk-admin.png")
        kiosk.tap("Reboot")
        kiosk.show("Reboot the kiosk now?")
        assert not reboots.exists(), "nothing runs before the confirmation"
        kiosk.tap("Cancel")  # changed my mind
        kiosk.gone("Reboot the kiosk now?")
        assert not reboots.exists()
        assert "ran sh -c" not in kiosk.log
        kiosk.tap("Reboot")
        kiosk.tap("Yes, reboot")
        kiosk.wait_for_log("ran sh -c echo reboot", timeout=10)
        kiosk.show("Rebooting…")
        kiosk.tap("Reboot")  # a second try meanwhile
        kiosk.tap("Yes, reboot")
        kiosk.wait_for_log("admin action: reboot", times=2)
        kiosk.gone("Reboot the kiosk now?")  # answered: the command ran or was refused
        deadline = time.monotonic() + 10
        while not reboots.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the stand-in command runs beside the app
    finally:
        kiosk.stop()
    facts = facts_of(menu)
    for label in ("Version", "Addresses", "Pairing", "Outbox", "Printer", "Numbers left"):
        assert label in facts, facts
    assert "Kiosk  open for customers" in facts
    assert kiosk.log.count("ran sh -c") == 1
    assert reboots.read_text() == "reboot\n", "exactly once"


def test_the_menu_closes_itself_and_out_of_order_stops_tickets(screen, write_config, tmp_path):
    config, _ = config_with_admin(write_config, tmp_path, idle_s=6)
    kiosk = StaffKiosk(screen, tmp_path / "state", config)
    try:
        open_menu(kiosk)
        kiosk.tap("Set out of order")
        kiosk.wait_for_log("admin action: toggle_open", timeout=30)
        marked = kiosk.show("Kiosk  OUT OF ORDER")
        kiosk.wait_for_log("admin menu idle", timeout=30)
        home = kiosk.until(lambda s: s["screen"] == "home", "home after the idle close")
        screen.key("1")  # a customer tries anyway
        time.sleep(1.0)  # what a ticket would take to be issued
        rows = kiosk.tickets()
        open_menu(kiosk, times=2)
        kiosk.tap("Open for customers")
        kiosk.show("Open again")
        kiosk.tap("Close")
        kiosk.until(lambda s: s["screen"] == "home", "home after Close")
        screen.key("1")
        reopened = kiosk.wait_for_tickets(1, ("printed",))
    finally:
        kiosk.stop()
    assert has(marked, "Open for customers"), "the button says the way back"
    assert has(home, "Out of order"), home["labels"]
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


def test_a_technician_pairs_the_kiosk_from_the_menu(screen, write_config, tmp_path):
    from tests.server_process import DEMO_BRANCH, Server, SyncProcess, wait_until

    server = Server(tmp_path / "server" / "server.db")
    server.load_branch(DEMO_BRANCH)
    config, _ = config_with_admin(write_config, tmp_path)
    state_dir = tmp_path / "state"
    kiosk = StaffKiosk(screen, state_dir, config)
    daemon = SyncProcess(state_dir, "--wait-for-pairing", "--server", server.url)
    try:
        code = server.pair_code()
        open_menu(kiosk)
        kiosk.tap("Pair with a code")
        kiosk.show("Pairing code: …")
        for typed, letter in enumerate(code, 1):
            kiosk.tap(letter)
            kiosk.show(f"Pairing code: {code[:typed]}")
        kiosk.tap("Pair")
        kiosk.show(f"Pairing with {code}: the sync daemon is on it")
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
    assert "admin action: pair" in kiosk.log


def grab_at(screen, size: tuple[int, int]):
    return screen.screenshot().crop((0, 0, *size)).convert("RGB")


def finnish_words() -> dict[str, str]:
    return {
        "pad": tr("Staff only: enter the admin PIN", "fi"),
        "cancel": tr("Cancel", "fi"),
        "title": tr("Admin menu", "fi"),
        "test_print": tr("Test print", "fi"),
        "close": ptr("admin", "Close", "fi"),
        "printer": tr("Printer", "fi"),
        "open": tr("open for customers", "fi"),
    }


def test_the_menu_speaks_the_kiosks_language_whatever_the_customer_chose(
    screen, write_config, tmp_path
):
    """A Finnish kiosk's menu is Finnish after a customer switched to Swedish, on
    the Pi's 800x480, every text in its box."""
    fi = finnish_words()
    assert fi["test_print"] != "Test print"  # the catalogue has the words
    config, _ = config_with_admin(
        write_config, tmp_path, language="fi", languages='["fi", "sv", "en"]'
    )
    kiosk = StaffKiosk(screen, tmp_path / "state", config, size=PI_SCREEN)
    try:
        kiosk.tap("Svenska")
        kiosk.until(lambda s: s["language"] == "sv", "Swedish for the customer")
        screen.key("ctrl+alt+a")
        pad = kiosk.show(fi["pad"])
        wrong = ntr("Wrong PIN: {count} try left", "Wrong PIN: {count} tries left", 4, "fi")
        type_pin(screen, "9999")
        pad_wrong = kiosk.show(wrong)
        type_pin(screen, "1234")
        kiosk.wait_for_log("admin menu opened", timeout=30)
        kiosk.show(fi["test_print"])
        menu = kiosk.settled()
    finally:
        kiosk.stop()
    assert pad["language"] == menu["language"] == "sv", "the customer's choice is left alone"
    assert has(pad, fi["cancel"]) and has(pad_wrong, fi["pad"])
    assert {fi["title"], fi["close"]} <= {t["text"] for t in menu["labels"] + menu["buttons"]}
    facts = facts_of(menu)
    assert f"{fi['printer']}  " in facts and fi["open"] in facts, facts
    assert "Printer" not in facts and "Test print" not in json.dumps(menu["buttons"])
    assert misfits(menu) == [] and misfits(pad_wrong) == []


@pytest.fixture
def thin_finnish(tmp_path) -> Path:
    """A copy of the catalogue whose Finnish lacks the test print button's word
    and has the sync button's blank."""
    copy = tmp_path / "locale"
    shutil.copytree(catalogue.LOCALE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    finnish = copy / "fi" / "LC_MESSAGES" / "vuoro.po"
    text = finnish.read_text(encoding="utf-8")
    text, left_out = re.subn(r'msgid "Test print"\nmsgstr "[^"]*"\n', "", text)
    text, blanked = re.subn(r'(msgid "Sync now"\nmsgstr )"[^"]*"', r'\1""', text)
    assert left_out == blanked == 1
    finnish.write_text(text, encoding="utf-8")
    return copy


def test_a_word_missing_in_the_kiosks_language_falls_back_never_blank_or_a_key(
    screen, write_config, tmp_path, thin_finnish
):
    """The staff's language is the kiosk's default, so its fallback is the end of
    the chain: the English source text, never a blank button or a message key."""
    fi = finnish_words()
    config, _ = config_with_admin(write_config, tmp_path, language="fi")
    kiosk = StaffKiosk(screen, tmp_path / "state", config, locale=thin_finnish)
    try:
        menu = open_menu(kiosk)
        menu = kiosk.show("Test print")
    finally:
        kiosk.stop()
    texts = {b["text"] for b in menu["buttons"]}
    assert {"Test print", "Sync now"} <= texts, "missing and blank: the English"
    assert {fi["close"], tr("Reboot", "fi")} <= texts, "the rest still Finnish"
    assert all(b["text"].strip() for b in menu["buttons"]), "no blank button"


def misfits(state: dict) -> list[str]:
    """The texts on screen that do not fit their box (tests.screens' measure)."""
    assert len(state["texts"]) > 3, "the probe lists the texts on screen"
    return overflowing(state)


def longest_pin_message(language: str) -> str:
    wrong = ntr("Wrong PIN: {count} try left", "Wrong PIN: {count} tries left", 4, language)
    return max((wrong, tr("Locked: try again in {seconds} s", language, seconds=1920)), key=len)


def longest_message(language: str) -> str:
    """The longest of the menu's messages that a technician may read."""
    return max(
        (
            tr("Pairing with {code}: the sync daemon is on it", language, code="ABCDEFGH"),
            tr(
                "Could not power off: {problem}",
                language,
                problem="[Errno 2] No such file or directory: 'systemctl'",
            ),
            tr(
                "Test page printed; printer {state}",
                language,
                state=ptr("device state", "paper near end", language),
            ),
        ),
        key=len,
    )


@pytest.mark.parametrize("size", [PI_SCREEN, SCREEN], ids=["800x480", "1024x600"])
def test_the_staff_screens_fit_in_every_language(screen, write_config, tmp_path, size):
    """The PIN pad, the menu and its longest question and the pairing pad: every
    text within its box, in each built-in language (Finnish words are long)."""
    config, _ = config_with_admin(write_config, tmp_path)
    kiosk = StaffKiosk(screen, tmp_path / "state", config, size=size)
    found: dict[str, list[str]] = {}
    shots = tmp_path / "shots"  # to look at when a text does not fit
    shots.mkdir()
    try:
        db = state.connect(tmp_path / "state" / "state.db")
        devices.record(db, "printer", "paper_near_end", "the roll's last metres")
        devices.record(db, "server", "not_authorized", "401 from the server")
        devices.record(db, "pairing", "failed", "the code has expired")
        db.close()
        for language in catalogue.LANGUAGES:
            order = {"screen": "pin", "language": language, "staff_language": language}
            kiosk.order(order | {"staff_message": longest_pin_message(language)})
            kiosk.show(tr("Staff only: enter the admin PIN", language))
            found[f"{language} pin"] = misfits(kiosk.settled())
            grab_at(screen, size).save(shots / f"kiosk-pin-{language}.png")
            kiosk.order(order | {"screen": "admin", "staff_message": longest_message(language)})
            kiosk.show(tr("Power off", language))
            found[f"{language} admin"] = misfits(kiosk.settled())
            grab_at(screen, size).save(shots / f"kiosk-admin-{language}.png")
            kiosk.tap(tr("Power off", language))
            question = tr("Power the kiosk off? Someone must switch it on again.", language)
            kiosk.show(question)
            found[f"{language} confirm"] = misfits(kiosk.settled())
            grab_at(screen, size).save(shots / f"kiosk-confirm-{language}.png")
            kiosk.tap(tr("Cancel", language))
            kiosk.gone(question)
            kiosk.tap(tr("Pair with a code", language))
            kiosk.show(tr("Pairing code: {code}", language, code="…"))
            found[f"{language} pair"] = misfits(kiosk.settled())
            grab_at(screen, size).save(shots / f"kiosk-pair-{language}.png")
            kiosk.tap(tr("Cancel", language))
            kiosk.gone(tr("Pairing code: {code}", language, code="…"))
    finally:
        kiosk.stop()
    assert found == {where: [] for where in found}


FACTS_SCRIPT = """
import json, sys
from zoneinfo import ZoneInfo
from kiosk.admin import facts
from sync import state
print(json.dumps(dict(facts(state.connect(sys.argv[1]), ZoneInfo(sys.argv[2]), sys.argv[3]))))
"""


def menu_facts(
    db_path, zone: str, tmp_path, language: str = "en", **extra_env: str
) -> dict[str, str]:
    """The menu's lines as the kiosk builds them (Kivy in a process of its own)."""
    env = os.environ | {"KIVY_NO_ARGS": "1", "KIVY_HOME": str(tmp_path / "kivy")} | extra_env
    done = subprocess.run(
        [sys.executable, "-c", FACTS_SCRIPT, str(db_path), zone, language],
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
    finnish = menu_facts(db_path, "Europe/Helsinki", tmp_path, "fi")
    assert finnish["Viimeisin synkronointi"] == "2026-07-01 12:30:05 EEST"
    assert finnish["Palvelin"] == "kunnossa 2026-01-16 00:10:00 EET alkaen"
    assert finnish["Laite"] == "avoinna asiakkaille"


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
    swedish = menu_facts(db_path, "Europe/Helsinki", tmp_path, "sv", VUORO_CLOCK_SYNCED="0")
    assert swedish["Klocka"] == (
        "OSÄKER (klockan har inte synkroniserats sedan start): "
        "egen nummerserie, inget datum på papperet"
    )
    assert swedish["Problem"].endswith("A007 printed, but the state DB has it void")
