"""The reports page in real Chromium: WCAG 2.1 AA by axe-core at a desk's
width and at 200 % text, the period form and presets by keyboard alone, and
the screenshots README shows (a simulated busy day)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.test_accessibility import violations
from tests.test_reports import HOSTILE_COMMENTS, past_day, simulate_day
from tests.web import PASSWORD, add_staff

SERVER_DATABASES = ("sqlite",)  # the page's markup does not depend on the server's database


@pytest.fixture
def busy(own_branch, tmp_path):
    """A branch with a busy day three days ago, a quieter one before it, a
    manager, and an organisation manager who also sees a second branch."""
    server = own_branch.server
    day = past_day(3)
    # the older day first: counter changes are stored in the order they happen
    simulate_day(server.storage, own_branch.id, past_day(4), count=200, seed=4, overnight=False)
    simulate_day(
        server.storage,
        own_branch.id,
        day,
        count=420,
        seed=3,
        overnight=False,
        comments=(
            "Quick and friendly, thank you!",
            "",
            "Waited almost an hour for permits; only one counter open at lunch.",
            "",
            HOSTILE_COMMENTS[0],
            "Kiitos, hyvä palvelu 😀",
        ),
    )
    second = tmp_path / "second.toml"
    second.write_text(
        own_branch.toml.read_text(encoding="utf-8")
        .replace(f'id = "{own_branch.id}"', f'id = "{own_branch.id}n"', 1)
        .replace('name = "Vuoro demo branch"', 'name = "North branch"', 1),
        encoding="utf-8",
    )
    server.load_branch(second)
    simulate_day(server.storage, f"{own_branch.id}n", day, count=150, seed=5)
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    boss = own_branch.name("boss")
    add_staff(server, boss, "9", role="organisation", branch=own_branch.id)
    server.sql(
        "INSERT INTO staff_branches (staff_id, branch_id) SELECT id, ? FROM staff "
        "WHERE username = ?",
        [f"{own_branch.id}n", boss],
    )
    return server, day, manager, boss


def log_in(page, server, username: str) -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/console")


def test_the_report_pages_meet_wcag_aa_at_a_desk_and_at_double_text(browser, busy):
    server, day, _, boss = busy
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, boss)
    base = f"{server.url}/console/reports"
    kinds = [
        ("day", f"{base}?from={day}&to={day}"),
        ("last 7 days", f"{base}?preset=7d"),
        ("one weekday of 30 days", f"{base}?preset=30d&weekday={day.weekday()}"),
        ("side by side", f"{base}?view=branches&preset=30d"),
        ("bad period", f"{base}?from=2026-05-02&to=2026-05-01"),
    ]
    found = {}
    for name, url in kinds:
        page.goto(url)
        for details in page.locator("details").all():
            details.evaluate("d => d.open = true")
        found[name] = violations(page)
        page.evaluate(
            "document.documentElement.style.setProperty('font-size', '200%', 'important')"
        )
        found[name + " at 200 %"] = violations(page)
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= 1280, f"{name} at 200 % scrolls sideways ({wide} px)"
    failing = {k: v for k, v in found.items() if v}
    assert not failing, "\n\n".join(f"== {k}\n{v}" for k, v in failing.items())


def focused(page) -> str:
    return page.evaluate(
        "(() => { const e = document.activeElement;"
        " return `${e.tagName.toLowerCase()}#${e.id}:${(e.textContent || '').trim()}`; })()"
    )


def tab_to(page, wanted: str, limit: int = 40) -> None:
    """Press Tab until the focused element's description contains ``wanted``."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if wanted in focused(page):
            return
    raise AssertionError(f"Tab never reached {wanted!r}; last {focused(page)!r}")


def test_the_period_form_and_the_presets_work_by_keyboard(browser, busy):
    server, day, manager, _ = busy
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, manager)
    page.goto(f"{server.url}/console/reports")
    tab_to(page, "Yesterday")
    page.keyboard.press("Enter")
    page.wait_for_url("**preset=yesterday**")
    assert page.get_by_role("link", name="Yesterday").get_attribute("aria-current") == "true"

    first = day.strftime("%m%d%Y")
    tab_to(page, "input#from")
    page.keyboard.type(first)
    tab_to(page, "input#to")
    page.keyboard.type(first)
    tab_to(page, "button#:Show")
    page.keyboard.press("Enter")
    page.wait_for_url("**from=**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["from"] == [day.isoformat()] and query["to"] == [day.isoformat()]
    assert page.locator("[data-figure=issued]").inner_text() != "0"
    # the chart's figures open by keyboard too
    tab_to(page, "The chart's figures")
    page.keyboard.press("Enter")
    assert page.locator("#hourly-table").is_visible()
    tab_to(page, "Download as CSV")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert download.value.suggested_filename.endswith(f"-hourly-{day}-{day}.csv")


@pytest.mark.screenshot
def test_screenshots_of_a_busy_day(browser, busy, shots):
    server, day, _, boss = busy
    out = shots / "reports"
    out.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, boss)
    page.goto(f"{server.url}/console/reports?from={day}&to={day}")
    page.screenshot(path=str(out / "reports-day.png"), full_page=True)
    page.locator("svg#hourly, svg[aria-labelledby^=hourly]").screenshot(
        path=str(out / "reports-hourly.png")
    )
    page.goto(f"{server.url}/console/reports?preset=7d")
    page.screenshot(path=str(out / "reports-week.png"), full_page=True)
    page.goto(f"{server.url}/console/reports?preset=30d&weekday={day.weekday()}")
    page.screenshot(path=str(out / "reports-weekday.png"), full_page=True)
    page.goto(f"{server.url}/console/reports?view=branches&preset=7d")
    page.screenshot(path=str(out / "reports-branches.png"), full_page=True)
    assert (out / "reports-day.png").stat().st_size > 10_000
