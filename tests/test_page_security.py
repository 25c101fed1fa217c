"""The strict Content Security Policy leaves every page working, in real headless
Chromium: the ticket page, the pending page, the staff console and the
management page run their scripts and styles (files under /static) without a
single violation, and no page can be framed by another site."""

from __future__ import annotations

import pytest

from server import branch_file
from server.staff import Staff
from server.storage import Storage
from sync import protocol
from tests.server_data import DEMO, batch, ticket, today
from tests.server_process import Server
from tests.web import PASSWORD

WATCH_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, server_database):
    """The demo branch with one delivered ticket and a manager, on a real server."""
    directory = tmp_path_factory.mktemp("pages")
    db = server_database.new(directory)
    store = Storage(db)
    store.put_branch(*branch_file.load(DEMO))
    Staff(store).add("demo", "maija", PASSWORD, "1", [], "manager")
    kiosk = store.kiosk_for_token(store.pair(store.new_pairing_code("demo"), "door").token)
    day = today(store)
    store.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    store.ingest(kiosk, batch(ticket(1, day=day, mono=1), mono=2))
    store.database.dispose()
    server = Server(db, logs=directory)
    yield server
    server.stop()


def test_every_page_works_under_the_content_security_policy(browser, served):
    context = browser.new_context()
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text else None)
    seen: dict[str, list[str]] = {}

    page.goto(f"{served.url}/t/token-{1:016d}?lang=en")
    page.locator("#status").wait_for()
    assert page.evaluate("getComputedStyle(document.body).fontFamily"), "ticket.css applied"
    page.get_by_role("button", name="I'm leaving the queue").click()  # ticket.js at work
    page.get_by_role("button", name="No, stay").click()
    seen["ticket"] = page.evaluate("window.violations")

    page.goto(f"{served.url}/t/{'Q' * 22}?lang=en")  # not here yet: pending.js watches
    seen["pending"] = page.evaluate("window.violations")

    page.goto(f"{served.url}/console")
    page.get_by_label("Username").fill("maija")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Call next").wait_for()
    seen["console"] = page.evaluate("window.violations")

    page.goto(f"{served.url}/console/manage")
    page.get_by_role("heading", name="Kiosks").wait_for()
    seen["manage"] = page.evaluate("window.violations")

    assert all(not v for v in seen.values()), seen
    assert not refused, refused


def test_no_page_can_be_framed_by_another_site(browser, served):
    page = browser.new_page()
    page.set_content(
        f'<iframe id="f" onload="this.dataset.loaded = 1" src="{served.url}/t/token-{1:016d}">'
    )
    page.locator("#f[data-loaded]").wait_for(state="attached")  # loaded, or refused
    framed = page.frame_locator("#f").locator("#status")
    assert framed.count() == 0, "the ticket page rendered inside another page"
