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
