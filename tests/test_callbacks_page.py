"""Call me back in real headless Chromium on one real server: a customer asks
on the public page (a phone at 360 px, in Finnish), the request appears on a
logged-in staff member's counter screen live, "Not reached" keeps it listed
with its try counted, "Reached" takes it off, and the reports page counts it.
axe-core (WCAG 2.1 AA) on the public page at 360 px and 200 % text, and on
the counter screen with the list; screenshots of both."""

from __future__ import annotations

import requests

from tests.test_accessibility import sticking_out, violations
from tests.test_counter_screen import log_in
from tests.web import add_staff

SERVER_DATABASES = ("sqlite",)  # the pages do not depend on the database (verbs: test_callbacks)


def double_text(page) -> None:
    """The phone's text scaling, as tests/test_accessibility.py sets it."""
    page.evaluate("document.documentElement.style.setProperty('font-size', '200%', 'important')")
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px"


def test_a_request_from_the_public_page_is_called_back_from_the_counter_screen(
    own_branch, browser, shots
):
    server, branch = own_branch.server, own_branch.id
    server.sql("DELETE FROM throttle")
    phone = browser.new_context(locale="fi-FI", viewport={"width": 360, "height": 740}).new_page()
    phone.goto(f"{server.url}/callback/{branch}")
    assert phone.locator("html").get_attribute("lang") == "fi"
    assert phone.locator("h1").inner_text() == "Soittakaa minulle"
    assert violations(phone) == ""
    phone.screenshot(path=str(shots / "callback-fi.png"), full_page=True)
    double_text(phone)
    assert violations(phone) == ""
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360, sticking_out(phone)
    phone.screenshot(path=str(shots / "callback-fi-200.png"), full_page=True)
    phone.goto(f"{server.url}/callback/{branch}?lang=en")
    phone.screenshot(path=str(shots / "callback-en.png"), full_page=True)

    # a refusal first: said in words, at the field, what was typed kept
    phone.goto(f"{server.url}/callback/{branch}")
    phone.get_by_label("Puhelinnumero").fill("0600 12345")
    phone.get_by_label("Mitä asia koskee?").fill("Verokortti <b>muutos</b>")
    phone.get_by_label("Palvelu (vapaaehtoinen)").select_option(label="Maksut")
    phone.get_by_label("Hyväksyn").check()
    phone.get_by_role("button", name="Soittakaa minulle").click()
    assert "lisämaksullisiin" in phone.get_by_role("alert").inner_text()
    assert phone.get_by_label("Puhelinnumero").get_attribute("aria-invalid") == "true"
    assert phone.get_by_label("Mitä asia koskee?").input_value() == "Verokortti <b>muutos</b>"
    assert violations(phone) == "", "the refused form too"
    phone.screenshot(path=str(shots / "callback-refused-fi.png"), full_page=True)
    phone.get_by_label("Puhelinnumero").fill("040 123 4567")
    phone.get_by_label("Hyväksyn").check()
    phone.get_by_role("button", name="Soittakaa minulle").click()
    assert phone.locator("h1").inner_text() == "Soitamme sinulle"
    assert phone.locator("#called-number").inner_text() == "+358 40 1234567"
    assert violations(phone) == ""
    phone.screenshot(path=str(shots / "callback-done-fi.png"), full_page=True)

    # Maria works counter 2 and manages the branch (reports)
    maria = own_branch.name("maria")
    add_staff(server, maria, "2", role="manager", branch=branch)
    desk = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(desk, server, maria)
    item = desk.locator("#callbacks li")
    assert item.count() == 1
    link = item.get_by_role("link", name="+358 40 1234567")
    assert link.get_attribute("href") == "tel:+358401234567"
    assert item.locator(".reason").inner_text() == "Verokortti <b>muutos</b>", "as text"
    assert "tries 0 of 3 · Payments" in item.locator(".meta").inner_text()

    # a second customer asks while the screen is open: it appears live
    reply = requests.post(
        f"{server.url}/callback/{branch}?lang=en",
        data={"phone": "+46 70 123 45 67", "reason": "permit", "consent": "yes"},
        timeout=10,
    )
    assert reply.status_code == 200
    desk.locator("#callbacks li", has_text="+46 70 123 45 67").wait_for()
    assert desk.locator("#callbacks-count").inner_text() == "2"
    assert [t.split("\n")[0] for t in desk.locator("#callbacks li .phone").all_inner_texts()] == [
        "+358 40 1234567",
        "+46 70 123 45 67",
    ], "oldest first"
    assert violations(desk) == ""
    desk.screenshot(path=str(shots / "callback-console.png"), full_page=True)
    desk.set_viewport_size({"width": 360, "height": 740})  # the list on a phone, big text
    double_text(desk)
    assert violations(desk) == ""
    assert desk.evaluate("document.documentElement.scrollWidth") <= 360, sticking_out(desk)
    desk.locator("#callbacks").screenshot(path=str(shots / "callback-console-360-200.png"))
    desk.set_viewport_size({"width": 1280, "height": 900})
    desk.evaluate("document.documentElement.style.removeProperty('font-size')")

    # by keyboard: Tab reaches the first request's buttons; Not reached counts a try
    first = desk.locator("#callbacks li").first
    first.get_by_role("button", name="Not reached").focus()
    desk.keyboard.press("Enter")
    desk.locator("#flash", has_text="try 1 noted").wait_for()
    first.locator(".meta", has_text="tries 1 of 3").wait_for()
    assert desk.locator("#callbacks li").count() == 2, "not reached: still listed"
    focused = desk.evaluate("document.activeElement.textContent")
    assert focused.startswith("Not reached"), "the focus stays on the button pressed"
    desk.keyboard.press("Shift+Tab")  # back to Reached
    desk.keyboard.press("Enter")
    desk.locator("#flash", has_text="Call-back marked reached.").wait_for()
    desk.locator("#callbacks li", has_text="+358 40 1234567").wait_for(state="detached")
    assert desk.locator("#callbacks li").count() == 1
    assert desk.evaluate("document.activeElement.textContent").startswith("Reached"), (
        "the focus moves to the next request"
    )
    assert server.sql(
        "SELECT state, tries, staff_id IS NOT NULL FROM callbacks WHERE phone = ?",
        ["+358401234567"],
    ) == [("reached", 2, 1)]

    # a press from a screen that showed fewer tries (another's came first) is told so
    other = server.sql("SELECT id FROM callbacks WHERE phone = ?", ["+46701234567"])[0][0]
    server.storage.mark_callback(branch, other, False, None, 0)
    csrf = desk.locator("input[name=csrf]").first.get_attribute("value")
    stale = desk.request.post(
        f"{server.url}/console/callback",
        form={"csrf": csrf, "callback": other, "outcome": "reached", "tries": "0"},
        headers={"Accept": "application/json"},
    ).json()
    assert stale == {
        "ok": False,
        "message": "Someone marked a try just now (tries: 1). Check the list again.",
    }
    desk.locator("#callbacks li .meta", has_text="tries 1 of 3").wait_for()
    desk.locator("#callbacks li button[value=reached]").click()
    desk.locator("#no-callbacks").wait_for()
    assert desk.locator("#callbacks li").count() == 0
    assert desk.locator("#callbacks-count").inner_text() == "0"

    desk.goto(f"{server.url}/console/reports")
    figures = {
        key: desk.locator(f'#callback-figures dd[data-figure="callback_{key}"]').inner_text()
        for key in ("requests", "reached", "given_up", "waiting", "reach_rate")
    }
    assert figures == {
        "requests": "2",
        "reached": "2",
        "given_up": "0",
        "waiting": "0",
        "reach_rate": "100 %",
    }
    csv = desk.request.get(f"{server.url}/console/reports.csv?table=callbacks&preset=today")
    lines = csv.text().splitlines()
    assert lines[0] == (
        "day,requests,reached,given_up,waiting,reach_rate,delay_median_s,delay_p90_s"
    )
    assert lines[-1].startswith("all,2,2,0,0,1.0,")
