"""The real kiosk app on a virtual screen: real clicks, real keys, real paper.

Each test starts ``vuoro-kiosk`` as its own process (one Kivy app per
process), drives it with xdotool, and checks the state DB, the emulator's
rendered PNGs (OCR and QR decoding of the pixels) and screenshots.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image

from printer.render import read_transcript
from tests.conftest import TWO_SERVICES
from tests.kiosk_driver import (
    Kiosk,
    button_center,
    language_button_center,
    ocr_text,
    ocr_ticket_numbers,
)

pytestmark = pytest.mark.ui


def decode_qr(image: Image.Image) -> list[str]:
    return [code.text for code in zxingcpp.read_barcodes(image)]


def png_of(kiosk: Kiosk, display: str) -> Path:
    matches = [p for p in kiosk.printed_pngs() if p.stem.endswith(f"-{display}")]
    assert len(matches) == 1, f"one printed PNG for {display}: {kiosk.printed_pngs()}"
    return matches[0]


def test_tap_and_digit_key_print_the_committed_ticket(screen, write_config, tmp_path):
    kiosk = Kiosk(screen, tmp_path / "state", write_config())
    try:
        screen.click(*button_center(0, 2))
        first = kiosk.wait_for_tickets(1, ("printed",))[0]
        kiosk.until(lambda s: s["ticket_number"] == first["display"], "the number on screen")
        on_screen = kiosk.picture(settle=False)
        screen.key("Return")  # ignored: within the double-tap grace period
        kiosk.press_done()  # "Done" once the grace is over: back home
        screen.key("2")
        rows = kiosk.wait_for_tickets(2, ("printed",))
    finally:
        kiosk.stop()

    assert [(r["display"], r["service_id"]) for r in rows] == [
        ("A001", "payments"),
        ("B001", "permits"),
    ]
    for row in rows:
        url = f"https://jono.example.fi/t/{row['public_token']}"
        png = png_of(kiosk, row["display"])
        paper = Image.open(png)
        assert decode_qr(paper) == [url], "the paper's QR code opens this ticket"
        assert row["display"] in ocr_ticket_numbers(png), "the number is legible on paper"
        transcript = read_transcript(png)
        assert row["display"] in transcript.splitlines()
        assert "Kaupungin palvelupiste Äänekoski" in transcript
    assert "Ota henkilöllisyystodistus esiin" in read_transcript(png_of(kiosk, "B001"))
    assert decode_qr(on_screen) == [f"https://jono.example.fi/t/{first['public_token']}"], (
        "the screen shows the same QR code as the paper"
    )


def test_sigkill_between_commit_and_print_voids_the_ticket(
    screen, write_config, hung_printer_config, tmp_path
):
    state = tmp_path / "state"
    kiosk = Kiosk(screen, state, hung_printer_config)
    try:
        screen.click(*button_center(0, 2))
        committed = kiosk.wait_for_tickets(1, ("committed",))[0]
        kiosk.wait_for_log("committed A001")
        assert kiosk.tickets()[0]["state"] == "committed", "still printing"
    finally:
        kiosk.kill()
    assert committed["display"] == "A001"

    kiosk = Kiosk(screen, state, write_config())
    try:
        assert "voided 1 ticket(s) committed but never printed: A001" in kiosk.log
        screen.click(*button_center(0, 2))
        rows = kiosk.wait_for_tickets(2, ("printed", "void"))
    finally:
        kiosk.stop()
    assert [(r["display"], r["state"]) for r in rows] == [("A001", "void"), ("A002", "printed")]
    assert [p.stem.rsplit("-", 1)[1] for p in kiosk.printed_pngs()] == ["A002"]


def test_double_tap_and_tap_spam_give_one_ticket(screen, write_config, tmp_path):
    kiosk = Kiosk(screen, tmp_path / "state", write_config())
    try:
        x, y = button_center(1, 2)
        screen.xdotool("mousemove", str(x), str(y), "click", "--repeat", "2", "--delay", "60", "1")
        screen.xdotool("click", "--repeat", "8", "--delay", "40", "1")
        kiosk.wait_for_tickets(1, ("printed",))
        after = kiosk.caught_up()  # every tap handled: a second ticket would be under way
        rows = kiosk.tickets()
    finally:
        kiosk.stop()
    assert [r["display"] for r in rows] == ["B001"]
    assert after["screen"] == "home" or after["ticket_number"] == "B001", "no second ticket"


def test_keyboard_only_in_kiosk_mode_and_escape_never_quits(screen, write_config, tmp_path):
    kiosk = Kiosk(screen, tmp_path / "state", write_config(), extra_args=("--kiosk",))
    try:
        screen.key("Escape", "Escape")
        screen.key("Tab", "Tab", "Return")  # focus the second button, press it
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.press_done(keys=("Escape", "Return"))  # Escape does nothing; Enter is "Done"
        screen.key("Up", "Return")  # focus moves back to the first button
        rows = kiosk.wait_for_tickets(2, ("printed",))
        screen.key("Escape")
        kiosk.caught_up()  # the app answers after the key: it did not quit
        assert kiosk.alive(), "Escape must not quit the kiosk"
    finally:
        kiosk.stop()
    assert [r["display"] for r in rows] == ["B001", "A001"]


def test_long_and_emoji_names_render_safely(screen, write_config, tmp_path):
    long_name = "Asumisen, rakentamisen ja ympäristön palvelut " * 7  # ~315 characters
    config = write_config(
        TWO_SERVICES.replace(
            '{ fi = "Maksut", sv = "Betalningar", en = "Payments" }', f'"{long_name.strip()}"'
        ).replace('{ fi = "Luvat ja lisenssit", en = "Permits" }', '"Lupa 🚗 ja 🛂 passi"')
    )
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        home = kiosk.picture()
        screen.click(*button_center(0, 2))
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.press_done()
        screen.key("2")
        kiosk.wait_for_tickets(2, ("printed",))
        assert kiosk.alive()
    finally:
        kiosk.stop()
    words = ocr_text(home)
    assert "Asumisen, rakentamisen" in words and "Lupa" in words and "passi" in words, words
    long_paper = read_transcript(png_of(kiosk, "A001")).splitlines()
    assert any(line.startswith("Asumisen, rakentamisen") for line in long_paper)
    assert any(line.endswith("...") for line in long_paper), "cut after a few lines"
    assert max(len(line) for line in long_paper) <= 48, "wrapped to the paper's 48 columns"
    assert "Lupa ja passi" in read_transcript(png_of(kiosk, "B001"))


def test_a_failed_print_still_gives_the_customer_the_ticket_on_screen(
    screen, write_config, tmp_path
):
    offline = write_config(
        TWO_SERVICES.replace(
            'backend = "emulator"',
            'backend = "network"\nhost = "127.0.0.1"\nport = 9\ntimeout_s = 1',
        ),
        name="offline.toml",
    )
    kiosk = Kiosk(screen, tmp_path / "state", offline)
    try:
        screen.key("1")
        (row,) = kiosk.wait_for_tickets(1, ("print_failed",))
        on_screen = failed_ticket_picture(kiosk)
    finally:
        kiosk.stop()
    assert row["display"] == "A001" and "127.0.0.1:9" in row["print_error"]
    assert decode_qr(on_screen) == [f"https://jono.example.fi/t/{row['public_token']}"]
    assert "print of A001 failed" in kiosk.log


def failed_ticket_picture(kiosk: Kiosk) -> Image.Image:
    """The ticket screen once it says the print failed (the number and QR stay)."""
    kiosk.until(lambda s: s["ticket_problem"], "the failed print on screen")
    return kiosk.picture(settle=False)


def test_a_customer_can_switch_language_for_their_ticket_only(screen, write_config, tmp_path):
    config = write_config(
        TWO_SERVICES.replace('language = "fi"', 'language = "fi"\nlanguages = ["fi", "sv", "en"]')
    )
    kiosk = Kiosk(screen, tmp_path / "state", config)
    try:
        screen.click(*language_button_center(1, 3))  # Svenska
        kiosk.until(lambda s: s["language"] == "sv", "Swedish")
        swedish_home = kiosk.picture()
        screen.click(*button_center(0, 2))
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.press_done()  # home again: back to Finnish for the next customer
        screen.key("1")
        rows = kiosk.wait_for_tickets(2, ("printed",))
    finally:
        kiosk.stop()
    assert [(r["display"], r["language"]) for r in rows] == [("A001", "sv"), ("A002", "fi")]
    swedish = read_transcript(png_of(kiosk, "A001"))
    assert "Betalningar" in swedish and "Följ din tur i telefonen" in swedish
    finnish = read_transcript(png_of(kiosk, "A002"))
    assert "Maksut" in finnish and "Seuraa vuoroasi puhelimella" in finnish
    seen = ocr_text(swedish_home)
    assert "Betalningar" in seen and "ett k" in seen, seen  # "Välj tjänst och ta ett könummer"


def amber_pixels(image: Image.Image, center: tuple[int, int]) -> int:
    """How much of the focus ring's amber (theme.FOCUS) is drawn around ``center``."""
    x, y = center
    box = image.convert("RGB").crop((x - 72, y - 36, x + 72, y + 36))
    pixels = [box.getpixel((i, j)) for i in range(box.width) for j in range(box.height)]
    return sum(1 for r, g, b in pixels if r > 230 and 150 < g < 200 and b < 60)


def test_tab_reaches_the_language_buttons_and_enter_switches_language(
    screen, write_config, tmp_path
):
    config = write_config(
        TWO_SERVICES.replace('language = "fi"', 'language = "fi"\nlanguages = ["fi", "sv", "en"]')
    )
    kiosk = Kiosk(screen, tmp_path / "state", config)
    svenska = language_button_center(1, 3)
    try:
        before = kiosk.picture()
        screen.key("Tab", "Tab", "Tab", "Tab")  # past both services and Suomi, to Svenska
        kiosk.caught_up()
        focused = until_shot(screen, lambda i: amber_pixels(i, svenska) > 200, "the ring")
        screen.key("Return")
        kiosk.until(lambda s: s["language"] == "sv", "Swedish")
        swedish = kiosk.picture()
        screen.key("shift+Tab", "shift+Tab", "Return")  # back past Suomi to B: a ticket
        (row,) = kiosk.wait_for_tickets(1, ("printed",))
    finally:
        kiosk.stop()
    focused.save(tmp_path / "language-focused.png")
    assert amber_pixels(before, svenska) == 0
    assert amber_pixels(focused, svenska) > 200, "the focused language button shows its ring"
    assert "Valitse palvelu" in ocr_text(before)
    seen = ocr_text(swedish)
    assert "ett k" in seen and "Betalningar" in seen, seen  # "Välj tjänst och ta ett könummer"
    assert (row["display"], row["language"]) == ("B001", "sv")


def printer_on(emulator_address: str) -> str:
    host, port = emulator_address.rsplit(":", 1)
    return TWO_SERVICES.replace(
        'backend = "emulator"',
        f'backend = "network"\nhost = "{host}"\nport = {port}\ntimeout_s = 2',
    ).replace('language = "fi"', 'language = "en"')


def printer_state(kiosk: Kiosk) -> str:
    import sqlite3

    with sqlite3.connect(kiosk.state_dir / "state.db") as db:
        row = db.execute("SELECT state FROM device_status WHERE component = 'printer'").fetchone()
    return row[0] if row else ""


def until_shot(screen, condition, what: str, timeout: float = 20) -> Image.Image:
    """A screenshot once it meets ``condition`` (a frame is drawn after the state
    changes), else the last one: the test's assertion then says what is wrong."""
    deadline = time.monotonic() + timeout
    while True:
        image = screen.screenshot()
        if condition(image) or time.monotonic() > deadline:
            return image
        time.sleep(0.05)


def wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_paper_out_is_said_before_the_tap_and_the_ticket_is_still_given(
    screen, write_config, emulator, tmp_path
):
    printer = emulator("--paper-out")
    kiosk = Kiosk(screen, tmp_path / "state", write_config(printer_on(printer.address)))
    try:
        wait_for(lambda: printer_state(kiosk) == "paper_out")
        kiosk.until(lambda s: any("out of paper" in t["text"] for t in s["texts"]), "the notice")
        home = ocr_text(kiosk.picture())
        screen.key("2")
        (row,) = kiosk.wait_for_tickets(1, ("print_failed",))
        on_screen = failed_ticket_picture(kiosk)
    finally:
        kiosk.stop()
    assert "out of paper" in home, home
    assert (row["display"], row["print_error"]) == ("B001", f"{printer.address}: paper out")
    assert decode_qr(on_screen) == [f"https://jono.example.fi/t/{row['public_token']}"]
    assert printer.printed() == []


def test_paper_near_end_keeps_printing_and_is_recorded(screen, write_config, emulator, tmp_path):
    printer = emulator("--paper-near-end")
    kiosk = Kiosk(screen, tmp_path / "state", write_config(printer_on(printer.address)))
    try:
        screen.key("1")
        kiosk.wait_for_tickets(1, ("printed",))
        wait_for(lambda: printer_state(kiosk) == "paper_near_end")
        kiosk.press_done()  # back home
        home = ocr_text(kiosk.picture())
    finally:
        kiosk.stop()
    assert len(printer.wait_printed(1)) == 1
    assert "Choose a service" in home and "paper" not in home.lower(), "near-end is for staff"
    assert "paper near its end" in kiosk.log


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (("--cover-open",), "cover open"),
        (("--hang",), "no answer after the ticket"),
        (("--mute",), "no answer after the ticket"),
        (("--drop-after", "60"), "no answer after the ticket"),
    ],
    ids=["cover-open", "hang", "mute", "dropped"],
)
def test_every_printer_fault_still_gives_the_ticket_on_screen_in_bounded_time(
    screen, write_config, emulator, tmp_path, flags, error
):
    printer = emulator(*flags)
    kiosk = Kiosk(screen, tmp_path / "state", write_config(printer_on(printer.address)))
    try:
        screen.key("1")
        committed = kiosk.wait_for_tickets(1)[0]
        (row,) = kiosk.wait_for_tickets(1, ("print_failed",), timeout=2 + 8)  # timeout_s + slack
        on_screen = failed_ticket_picture(kiosk)
        assert kiosk.alive()
    finally:
        kiosk.stop()
    assert row["id"] == committed["id"] and error in row["print_error"]
    assert decode_qr(on_screen) == [f"https://jono.example.fi/t/{row['public_token']}"]


@pytest.mark.screenshot
def test_closed_and_capped_services_say_so_and_give_no_ticket(
    screen, write_config, tmp_path, shots
):
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date().isoformat()
    text = TWO_SERVICES.replace('language = "fi"', 'language = "en"')
    text = text.replace(
        'name = { fi = "Maksut", sv = "Betalningar", en = "Payments" }',
        f'name = {{ fi = "Maksut", en = "Payments" }}\nexceptions = {{ "{today}" = [] }}',
    ).replace('text = { fi = "Ota', 'daily_cap = 1\ntext = { fi = "Ota')
    kiosk = Kiosk(screen, tmp_path / "state", write_config(text))
    try:
        closed_screen = kiosk.picture()
        closed_screen.save(shots / "kiosk-closed.png")
        closed_home = ocr_text(closed_screen)
        screen.key("1")  # closed today: nothing happens
        screen.click(*button_center(0, 2))
        screen.key("2")
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.press_done()
        kiosk.until(lambda s: any("No more" in t["text"] for t in s["texts"]), "the cap said")
        full_home = kiosk.picture()
        screen.key("2")  # the cap is reached
        after = kiosk.caught_up()  # the key is handled: a ticket would be under way
        rows = kiosk.tickets()
    finally:
        kiosk.stop()
    assert "Closed today" in closed_home, closed_home
    assert "No more tickets today" in ocr_text(full_home)
    assert [r["display"] for r in rows] == ["B001"], "one ticket: the open service, once"
    assert after["screen"] == "home", "no ticket started for the capped service"
