"""Joining from a phone in real headless Chromium: the poster's QR code, read
off a screenshot, opens the joining page; a tap on a service opens the live
ticket, which shows the call when staff call it; axe-core finds nothing on
the joining page or the poster at a small phone's width and at 200 % text."""

from __future__ import annotations

import io
import re

import pytest
import zxingcpp
from PIL import Image

from tests.test_accessibility import sticking_out, violations
from tests.test_join import _closed_today_open_tomorrow
from tests.test_page_security import WATCH_VIOLATIONS
from tests.web import PASSWORD, add_staff

SERVER_DATABASES = ("sqlite",)  # the pages' markup does not depend on the server's database


def accessible_at_double_text(page, name: str) -> dict[str, str]:
    """axe-core's findings as the page is, then at 200 % text; it must not
    scroll sideways at 360 px either way."""
    found = {name: violations(page)}
    page.evaluate("document.documentElement.style.setProperty('font-size', '200%', 'important')")
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px"
    found[f"{name} at 200 %"] = violations(page)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 360, f"{name} at 200 % scrolls sideways: {sticking_out(page)}"
    page.evaluate("document.documentElement.style.removeProperty('font-size')")
    return {k: v for k, v in found.items() if v}


@pytest.mark.screenshot
def test_the_posters_code_opens_the_joining_page(browser, own_branch, shots):
    server, branch = own_branch.server, own_branch.id
    paper = browser.new_context(viewport={"width": 794, "height": 1123})  # A4 at 96 dpi
    paper.add_init_script(WATCH_VIOLATIONS)
    page = paper.new_page()
    page.goto(f"{server.url}/join/{branch}/poster")
    assert page.evaluate("window.violations") == [], "the poster keeps the pages' CSP"
    assert page.locator("h1").inner_text() == "Vuoro demo branch"
    join_url = f"{server.url}/join/{branch}"
    assert page.locator(".poster-url").inner_text() == join_url
    page.emulate_media(media="print")
    png = page.screenshot(full_page=True)
    (shots / "join-poster.png").write_bytes(png)
    codes = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert [code.text for code in codes] == [join_url]
    # every language of the branch says what to do, each marked as its language
    said = page.locator(".poster-texts section")
    assert [said.nth(i).get_attribute("lang") for i in range(said.count())] == [
        "en",
        "fi",
        "sv",
        "et",
    ]
    assert "Skannaa koodi puhelimesi kameralla" in said.nth(1).inner_text()
    # printed, it is one A4 page (its own @page size: 595 x 842 points)
    pdf = page.pdf(prefer_css_page_size=True)
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) == 1
    ((width, height),) = {
        (round(float(w)), round(float(h)))
        for w, h in re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)", pdf)
    }
    assert (width, height) == (595, 842)
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 360, "height": 740})
    failing = accessible_at_double_text(page, "poster")
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())


@pytest.mark.screenshot
def test_a_tap_on_a_service_opens_the_live_ticket_that_shows_the_call(browser, own_branch, shots):
    server, branch = own_branch.server, own_branch.id
    server.storage.issue_at_counter(branch, "payments", None)  # someone waits already
    # one service closed for today (it opens tomorrow), one switched off
    server.sql(
        "UPDATE services SET schedule = ? WHERE branch_id = ? AND id = 'permits'",
        [_closed_today_open_tomorrow(), branch],
    )
    server.sql("UPDATE services SET is_open = 0 WHERE branch_id = ? AND id = 'advice'", [branch])
    phone = browser.new_context(locale="fi-FI", viewport={"width": 360, "height": 740})
    phone.add_init_script(WATCH_VIOLATIONS)
    page = phone.new_page()
    page.goto(f"{server.url}/join/{branch}")
    assert page.evaluate("window.violations") == [], "the page keeps the pages' CSP"
    assert page.locator("html").get_attribute("lang") == "fi"
    assert page.locator("h1").inner_text() == "Jonota"
    assert page.locator("#q-payments").inner_text().startswith("Jonottajia: 1")
    closed = page.locator("li.closed")
    assert closed.count() == 2 and page.get_by_role("button").count() == 1
    assert "Suljettu nyt · Avautuu " in closed.first.inner_text()
    page.screenshot(path=str(shots / "join-page-fi.png"), full_page=True)
    failing = accessible_at_double_text(page, "joining page")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Join the queue"
    page.screenshot(path=str(shots / "join-page-en.png"), full_page=True)
    failing |= accessible_at_double_text(page, "joining page, English")
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())

    page.get_by_role("button", name="Payments").click()
    page.wait_for_url("**/t/*")
    number = page.locator("h1.number").inner_text()
    assert number.startswith("A")
    assert page.locator("#position").inner_text() == "2"
    page.screenshot(path=str(shots / "join-ticket.png"))
    assert server.call_next("3", "payments", branch=branch).endswith("to counter 3")
    assert server.call_next("4", "payments", branch=branch) == f"{number} to counter 4"
    page.locator("#status").get_by_text("Please go to counter 4").wait_for(timeout=20000)

    # back on the joining page, the phone's number is there; a second tap opens it
    page.goto(f"{server.url}/join/{branch}?lang=en")
    page.get_by_role("link", name=f"Your number {number}: follow your turn").wait_for()
    page.get_by_role("button", name="Payments").click()
    page.wait_for_url("**/t/*")
    assert page.locator("h1.number").inner_text() == number
    assert server.sql(
        "SELECT COUNT(*) FROM tickets WHERE branch_id = ? AND origin = 'remote'", [branch]
    ) == [(1,)]


def test_a_manager_switches_joining_on_and_off_and_finds_the_poster(browser, own_branch):
    server, branch = own_branch.server, own_branch.id
    add_staff(server, own_branch.name("maria"), "1", role="manager", branch=branch)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(own_branch.name("maria"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{server.url}/console/manage")
    switch = page.get_by_label("Customers may join the queue from their phones")
    assert switch.is_checked(), "the demo branch has it on"
    switch.uncheck()
    page.get_by_role("button", name="Save branch").click()
    page.get_by_text("Branch saved").wait_for()
    assert server.sql("SELECT remote_join FROM branches WHERE id = ?", [branch]) == [(0,)]
    assert not page.get_by_label("Customers may join the queue from their phones").is_checked()
    phone = browser.new_page()
    phone.goto(f"{server.url}/join/{branch}?lang=en")
    assert phone.locator("#join-off").is_visible()
    assert phone.get_by_role("button").count() == 0

    page.get_by_label("Customers may join the queue from their phones").check()
    page.get_by_role("button", name="Save branch").click()
    page.get_by_text("Branch saved").wait_for()
    assert server.sql("SELECT remote_join FROM branches WHERE id = ?", [branch]) == [(1,)]
    page.get_by_role("link", name="Poster for joining from a phone (print it)").click()
    page.wait_for_url(f"**/join/{branch}/poster")
    assert page.locator(".poster-url").inner_text() == f"{server.url}/join/{branch}"
