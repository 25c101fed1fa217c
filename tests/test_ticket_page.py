"""The page behind the QR code, in real headless Chromium: opened from the QR
code decoded off a printed ticket, updated live when a counter calls it, left
with a confirmation, switched to another language."""

from __future__ import annotations

import json
import re
import typing
from datetime import datetime, timedelta

import pytest
import requests

from server.counter import Counter
from server.i18n import LANGUAGES, STATUS_WORDS
from server.staff import Staff
from server.storage import Storage, iso, now
from sync import protocol, state, tickets
from tests.server_data import paired
from tests.server_process import sync_once
from tests.web import print_ticket

#: Every status the public ticket can have: the protocol's own list, and "parked"
#: (a ticket the server holds for staff to place).
STATUSES = typing.get_args(protocol.PublicTicket.model_fields["status"].annotation)


@pytest.mark.screenshot
def test_the_qr_code_opens_a_live_ticket_that_follows_the_queue(
    browser, own_branch, tmp_path, shots
):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})  # a small phone
    page.goto(url)
    assert page.locator("h1.number").inner_text() == "A001"
    assert page.locator("#status").inner_text() == "Odottaa"
    assert page.locator("#position").inner_text() == "1"
    page.screenshot(path=str(shots / "ticket-page.png"))

    assert server.call_next("3", branch=own_branch.id) == "A001 to counter 3"
    page.locator("#status").get_by_text("Tule palvelupisteeseen 3").wait_for(timeout=20000)
    assert page.locator("#leave").is_hidden() and page.locator("#queue").is_hidden()

    page.get_by_role("link", name="English").click()
    assert page.locator("#status").inner_text() == "Please go to counter 3"
    assert page.locator("html").get_attribute("lang") == "en"


def test_leaving_the_queue_asks_first_then_cancels(browser, own_branch, tmp_path):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    url = print_ticket(server, kiosk_dir, "permits", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(url)
    page.get_by_role("button", name="Poistun jonosta").click()
    page.get_by_role("button", name="En, jään jonoon").click()  # changed my mind
    assert page.locator("#status").inner_text() == "Odottaa"
    page.get_by_role("button", name="Poistun jonosta").click()
    page.get_by_role("button", name="Kyllä, poistun").click()
    page.locator("#status").get_by_text("Poistuit jonosta").wait_for(timeout=10000)
    assert server.sql("SELECT status FROM tickets WHERE branch_id = ?", [own_branch.id]) == [
        ("cancelled",)
    ]
    assert server.storage.call_next(own_branch.id, "1") is None, "a cancelled one is never called"


def test_an_unknown_ticket_page_is_polite_and_a_bad_one_reveals_nothing(browser, own_branch):
    server = own_branch.server
    page = browser.new_page()
    response = page.goto(f"{server.url}/t/{'Q' * 22}")
    assert response.status == 200 and "on its way" in page.content()
    response = page.goto(f"{server.url}/t/<script>alert(1)</script>")
    assert response.status == 404 and "<script>alert" not in page.content()


def test_every_status_is_said_in_words_in_every_language(own_branch, tmp_path):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    assert {"waiting", "called", "serving", "served", "no_show", "cancelled", "void"} <= set(
        STATUSES
    )
    assert set(STATUSES) <= set(STATUS_WORDS)
    said: dict[str, dict[str, str]] = {language: {} for language in LANGUAGES}
    for status in STATUSES:
        server.sql(
            "UPDATE tickets SET status = ?, counter = '3' WHERE branch_id = ?",
            [status, own_branch.id],
        )
        for language in LANGUAGES:
            html = requests.get(f"{url}?lang={language}", timeout=5).text
            assert f'<html lang="{language}">' in html
            shown = re.search(r'<p id="status"[^>]*>(.*?)</p>', html, re.S).group(1).strip()
            assert shown and status not in shown, f"{language}: {status} shown as {shown!r}"
            if status in ("called", "serving"):
                assert "3" in shown, f"{language}: {status} names the counter: {shown!r}"
            words = json.loads(re.search(r'<script[^>]*id="words">(.*?)</script>', html).group(1))
            assert words.get(status), f"{language}: the live page has no words for {status}"
            said[language][status] = shown
    for language, texts in said.items():
        assert len(set(texts.values())) == len(STATUSES), f"{language}: two statuses read alike"
        if language != "en":
            same = [s for s in STATUSES if texts[s] == said["en"][s]]
            assert not same, f"{language} falls back to English for {same}"


def test_a_served_customer_sees_words_and_a_transfer_names_the_new_service(
    browser, own_branch, tmp_path
):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(url)
    assert page.locator(".service").inner_text() == "Maksut"
    staff = Staff(server.storage)
    name = own_branch.name("anna")
    staff.add(own_branch.id, name, "correct horse battery", "3", ["payments", "permits"])
    anna = staff.session(staff.log_in(name, "correct horse battery", "127.0.0.1"))

    assert Counter(staff.storage).act(anna, "call") == "A001 called"
    page.locator("#status").get_by_text("Tule palvelupisteeseen 3").wait_for(timeout=20000)
    assert Counter(staff.storage).act(anna, "transfer", "permits") == "A001 moved to permits"
    page.locator(".service").get_by_text("Luvat ja lisenssit").wait_for(timeout=20000)
    assert page.locator("#status").inner_text() == "Odottaa"
    assert page.locator("h1.number").inner_text() == "A001"
    page.screenshot(path=str(tmp_path / "transferred.png"))

    assert Counter(staff.storage).act(anna, "call") == "A001 called"
    Counter(staff.storage).act(anna, "start")  # at the counter now: "serving", in words
    page.locator("#status").get_by_text("Palvellaan palvelupisteessä 3").wait_for(timeout=20000)
    page.reload()
    assert page.locator("#status").inner_text() == "Palvellaan palvelupisteessä 3"
    assert page.locator(".service").inner_text() == "Luvat ja lisenssit"
    page.get_by_role("link", name="English").click()
    assert page.locator(".service").inner_text() == "Permits and licences"
    api = url.replace("/t/", "/api/v1/tickets/")
    assert requests.get(api, timeout=5).json()["service"] == "Luvat ja lisenssit"
    assert requests.get(f"{api}?lang=sv", timeout=5).json()["service"] == "Tillstånd och licenser"


def test_a_mistyped_link_speaks_the_phone_language_and_then_says_no_such_ticket(
    browser, branch, tmp_path
):
    """(A server of its own: whether a ticket may still arrive depends on every
    kiosk the server knows.)"""
    server, kiosk_dir = branch
    sync_once(kiosk_dir)  # the kiosk is online
    phone = browser.new_context(locale="fi-FI", viewport={"width": 360, "height": 740})
    page = phone.new_page()
    mistyped = f"{server.url}/t/{'Q' * 22}"
    assert page.goto(mistyped).status == 200
    assert page.locator("html").get_attribute("lang") == "fi"
    assert page.locator("h1").inner_text() == "Vuoronumerosi on tulossa"  # it may yet arrive
    # the kiosk reports an empty outbox well after the first look: nothing can
    # still come. Its report is dated at the margin's end rather than waited
    # for (a later first look, as the Swedish phone's below, is not settled by it).
    sync_once(kiosk_dir)
    first_look = datetime.fromisoformat(page.locator("main").get_attribute("data-since"))
    reported = iso(first_look + timedelta(seconds=Storage.ARRIVAL_MARGIN_S))
    server.sql("UPDATE kiosks SET last_seen_at = ?", [reported])
    page.locator("h1").get_by_text("Vuoronumeroa ei löydy").wait_for(timeout=40000)
    assert "Tarkista lipussa oleva osoite" in page.locator("main").inner_text()
    assert page.title() == "Vuoronumeroa ei löydy"
    page.screenshot(path=str(tmp_path / "not-found.png"))

    page.get_by_role("link", name="Eesti").click()  # the switch, as on the ticket page
    assert page.locator("html").get_attribute("lang") == "et"
    assert page.locator("h1").inner_text() == "Sellist piletit pole"
    swedish = browser.new_context(locale="sv-SE").new_page()
    swedish.goto(mistyped)
    assert swedish.locator("h1").inner_text() == "Din kölapp är på väg"


def test_a_ticket_may_still_arrive_until_every_kiosk_reported_an_empty_outbox(storage):
    door, lobby = paired(storage, "door"), paired(storage, "lobby")
    first_look = now() - timedelta(seconds=Storage.ARRIVAL_MARGIN_S + 5)
    assert storage.ticket_may_arrive(first_look), "neither kiosk has reported since"
    storage.heartbeat(door, protocol.Heartbeat(outbox=0))
    assert storage.ticket_may_arrive(first_look), "the lobby kiosk may hold it"
    storage.heartbeat(lobby, protocol.Heartbeat(outbox=2))
    assert storage.ticket_may_arrive(first_look), "the lobby kiosk still has two to send"
    storage.heartbeat(lobby, protocol.Heartbeat(outbox=0))
    assert not storage.ticket_may_arrive(first_look)
    assert storage.ticket_may_arrive(now() - timedelta(seconds=5)), "reported too soon after"
    storage.revoke(lobby["id"])
    storage.heartbeat(door, protocol.Heartbeat(outbox=1))
    assert storage.ticket_may_arrive(first_look)
    with storage.transaction() as db:  # the door kiosk silent for two days
        db.execute(
            "UPDATE kiosks SET last_seen_at = ?, created_at = ?",
            [iso(now() - timedelta(days=2))] * 2,
        )
    assert not storage.ticket_may_arrive(first_look), "revoked or long silent kiosks hold none"


def test_the_pending_page_shows_the_ticket_in_place_when_it_arrives(browser, own_branch):
    """The page of a ticket the kiosk has not delivered yet turns into the live
    ticket once the sync daemon delivers it: the same document (a mark set on
    the page survives, nothing navigates), with no timed reload (no
    `<meta http-equiv="refresh">` in force), and it goes on following the queue."""
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    db = state.connect(kiosk_dir / "state.db")
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_printed(db, ticket.id)
    db.close()
    page = browser.new_page(viewport={"width": 360, "height": 740})
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.goto(f"{server.url}/t/{ticket.public_token}")
    assert page.locator("main[data-watch]").count() == 1, "the pending page, not the ticket"
    assert page.locator("h1.number").count() == 0
    page.evaluate("window.__marker = 1")
    navigations.clear()

    sync_once(kiosk_dir)  # the ticket arrives
    page.locator("h1.number").get_by_text(ticket.display).wait_for(timeout=40000)
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == [], navigations
    assert page.locator('meta[http-equiv="refresh" i]').count() == 0
    assert page.locator("html").get_attribute("lang") == "fi"  # the ticket's language
    assert page.locator("#status").inner_text() == "Odottaa"

    assert server.call_next("3", branch=own_branch.id) == f"{ticket.display} to counter 3"
    page.locator("#status").get_by_text("Tule palvelupisteeseen 3").wait_for(timeout=20000)
    assert page.evaluate("window.__marker") == 1 and navigations == []
