"""Large text, high contrast and time to decide, in the real app on the 7" Pi
screen's 800x480: switched by a real tap and a real key, proven by the
screenshot's pixels (the background's brightness, the height of the letters),
on the ticket screen too, gone for the next customer; every button at least
9 mm; every time limit warning first and extended by one tap or one key.

The app runs as ``tests.kiosk_probe`` (the real kiosk that also describes its
widget tree on request), so the tests click where the buttons really are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from tests.kiosk_driver import PI_SCREEN, ProbedKiosk, centre

pytestmark = pytest.mark.ui

__all__ = ["PI_SCREEN", "ProbedKiosk", "centre"]  # imported from here by older tests

PX_PER_MM = PI_SCREEN[0] / 154
MIN_TARGET_PX = 9 * PX_PER_MM  # 9 mm: about 47 px
DEMO_PIN_HASH = (  # PIN 1234, as in the embedded default config
    "$argon2id$v=19$m=65536,t=3,p=4$IyA+V95++n9Sg/lDKv+9FQ$"
    "IWhLtXqBVhUac9FprDEORk0LcENStecYNhpv6LOXKj4"
)
FAILED_SHOT = Path("/tmp/vuoro-modes-failed.png")

CONFIG = """
[kiosk]
language = "en"
languages = ["en", "fi"]
return_home_s = {return_home_s}
language_reset_s = {reset_s}
warn_before_s = {warn_s}
min_tap_interval_s = 0.5

[branch]
name = "City service point"
timezone = "Europe/Helsinki"

[printer]
backend = "emulator"

[admin]
pin_hash = "{pin_hash}"
idle_s = {admin_s}

[[services]]
id = "payments"
prefix = "A"
name = {{ en = "Payments", fi = "Maksut" }}

[[services]]
id = "permits"
prefix = "B"
name = {{ en = "Permits and licences", fi = "Luvat ja lisenssit" }}

[[services]]
id = "advice"
prefix = "C"
name = {{ en = "Advice and guidance for housing, building and the environment", fi = "Neuvonta" }}

[[services]]
id = "passports"
prefix = "D"
name = {{ en = "Passports", fi = "Passit" }}
exceptions = {{ "{today}" = [] }}
"""


def config_text(return_home_s=30, reset_s=60, warn_s=10, admin_s=60) -> str:
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date().isoformat()
    return CONFIG.format(
        return_home_s=return_home_s,
        reset_s=reset_s,
        warn_s=warn_s,
        admin_s=admin_s,
        today=today,
        pin_hash=DEMO_PIN_HASH,
    )


def grab(screen) -> Image.Image:
    return screen.screenshot().crop((0, 0, *PI_SCREEN)).convert("RGB")


def until_screen(screen, condition: Callable[[Image.Image], bool], what: str, timeout=20):
    """A screenshot once the frame shows what is expected (drawing lags a state change)."""
    deadline = time.monotonic() + timeout
    while True:
        image = grab(screen)
        if condition(image):
            return image
        if time.monotonic() > deadline:
            image.save(FAILED_SHOT)
            raise AssertionError(f"the screen never showed {what}: see {FAILED_SHOT}")
        time.sleep(0.1)


def luminance(image: Image.Image) -> float:
    """The screen's typical brightness, 0–1: its median grey."""
    histogram, half, seen = image.convert("L").histogram(), image.width * image.height / 2, 0
    for grey, count in enumerate(histogram):
        seen += count
        if seen >= half:
            return grey / 255
    return 1.0


def ink_height(image: Image.Image, box: dict, left_part: float = 1.0) -> int:
    """How tall the letters in ``box`` are drawn: rows holding pixels far from the
    box's own (most common) colour. ``left_part`` keeps clear of a right-hand text."""
    margin = 4  # clear of outlines
    crop = image.convert("L").crop(
        (
            int(box["x"]) + margin,
            int(box["y"]) + margin,
            int(box["x"] + box["width"] * left_part) - margin,
            int(box["y"] + box["height"]) - margin,
        )
    )
    histogram = crop.histogram()
    ground = max(range(256), key=histogram.__getitem__)
    pixels = crop.load()
    rows = [
        y
        for y in range(crop.height)
        if sum(1 for x in range(crop.width) if abs(pixels[x, y] - ground) > 90) >= 2
    ]
    return rows[-1] - rows[0] + 1 if rows else 0


def small_targets(state: dict) -> list[str]:
    return [
        f"{b['class']} {b['text']!r} {b['width']:.0f}x{b['height']:.0f}"
        for b in state["buttons"]
        if min(b["width"], b["height"]) < MIN_TARGET_PX
    ]


def alert_pixels(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """Pixels of the time-limit band's colour in the top quarter of the screen."""
    band = image.crop((0, 0, PI_SCREEN[0], PI_SCREEN[1] // 4))
    pixels = band.load()
    return sum(
        1
        for y in range(band.height)
        for r, g, b in (pixels[x, y] for x in range(band.width))
        if abs(r - colour[0]) < 24 and abs(g - colour[1]) < 24 and abs(b - colour[2]) < 24
    )


AMBER = (255, 176, 0)  # kiosk.theme.FOCUS: the band in the default palette


@pytest.mark.screenshot
def test_large_text_and_high_contrast_by_tap_and_key_on_every_screen_then_reset(
    screen, write_config, tmp_path, shots
):
    kiosk = ProbedKiosk(screen, tmp_path, write_config(config_text()))
    targets: dict[str, list[str]] = {}
    try:
        kiosk.until(lambda s: s["screen"] == "home" and s["buttons"], "home")
        home = kiosk.settled()
        targets["home"] = small_targets(home)
        title = kiosk.label(home, "Payments")
        plain = until_screen(screen, lambda i: ink_height(i, title, 0.5) > 0, "the services")
        plain_height, plain_light = ink_height(plain, title, 0.5), luminance(plain)

        # Large text: a tap on its button, the keypad's +, then + typed
        screen.click(*centre(kiosk.button(home, "Large text", "ModeButton")))
        kiosk.until(lambda s: s["large_text"], "large text after a tap")
        targets["home, large text"] = small_targets(kiosk.settled())
        title = kiosk.label(kiosk.settled(), "Payments")
        large_shot = until_screen(
            screen, lambda i: ink_height(i, title, 0.5) >= 1.3 * plain_height, "larger letters"
        )
        large_shot.save(shots / "kiosk-large-text.png")
        screen.key("KP_Add")
        kiosk.until(lambda s: not s["large_text"], "large text off by the keypad's +")
        screen.key("plus")
        kiosk.until(lambda s: s["large_text"], "large text on by +")

        # High contrast: a tap, the keypad's *, then * typed
        state = kiosk.ask()
        screen.click(*centre(kiosk.button(state, "High contrast", "ModeButton")))
        kiosk.until(lambda s: s["high_contrast"], "high contrast after a tap")
        dark = until_screen(screen, lambda i: luminance(i) < 0.15, "a black screen")
        screen.key("KP_Multiply")
        kiosk.until(lambda s: not s["high_contrast"], "high contrast off by the keypad's *")
        until_screen(screen, lambda i: luminance(i) > 0.7, "the light screen again")
        screen.key("plus")  # large text off, for the high-contrast picture alone
        screen.key("asterisk")
        kiosk.until(lambda s: s["high_contrast"] and not s["large_text"], "high contrast on by *")
        targets["home, high contrast"] = small_targets(kiosk.settled())
        until_screen(screen, lambda i: luminance(i) < 0.15, "a black screen").save(
            shots / "kiosk-high-contrast.png"
        )
        screen.key("KP_Add")
        kiosk.until(lambda s: s["large_text"] and s["high_contrast"], "both modes")
        targets["home, both"] = small_targets(kiosk.settled())

        # The PIN pad (anything reached from home) follows the modes too
        screen.key("ctrl+alt+a")
        kiosk.until(lambda s: s["screen"] == "pin", "the PIN pad")
        targets["PIN pad, both"] = small_targets(kiosk.settled())
        screen.key("Escape")  # back home: the modes are reset like after a customer
        kiosk.until(lambda s: s["screen"] == "home" and not s["large_text"], "home")
        screen.key("KP_Add", "KP_Multiply")
        kiosk.until(lambda s: s["large_text"] and s["high_contrast"], "both modes again")

        # The ticket screen in both modes
        screen.key("1")
        ticket = kiosk.until(
            lambda s: s["screen"] == "ticket" and any(b["text"] == "Done" for b in s["buttons"]),
            "the ticket screen",
        )
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.until(lambda s: not kiosk.button(s, "Done")["disabled"], "Done takes a tap")
        ticket = kiosk.settled()
        targets["ticket, both"] = small_targets(ticket)
        done = kiosk.button(ticket, "Done")
        ticket_modes = until_screen(
            screen,
            lambda i: luminance(i) < 0.15 and ink_height(i, done) > 0,
            "a black ticket screen",
        )
        ticket_modes.save(shots / "kiosk-ticket-large-high-contrast.png")
        modes_done_height = ink_height(ticket_modes, done)
        assert ticket["text_scale"] == 1.5

        # Done: the next customer gets the default look
        screen.key("Return")
        after = kiosk.until(lambda s: s["screen"] == "home", "home after Done")
        assert (after["large_text"], after["high_contrast"]) == (False, False)
        title = kiosk.label(kiosk.settled(), "Payments")
        reset = until_screen(screen, lambda i: luminance(i) > 0.7, "the default look")
        assert ink_height(reset, title, 0.5) == pytest.approx(plain_height, abs=2)

        # The same ticket screen without the modes, to compare
        screen.key("2")
        ticket = kiosk.until(lambda s: s["screen"] == "ticket", "the second ticket")
        kiosk.wait_for_tickets(2, ("printed",))
        ticket = kiosk.settled()
        targets["ticket"] = small_targets(ticket)
        done = kiosk.button(ticket, "Done")
        plain_ticket = until_screen(
            screen, lambda i: ink_height(i, done) > 0, "the plain ticket screen"
        )
    finally:
        kiosk.stop()

    assert plain_light > 0.7 and luminance(dark) < 0.15
    assert luminance(plain_ticket) > 0.7
    assert modes_done_height >= 1.3 * ink_height(plain_ticket, done), "large text on the ticket"
    assert targets == {where: [] for where in targets}, f"under {MIN_TARGET_PX:.0f} px"
    assert "large text on" in kiosk.log and "high contrast on" in kiosk.log


@pytest.mark.screenshot
def test_every_time_limit_warns_first_and_one_tap_or_key_extends_it(
    screen, write_config, tmp_path, shots
):
    """Each limit is 6 s and warns 2 s before (a third of it)."""
    config = write_config(config_text(return_home_s=6, reset_s=6, warn_s=10, admin_s=6))
    kiosk = ProbedKiosk(screen, tmp_path, config)
    try:
        # Home: the customer's choices (language, large text) wait while they decide
        home = kiosk.until(lambda s: s["screen"] == "home" and s["buttons"], "home")
        screen.click(*centre(kiosk.button(home, "Suomi")))
        state = kiosk.until(lambda s: s["language"] == "fi", "Finnish")
        screen.click(*centre(kiosk.button(state, "Iso teksti", "ModeButton")))
        kiosk.until(lambda s: s["large_text"], "large text")
        warned = kiosk.until(lambda s: s["warning"] == "customer", "the idle warning")
        band = kiosk.button(warned, "", "TimeWarning")
        assert band["y"] == 0 and band["width"] == PI_SCREEN[0], "across the top"
        screen.click(*centre(band))  # one tap: more time
        kept = kiosk.until(lambda s: s["warning"] == "", "the band gone after a tap")
        assert (kept["language"], kept["large_text"]) == ("fi", True), "the choices are kept"
        kiosk.until(lambda s: s["warning"] == "customer", "the idle warning again")
        screen.key("Return")  # one key: more time
        kept = kiosk.until(lambda s: s["warning"] == "", "the band gone after Enter")
        assert (kept["language"], kept["large_text"]) == ("fi", True)
        kiosk.wait_for_log("time limit customer: warning", times=3)
        kiosk.wait_for_log("went back to the defaults")  # no answer: the next customer's
        reset = kiosk.until(lambda s: s["language"] == "en", "English again")
        assert not reset["large_text"] and reset["warning"] == ""

        # The ticket screen's way home
        screen.key("1")
        kiosk.until(lambda s: s["screen"] == "ticket", "the ticket screen")
        kiosk.wait_for_tickets(1, ("printed",))
        kiosk.until(lambda s: s["warning"] == "ticket", "the ticket's warning")
        warning_shot = until_screen(
            screen, lambda i: alert_pixels(i, AMBER) > 20000, "the amber band"
        )
        warning_shot.save(shots / "kiosk-time-warning.png")
        screen.click(PI_SCREEN[0] // 2, 40)  # the band
        kiosk.until(lambda s: s["warning"] == "", "the band gone after a tap")
        until_screen(screen, lambda i: alert_pixels(i, AMBER) < 500, "the band gone")
        assert kiosk.ask()["screen"] == "ticket", "still the ticket, with more time"
        kiosk.until(lambda s: s["warning"] == "ticket", "the ticket's warning again")
        screen.key("Right")  # any key (Enter here still means "Done")
        extended = kiosk.until(lambda s: s["warning"] == "", "the band gone after a key")
        assert extended["screen"] == "ticket"
        kiosk.until(lambda s: s["screen"] == "home", "home once the time is up", timeout=20)

        # The admin PIN pad's idle close: a digit is more time too
        screen.key("ctrl+alt+a")
        kiosk.until(lambda s: s["screen"] == "pin", "the PIN pad")
        kiosk.until(lambda s: s["warning"] == "admin", "the PIN pad's warning")
        screen.key("5")
        extended = kiosk.until(lambda s: s["warning"] == "", "more time on the PIN pad")
        assert extended["screen"] == "pin"
        kiosk.until(lambda s: s["screen"] == "home", "the PIN pad closed when idle")
    finally:
        kiosk.stop()
    log = kiosk.log
    for limit in ("customer", "ticket", "admin"):
        assert f"time limit {limit}: warning, " in log, "the hook the speech output binds to"
    assert "admin menu idle" in log
