"""The waiting-room display in real headless Chromium against a real server:
a console call shows and speaks without a reload, a recall speaks again, two
calls at once are both shown and spoken in order, a server restart shows a
banner and then the current state with no stale speech, a revoked display goes
back to its pairing form, and the voice still plays after 1,000 calls."""

from __future__ import annotations

import time

import pytest
import requests

from tests.test_display import issue
from tests.web import PASSWORD, add_staff

#: the page's behaviour is the same on either database; the live channel across
#: workers and PostgreSQL is covered by tests/test_display.py and the benchmark
SERVER_DATABASES = ("sqlite",)


def until(page, expression: str, timeout_s: float = 60):
    """Poll an expression in the page until it is true (the page's strict CSP
    forbids the eval that Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + timeout_s
    while not (value := page.evaluate(expression)):
        assert time.monotonic() < deadline, f"{expression} not true within {timeout_s} s"
        time.sleep(0.05)
    return value


def open_display(chromium, server, width=1920, height=1080, branch="demo"):
    """A TV's browser paired with a code, as the appliance's first start does."""
    code = server.pair_code(branch)
    page = chromium.new_context(viewport={"width": width, "height": height}).new_page()
    page.goto(f"{server.url}/display?pair={code}&name=Lobby")
    until(page, "Boolean(window.vuoroDisplay && window.vuoroDisplay.state)")
    return page


def staff_at(chromium, server, username: str, counter: str, branch: str = "demo"):
    add_staff(server, username, counter, branch=branch)
    page = chromium.new_context().new_page()
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Call next").wait_for()
    return page


def played(page) -> list[dict]:
    return page.evaluate("window.vuoroDisplay.played")


def hurry(page) -> None:
    """Each announcement from now on still loads, plays and ends, but from its
    last 50 ms, with no minimum time on the big panel: seconds of chime and
    four languages per call add up. A whole announcement is heard in full in
    the first test here and at the end of tests/test_display_voice.py."""
    page.evaluate("window.vuoroDisplay.minShowMs = 0; window.vuoroDisplay.skipTo = 0.05")


def wait_played(page, count: int, timeout_s: float = 60) -> list[dict]:
    until(page, f"window.vuoroDisplay.playedCount >= {count}", timeout_s)
    return played(page)


@pytest.mark.screenshot
def test_a_console_call_shows_and_speaks_and_a_recall_speaks_again(chromium, own_branch, shots):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    _, services = server.storage.branch_settings(branch)
    permits = next(s for s in services if s["id"] == "permits")
    permits["locations"] = {"fi": "Huone 204, 2. kerros", "en": "Room 204, 2nd floor"}
    server.storage.put_service(branch, permits)
    issue(kiosk_dir, 2)
    display = open_display(chromium, server, branch=branch)
    assert display.locator("#idle").is_visible()
    console = staff_at(chromium, server, own_branch.name("aino"), "3", branch)
    console.get_by_role("button", name="Call next").click()
    console.locator("#current[data-present=true]").wait_for()
    number = console.locator("#current").inner_text().strip()
    now = display.locator("#now")
    now.locator(".number").get_by_text(number).wait_for()
    assert display.locator("#now-counter").inner_text() == "3"
    # where to go, in the language on show (the labels rotate through the display's)
    place, shown = display.evaluate(
        "[window.vuoroDisplay.state.calls[0].location[document.documentElement.lang],"
        " document.getElementById('now-place').textContent]"
    )
    assert place in {"Huone 204, 2. kerros", "Room 204, 2nd floor"} and shown == place
    assert "fresh" in now.get_attribute("class")  # highlighted, blinking
    first = wait_played(display, 1)
    call_id = int(now.get_attribute("data-call-id"))
    assert first[-1]["id"] == call_id and first[-1]["src"].endswith(
        f"/display/sound/{call_id}.wav?l={','.join(display.evaluate('window.vuoroDisplay.state.languages'))}"
    )
    display.screenshot(path=str(shots / "display-landscape.png"))
    assert first[-1]["duration"] > 2.0, "heard whole: a chime and the words"
    hurry(display)
    console.get_by_role("button", name="Recall").click()
    again = wait_played(display, 2)
    assert again[-1]["id"] > call_id, "a recall is a new announcement"
    assert display.evaluate("window.vuoroDisplay.state.calls[0].recall") is True
    assert display.evaluate("location.pathname") == "/display"  # never reloaded


def test_two_calls_in_the_same_second_are_both_shown_and_spoken_in_order(chromium, own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    issue(kiosk_dir, 3)
    display = open_display(chromium, server, branch=branch)
    hurry(display)
    desk_one = staff_at(chromium, server, own_branch.name("aino"), "1", branch)
    desk_two = staff_at(chromium, server, own_branch.name("bertil"), "2", branch)
    desk_one.get_by_role("button", name="Call next").click()
    desk_two.get_by_role("button", name="Call next").click()
    heard = wait_played(display, 2)
    calls = display.evaluate("window.vuoroDisplay.state.calls")
    assert [c["counter"] for c in calls[:2]] == ["2", "1"]
    assert [h["id"] for h in heard] == sorted(c["id"] for c in calls[:2]), "in the order made"
    assert display.evaluate("window.vuoroDisplay.shown") >= 2, "each had its moment"
    # both shown: the newest large, the other in the history
    history = display.locator("#history li").all_inner_texts()
    assert any(calls[1]["number"] in row for row in history)


@pytest.mark.screenshot
def test_a_server_restart_shows_a_banner_then_the_state_and_no_stale_speech(
    chromium, branch, shots
):
    """(A server of its own: the test kills and restarts it.)"""
    server, kiosk_dir = branch
    issue(kiosk_dir, 2)
    display = open_display(chromium, server)
    hurry(display)
    server.call_next("5")
    wait_played(display, 1)
    server.kill()
    banner = display.locator("#offline")
    banner.wait_for(state="visible", timeout=60000)
    said = display.evaluate(
        "Object.values(window.vuoroDisplay.state.words).map(w => w.offline.split('{time}')[0])"
    )
    assert any(banner.inner_text().startswith(start) for start in said), said
    display.screenshot(path=str(shots / "display-offline.png"))
    assert display.locator("#now-counter").inner_text() == "5", "the last state stays"
    server.start()
    banner.wait_for(state="hidden", timeout=90000)
    time.sleep(1.0)  # a replayed call would have started by now
    assert display.evaluate("window.vuoroDisplay.playedCount") == 1, "nothing spoken twice"
    server.call_next("6", finish="served")
    display.locator("#now-counter").get_by_text("6").wait_for()
    assert wait_played(display, 2)[-1]["id"] > 0


def test_a_revoked_display_stops_receiving_and_asks_to_be_paired(chromium, own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    display = open_display(chromium, server, branch=branch)
    ident = display.evaluate("window.vuoroDisplay.state.display.id")
    server.cli("display-revoke", ident)
    display.get_by_role("heading", name="Pair this display").wait_for(timeout=60000)
    issue(kiosk_dir, 1)
    server.call_next("2", branch=branch)
    assert requests.get(f"{server.url}/display/state", timeout=10).status_code == 401
    assert "Pair this display" in display.content()


@pytest.mark.screenshot
def test_portrait_and_idle_screens(chromium, own_branch, shots):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    server.cli("display-message", "--branch", branch, "Tervetuloa! Välkommen! Welcome!")
    idle = open_display(chromium, server, branch=branch)
    idle.locator("#message").get_by_text("Welcome!").wait_for()
    idle.screenshot(path=str(shots / "display-idle.png"))
    idle.context.close()  # done with: it would speak every call below
    issue(kiosk_dir, 6)
    for counter in ("1", "2", "3", "4"):
        server.call_next(counter, branch=branch)
    portrait = open_display(chromium, server, 1080, 1920, branch)
    # the four young calls it had not spoken get their turns: quickly, here
    hurry(portrait)
    until(portrait, "window.vuoroDisplay.shown >= 4 && window.vuoroDisplay.idle")
    portrait.locator("#history li").nth(2).wait_for(state="attached")
    portrait.screenshot(path=str(shots / "display-portrait.png"))
    box = portrait.locator("#now-number").bounding_box()
    assert box["height"] > 200, "readable from across the room"
