"""The page behind the QR code, in real headless Chromium: opened from the QR
code decoded off a printed ticket, updated live when a counter calls it, left
with a confirmation, switched to another language."""

from __future__ import annotations

import sqlite3

from server.storage import Storage
from tests.web import DOCS, print_ticket


def test_the_qr_code_opens_a_live_ticket_that_follows_the_queue(browser, branch, tmp_path):
    server, kiosk_dir = branch
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})  # a small phone
    page.goto(url)
    assert page.locator("h1.number").inner_text() == "A001"
    assert page.locator("#status").inner_text() == "Odottaa"
    assert page.locator("#position").inner_text() == "1"
    page.screenshot(path=str(DOCS / "ticket-page.png"))

    assert server.cli("call-next", "--branch", "demo", "--counter", "3") == "A001 to counter 3"
    page.locator("#status").get_by_text("Tule palvelupisteeseen 3").wait_for(timeout=20000)
    assert page.locator("#leave").is_hidden() and page.locator("#queue").is_hidden()

    page.get_by_role("link", name="English").click()
    assert page.locator("#status").inner_text() == "Please go to counter 3"
    assert page.locator("html").get_attribute("lang") == "en"


def test_leaving_the_queue_asks_first_then_cancels(browser, branch, tmp_path):
    server, kiosk_dir = branch
    url = print_ticket(server, kiosk_dir, "permits", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(url)
    page.get_by_role("button", name="Poistun jonosta").click()
    page.get_by_role("button", name="En, jään jonoon").click()  # changed my mind
    assert page.locator("#status").inner_text() == "Odottaa"
    page.get_by_role("button", name="Poistun jonosta").click()
    page.get_by_role("button", name="Kyllä, poistun").click()
    page.locator("#status").get_by_text("Poistuit jonosta").wait_for(timeout=10000)
    with sqlite3.connect(server.db) as db:
        assert db.execute("SELECT status FROM tickets").fetchone()[0] == "cancelled"
    assert Storage(server.db).call_next("demo", "1") is None, "a cancelled ticket is never called"


def test_an_unknown_ticket_page_is_polite_and_a_bad_one_reveals_nothing(browser, branch):
    server, _ = branch
    page = browser.new_page()
    response = page.goto(f"{server.url}/t/{'Q' * 22}")
    assert response.status == 200 and "on its way" in page.content()
    response = page.goto(f"{server.url}/t/<script>alert(1)</script>")
    assert response.status == 404 and "<script>alert" not in page.content()
