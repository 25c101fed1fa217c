"""The service tree and "where to go" in the real app: a category opens its
level (by digit and by tap), Back (key and button), Home (button and key) and
a short 0 lead back, a closed service inside a category still says why, the
ticket screen says where to go, and the next customer starts at the top
(after a ticket, and after the kiosk sat idle, speech off again).

The app runs as ``tests.kiosk_probe`` (see tests/kiosk_driver.py).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.kiosk_driver import ProbedKiosk, centre
from tests.test_kiosk_modes_ui import grab

pytestmark = pytest.mark.ui

TREE = """
[kiosk]
language = "en"
languages = ["en", "fi"]
return_home_s = 30
language_reset_s = {reset_s}
warn_before_s = 2
min_tap_interval_s = 0.5

[branch]
name = "City service point"
timezone = "Europe/Helsinki"

[printer]
backend = "emulator"

[speech]
speaker_device = "null"
headset = "none"

[[categories]]
id = "money"
name = {{ en = "Money matters", fi = "Raha-asiat" }}

[[services]]
id = "payments"
prefix = "A"
name = {{ en = "Payments", fi = "Maksut" }}
category = "money"
location = {{ en = "Room 204, 2nd floor", fi = "Huone 204, 2. kerros" }}

[[services]]
id = "transfers"
prefix = "B"
name = {{ en = "Transfers", fi = "Siirrot" }}
category = "money"
exceptions = {{ "{today}" = [] }}

[[services]]
id = "advice"
prefix = "C"
name = {{ en = "Advice", fi = "Neuvonta" }}
"""


def tree_config(reset_s: float = 60) -> str:
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date().isoformat()
    return TREE.format(reset_s=reset_s, today=today)


def labels(state: dict) -> list[str]:
    return [label["text"] for label in state["labels"]]


def classes(state: dict) -> list[str]:
    return [button["class"] for button in state["buttons"]]


def at_top(state: dict) -> bool:
    return (
        state["screen"] == "home"
        and "CategoryButton" in classes(state)
        and "NavButton" not in classes(state)
    )


def in_money(state: dict) -> bool:
    return (
        state["screen"] == "home"
        and "Payments" in labels(state)
        and classes(state).count("NavButton") == 2
    )


def test_the_tree_down_and_back_by_keys_and_taps_and_where_to_go(
    screen, write_config, tmp_path, shots
):
    kiosk = ProbedKiosk(screen, tmp_path, write_config(tree_config(reset_s=6)))
    try:
        top = kiosk.until(at_top, "the top level")
        assert classes(top).count("CategoryButton") == 1
        assert {"Money matters", "More choices", "Advice"} <= set(labels(top))
        assert "Payments" not in labels(top), "a category's services wait inside it"
        kiosk.settled()
        grab(screen).save(shots / "kiosk-tree-top.png")

        # down by its digit: the title, its services, the closed one saying why
        screen.key("1")
        level = kiosk.until(in_money, "the category's level")
        assert {"Money matters", "Payments", "Transfers", "Closed today"} <= set(labels(level))
        assert "Advice" not in labels(level)
        assert kiosk.button(level, "‹  Back", "NavButton") and kiosk.button(level, "Home")
        level = kiosk.settled()
        title = kiosk.label(level, "Money matters")
        grab(screen).save(shots / "kiosk-tree-level.png")
        assert title["y"] < kiosk.label(level, "Payments")["y"], "the title above its services"

        # back by Backspace, down by a tap, home by the Home button
        screen.key("BackSpace")
        kiosk.until(at_top, "the top level after Backspace")
        top = kiosk.settled()  # where the buttons are once laid out again
        screen.click(*centre(kiosk.button(top, "", "CategoryButton")))
        kiosk.until(in_money, "the level after a tap")
        level = kiosk.settled()
        screen.click(*centre(kiosk.button(level, "Home", "NavButton")))
        kiosk.until(at_top, "the top level after Home")

        # the Back button, the Home key, a short 0
        screen.key("1")
        kiosk.until(in_money, "the level again")
        level = kiosk.settled()
        screen.click(*centre(kiosk.button(level, "‹  Back", "NavButton")))
        kiosk.until(at_top, "the top level after the Back button")
        screen.key("1")
        kiosk.until(in_money, "the level again")
        screen.key("Home")
        kiosk.until(at_top, "the top level after the Home key")
        screen.key("KP_1")
        kiosk.until(in_money, "the level by the keypad's 1")
        screen.key("0")
        kiosk.until(at_top, "the top level after a short 0")

        # a closed service inside does not issue; an open one does, and says where to go
        screen.key("1")
        kiosk.until(in_money, "the level again")
        screen.key("2")  # Transfers: closed today
        screen.key("1")  # Payments
        ticket = kiosk.until(
            lambda s: s["screen"] == "ticket" and "Room 204, 2nd floor" in labels(s),
            "the ticket screen with where to go",
        )
        assert (
            kiosk.label(ticket, "Payments")["y"] < kiosk.label(ticket, "Room 204, 2nd floor")["y"]
        )
        rows = kiosk.wait_for_tickets(1, ("printed",))
        assert [r["service_id"] for r in rows] == ["payments"]
        kiosk.until(lambda s: not kiosk.button(s, "Done")["disabled"], "Done takes a tap")
        kiosk.settled()
        grab(screen).save(shots / "kiosk-ticket-location.png")
        screen.key("Return")
        kiosk.until(at_top, "the next customer at the top level")

        # walking away inside a category, speech on: the kiosk goes back to the
        # top by itself, and speech off
        screen.key("1")
        kiosk.until(in_money, "the level again")
        screen.xdotool("mousemove", "400", "5")
        screen.xdotool("keydown", "KP_0")
        try:
            kiosk.wait_for_log("speech on")
        finally:
            screen.xdotool("keyup", "KP_0")
        kiosk.wait_for_log("went back to the defaults")
        kiosk.until(at_top, "the top level after the idle reset")
        kiosk.wait_for_log("speech reset: off", times=2)  # after the ticket, and now
        assert len(kiosk.tickets()) == 1
    finally:
        kiosk.stop()
    assert "service tree: level money" in kiosk.log
