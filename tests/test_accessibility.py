"""WCAG 2.1 AA checks by axe-core in real Chromium, on every page a customer or
staff member sees, at a small phone's width and at 200 % text size."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.web import PASSWORD, add_staff, print_ticket

SERVER_DATABASES = ("sqlite",)  # the pages' markup does not depend on the server's database

WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


WIDE_TABLES = {"manage"}  # data tables scroll on a phone; a desk has the room


def sticking_out(page) -> list[str]:
    """Elements reaching past the viewport's right edge (WCAG 1.4.10 reflow)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
                || e.scrollWidth > e.clientWidth + 1
                   && getComputedStyle(e).overflowX === "visible")
            .map(e => `${e.tagName.toLowerCase()}.${e.className}#${e.id}`)"""
    )


def violations(page) -> str:
    result = Axe().run(page, options=WCAG_AA)
    return "" if result.violations_count == 0 else result.generate_report()


@pytest.fixture
def pages(branch, tmp_path):
    """Every page kind: (name, url, needs the manager logged in)."""
    server, kiosk_dir = branch
    add_staff(server, "maria", "1", role="manager")
    ticket = print_ticket(server, kiosk_dir, "payments", tmp_path)
    return server, [
        ("ticket, waiting", ticket, False),
        ("ticket, English", ticket + "?lang=en", False),
        ("ticket on its way", f"{server.url}/t/{'Q' * 22}", False),
        ("not found", f"{server.url}/t/bad", False),
        ("console login", f"{server.url}/console/login", False),
        ("counter", f"{server.url}/console", True),
        ("manage", f"{server.url}/console/manage", True),
        ("service form", f"{server.url}/console/manage/services/payments", True),
        ("category form", f"{server.url}/console/manage/categories/new", True),
    ]


def test_every_page_meets_wcag_aa_on_a_phone_and_at_double_text(browser, pages):
    server, kinds = pages
    page = browser.new_page(viewport={"width": 360, "height": 740})
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill("maria")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    found = {}
    for name, url, _ in kinds:
        page.goto(url)
        found[name] = violations(page)
        # the phone's text scaling; through the CSSOM, which the pages' CSP allows
        page.evaluate(
            "document.documentElement.style.setProperty('font-size', '200%', 'important')"
        )
        scaled = page.evaluate("getComputedStyle(document.documentElement).fontSize")
        assert scaled == "32px", f"{name}: the text did not scale ({scaled})"
        found[name + " at 200 %"] = violations(page)
        if name not in WIDE_TABLES:
            wide = page.evaluate("document.documentElement.scrollWidth")
            assert wide <= 360, f"{name} at 200 % scrolls sideways: {sticking_out(page)}"
    failing = {k: v for k, v in found.items() if v}
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())


def test_the_counter_screen_meets_wcag_aa_at_a_desk_and_at_double_text(browser, branch, tmp_path):
    """The counter screen at 1280 px with all it can show: a called ticket, the
    waiting lists with a counter ticket and a transferred one, other services'
    counts, the counter's choice open, the no-show countdown; at 100 % and 200 %."""
    server, kiosk_dir = branch
    add_staff(server, "tiina", "2", services=("payments", "permits"))
    for service in ("payments", "payments", "permits", "advice"):
        print_ticket(server, kiosk_dir, service, tmp_path)
    server.storage.issue_at_counter("demo", "permits", None)
    server.sql("UPDATE tickets SET transfers = 1 WHERE display = 'A002'")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill("tiina")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Call next").click()
    page.locator("#current", has_text="A001").wait_for()
    page.locator("td.waited").first.wait_for()
    found = {"counter at 1280 px": violations(page)}
    page.evaluate("document.documentElement.style.setProperty('font-size', '200%', 'important')")
    found["counter at 1280 px, 200 %"] = violations(page)
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= 1280, f"the counter at 200 % scrolls sideways: {sticking_out(page)}"
    page.keyboard.press("p")  # on a break: the state and the buttons change
    page.locator("#counter-state", has_text="On a break").wait_for()
    found["counter on a break, 200 %"] = violations(page)
    failing = {k: v for k, v in found.items() if v}
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())
