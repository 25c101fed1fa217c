"""The ticket page and the counter page in headless Chromium, live: a call
shows at once over the stream (the poll blocked, the page never reloaded),
and a page whose stream is blocked falls back to polling."""

from __future__ import annotations

import re

from tests.web import PASSWORD, add_staff, print_ticket

# the browser's side of the stream; tests/test_live.py runs the channel on both
SERVER_DATABASES = ("sqlite",)

STREAM = re.compile(r".*/api/v1/tickets/[^/?]+/events.*")
POLL = re.compile(r".*/api/v1/tickets/[^/?]+\?.*")


def test_a_call_shows_on_the_ticket_page_at_once_over_the_stream(
    browser, own_branch, tmp_path, shots
):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    polls = []
    page.route(POLL, lambda route: (polls.append(route.request.url), route.abort()))
    with page.expect_response(STREAM):
        page.goto(f"{url}?lang=en")
    page.evaluate("window.notReloaded = true")
    assert page.locator("#status").inner_text() == "Waiting"

    assert server.call_next("3", branch=branch) == "A001 to counter 3"
    # well within the 5 s poll interval, and the poll could not have told it anyway
    page.locator("#status").get_by_text("Please go to counter 3").wait_for(timeout=4000)
    assert page.evaluate("window.notReloaded") is True, "the page was not reloaded"
    assert polls == [], "nothing was polled while the stream was up"
    assert page.locator("#queue").is_hidden()
    page.screenshot(path=str(shots / "ticket-page-live.png"))


def test_a_ticket_page_whose_stream_is_blocked_polls_instead(browser, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page()
    blocked = []
    page.route(STREAM, lambda route: (blocked.append(route.request.url), route.abort()))
    page.goto(f"{url}?lang=en")
    assert page.locator("#status").inner_text() == "Waiting"
    server.call_next("7", branch=branch)
    page.locator("#status").get_by_text("Please go to counter 7").wait_for(timeout=12000)
    assert blocked, "the page tried the stream first"


def test_the_counter_page_follows_its_branch_live(browser, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    ville = own_branch.name("ville")
    add_staff(server, ville, "2", branch=branch)
    print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page()
    page.goto(f"{server.url}/console/login")
    page.fill("#username", ville)
    page.fill("#password", PASSWORD)
    with page.expect_response(re.compile(r".*/console/events")):
        page.get_by_role("button", name="Log in").click()
    cell = page.locator('td[data-service="payments"]')
    assert cell.inner_text() == "1"
    print_ticket(server, kiosk_dir, "payments", tmp_path)  # a second customer at the kiosk
    page.locator('td[data-service="payments"]', has_text="2").wait_for(timeout=5000)
    server.call_next("2", branch=branch)  # this counter, from a script
    page.locator("#current", has_text="A001").wait_for(timeout=5000)
    assert page.locator('td[data-service="payments"]').inner_text() == "1"
