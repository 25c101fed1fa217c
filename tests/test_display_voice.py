"""The waiting-room display's voice after 1,000 calls in one page session, in
real headless Chromium against a real server: nothing a page keeps per call
(media elements, listeners, remembered ids) may pile up until it stops speaking."""

from __future__ import annotations

import time

import pytest
import requests

from tests.test_display import issue
from tests.test_display_page import open_display, staff_at, wait_played

SERVER_DATABASES = ("sqlite",)  # the page's own stamina; the database is not in question


@pytest.mark.timeout(900)  # four minutes on a quiet 2-core machine, more beside other tests
def test_the_voice_still_plays_after_a_thousand_calls(chromium, branch):
    """One page session, 1,000 recalls: each announcement loaded, played and
    ended (fast-forwarded near its end, so the test takes a minute, not hours),
    then one more call at normal speed is still heard."""
    server, kiosk_dir = branch
    issue(kiosk_dir, 1)
    display = open_display(chromium, server)
    console = staff_at(chromium, server, "aino", "7")
    console.get_by_role("button", name="Call next").click()
    wait_played(display, 1)
    display.evaluate("window.vuoroDisplay.minShowMs = 0; window.vuoroDisplay.skipTo = 0.01")
    started = time.monotonic()
    session = requests.Session()
    for cookie in console.context.cookies():
        session.cookies.set(cookie["name"], cookie["value"], path=cookie["path"])
    csrf = console.locator("input[name=csrf]").first.get_attribute("value")
    total = 1
    while total < 1001:
        burst = min(12, 1001 - total)  # as many as a display's state holds
        for _ in range(burst):
            session.post(
                f"{server.url}/console/act",
                data={"csrf": csrf, "action": "recall"},
                allow_redirects=False,
                timeout=30,
            ).raise_for_status()
        total += burst
        wait_played(display, total, timeout_s=120)
    print(f"1,000 announcements in {time.monotonic() - started:.0f} s")
    display.evaluate("window.vuoroDisplay.minShowMs = 5000; window.vuoroDisplay.skipTo = 0")
    session.post(
        f"{server.url}/console/act", data={"csrf": csrf, "action": "recall"}, timeout=30
    ).raise_for_status()
    last = wait_played(display, 1002)[-1]
    assert last["id"] == display.evaluate("window.vuoroDisplay.state.calls[0].id")
    assert last["duration"] > 2.0, "heard whole: a chime and the words"
