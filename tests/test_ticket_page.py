"""The page behind the QR code, in real headless Chromium: opened from the QR
code decoded off a printed ticket, updated live when a counter calls it, left
with a confirmation, switched to another language."""

from __future__ import annotations

import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from kiosk import config
from kiosk.paper import ticket_content
from printer.backends import EmulatorBackend
from printer.layout import render_ticket
from server.storage import Storage
from sync import state, tickets
from tests.server_process import DEMO_BRANCH, Server, run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is needed: run `make test` (it installs Debian's chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def branch(tmp_path):
    server = Server(tmp_path / "server" / "server.db")
    demo = tmp_path / "branch.toml"
    demo.write_text(
        DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", server.url),
        encoding="utf-8",
    )
    server.cli("branch", str(demo))
    kiosk_dir = tmp_path / "kiosk"
    server.pair(kiosk_dir, "door")
    yield server, kiosk_dir
    server.stop()


def print_ticket(server: Server, kiosk_dir: Path, service: str, tmp_path: Path) -> str:
    """Issue and print a ticket as the kiosk does; return the URL its QR code holds."""
    settings = config.parse(
        textwrap.dedent(f"""
        [kiosk]
        language = "fi"
        [branch]
        name = "Vuoro demo branch"
        timezone = "Europe/Helsinki"
        [ticket]
        url_template = "{server.url}/t/{{token}}"
        [[services]]
        id = "{service}"
        prefix = "A"
        name = "x"
    """)
    )
    db = state.connect(kiosk_dir / "state.db")
    ticket = tickets.issue_ticket(db, service, language="fi")
    paper = EmulatorBackend(tmp_path / "printed")
    paper.send(
        render_ticket(ticket_content(settings, ticket, tickets.get_service(db, service))),
        ticket.display,
    )
    tickets.mark_printed(db, ticket.id)
    db.close()
    run("vuoro-sync", "--state-dir", str(kiosk_dir), "run", "--once")
    png = sorted((tmp_path / "printed").glob(f"*-{ticket.display}.png"))[-1]
    (code,) = zxingcpp.read_barcodes(Image.open(png))
    return code.text


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
