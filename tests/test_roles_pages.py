"""An organisation manager's management page in real Chromium: creating a
branch with the form, switching to it with the branch picker, giving further
branches to another organisation manager; the page in Finnish; axe-core's
WCAG 2.1 AA at 1280 px and at 200 % text, with the new forms on it."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.web import PASSWORD, add_staff

SERVER_DATABASES = ("sqlite",)  # the pages' markup does not depend on the server's database

WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def violations(page) -> str:
    result = Axe().run(page, options=WCAG_AA)
    return "" if result.violations_count == 0 else result.generate_report()


def log_in(page, server, username: str) -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def double_text(page) -> None:
    page.evaluate("document.documentElement.style.setProperty('font-size', '200%', 'important')")
    assert page.evaluate("getComputedStyle(document.documentElement).fontSize") == "32px"


@pytest.mark.screenshot
def test_an_organisation_manager_creates_a_branch_and_manages_it_in_chromium(
    browser, own_branch, shots
):
    server, home = own_branch.server, own_branch.id
    (shots / "console").mkdir(exist_ok=True)
    mia, ella = own_branch.name("mia"), own_branch.name("ella")
    add_staff(server, mia, "1", role="organisation", branch=home)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, mia)
    page.goto(f"{server.url}/console/manage")
    found = {"manage": violations(page)}

    # a refused form comes back with what was typed, its reason announced
    form = page.get_by_role("region", name="New branch")
    form.get_by_label("Id (a-z").fill("Itä")
    form.get_by_role("button", name="Create branch").click()  # the browser says no
    assert form.get_by_label("Id (a-z").evaluate("e => e.validity.patternMismatch")
    form.get_by_label("Id (a-z").fill(home)  # taken: the server says no
    form.get_by_label("Name").fill("Itäkeskus")
    form.get_by_label("Time zone").select_option("Europe/Tallinn")
    form.get_by_role("button", name="Create branch").click()
    assert "exists already" in page.get_by_role("alert").inner_text()
    found["manage, refused new branch"] = violations(page)
    form = page.get_by_role("region", name="New branch")
    assert form.get_by_label("Name").input_value() == "Itäkeskus"
    assert form.get_by_label("Time zone").input_value() == "Europe/Tallinn"

    east = f"{home}-east"
    form.get_by_label("Id (a-z").fill(east)
    form.get_by_role("button", name="Create branch").click()
    assert f"Branch {east} created" in page.get_by_role("status").first.inner_text()
    # the page now shows the new branch, chosen in the picker
    assert page.get_by_label("Branch you manage").input_value() == east
    assert page.get_by_role("heading", name="Kiosks").is_visible()
    page.get_by_role("region", name="Kiosks").get_by_role("button", name="New pairing code").click()
    assert len(page.locator("#pairing-code").inner_text()) == 8

    # back home with the picker; give a colleague the new branch too
    page.get_by_label("Branch you manage").select_option(home)
    page.get_by_role("button", name="Switch branch").click()
    assert page.get_by_label("Branch you manage").input_value() == home
    staff = page.get_by_role("region", name="Staff")
    staff.get_by_label("Username").fill(ella)
    staff.get_by_label("Password").fill(PASSWORD)
    staff.get_by_label("Counter", exact=True).fill("5")
    staff.get_by_label("Role").select_option("organisation")
    staff.get_by_label(east).check()
    staff.get_by_role("button", name="Save staff member").click()
    assert f"Staff {ella} saved" in page.get_by_role("status").first.inner_text()
    row = page.get_by_role("row").filter(has_text=ella)
    assert "organisation manager" in row.inner_text() and f"also {east}" in row.inner_text()
    page.screenshot(path=str(shots / "console" / "manage-organisation.png"), full_page=True)
    found["manage, organisation"] = violations(page)
    double_text(page)
    found["manage, organisation at 200 %"] = violations(page)

    # in Finnish, chosen on the page
    page.goto(f"{server.url}/console/manage")
    page.get_by_label("My language").select_option("fi")
    page.get_by_role("button", name="Save language").click()
    assert page.locator("html").get_attribute("lang") == "fi"
    assert page.get_by_role("heading", name="Uusi toimipiste").is_visible()
    assert page.get_by_role("heading", name="Palvelut").is_visible()
    found["manage, Finnish"] = violations(page)
    section = page.get_by_role("region", name="Uusi toimipiste")
    section.screenshot(path=str(shots / "console" / "manage-new-branch-fi.png"))
    double_text(page)
    found["manage, Finnish at 200 %"] = violations(page)
    page.goto(f"{server.url}/console/manage/services/new")
    assert page.get_by_role("button", name="Tallenna palvelu").is_visible()
    found["service form, Finnish"] = violations(page)

    failing = {k: v for k, v in found.items() if v}
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())
