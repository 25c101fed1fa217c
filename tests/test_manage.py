"""Management pages in real headless Chromium: services with opening hours that
reach the kiosk, kiosks (pairing, rename, revoke, health), staff accounts; and
the refusals: wrong role, no CSRF, oversized and hostile input."""

from __future__ import annotations

import json
import subprocess
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from server import branch_file
from sync import clock, devices, state, tickets
from sync.schedule import Availability
from tests.server_process import BIN, Server, run, sync_once
from tests.web import PASSWORD, add_staff


@dataclass
class Managed:
    """A test's own branch on the module's server and its manager."""

    server: Server
    kiosk_dir: Path
    branch: str
    manager: str  # her username

    def __iter__(self):  # server, kiosk_dir = managed
        return iter((self.server, self.kiosk_dir))


@pytest.fixture
def managed(own_branch) -> Managed:
    maria = own_branch.name("maria")
    out = add_staff(own_branch.server, maria, "1", role="manager", branch=own_branch.id)
    assert out == f"manager {maria} at counter 1"
    return Managed(own_branch.server, own_branch.kiosk_dir, own_branch.id, maria)


def log_in(page, server, username, password=PASSWORD):
    page.goto(f"{server.url}/console")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def services_in(server, branch: str) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in server.sql(
            "SELECT id, prefix, names, schedule, daily_cap, priority, is_open "
            "FROM services WHERE listed = 1 AND branch_id = ?",
            [branch],
        )
    }


def fill_service(page, **fields: str) -> None:
    for label, value in fields.items():
        page.locator(f"[name={label}]").fill(value)


@pytest.mark.screenshot
def test_a_manager_adds_a_service_with_hours_that_the_kiosk_keeps(
    browser, managed, tmp_path, shots
):
    server, kiosk_dir = managed
    page = browser.new_page()
    log_in(page, server, managed.manager)
    page.get_by_role("link", name="Manage").click()
    page.get_by_role("link", name="Add a service").click()
    fill_service(
        page, id="pensions", prefix="d", name_en="Pensions", name_fi="Eläkkeet", text_fi="Ota kela"
    )
    page.get_by_label("Open all day, every day").uncheck()
    page.screenshot(path=str(shots / "console-service.png"), full_page=True)
    for day in ("mon", "tue", "wed", "thu", "fri"):
        fill_service(page, **{f"hours_{day}": "08:00-12:00, 13:00-16:00"})
    fill_service(
        page,
        hours_sat="10:00 - 14:00",
        exceptions="2026-12-24 08:00-11:00\n2026-12-25 closed",
        last_ticket="15",
        daily_cap="50",
        priority="2",
    )
    page.get_by_role("button", name="Save service").click()
    assert "Service pensions saved" in page.locator(".flash").inner_text()
    row = page.get_by_role("row").filter(has_text="Pensions")
    assert "Mon 08:00-12:00 13:00-16:00" in row.inner_text()
    assert "last ticket 15 min" in row.inner_text()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(shots / "console-manage.png"), full_page=True)

    stored = services_in(server, managed.branch)["pensions"]
    assert stored[0] == "D", "prefix upper-cased"
    assert json.loads(stored[1]) == {"en": "Pensions", "fi": "Eläkkeet"}
    hours = json.loads(stored[2])
    assert hours["hours"]["sat"] == ["10:00-14:00"] and "sun" not in hours["hours"]
    assert hours["exceptions"] == {"2026-12-24": ["08:00-11:00"], "2026-12-25": []}
    assert stored[3:] == (50, 2, 1)

    # the same branch as TOML, for automation: it reads back to what is stored
    exported = server.cli("branch", "--export", managed.branch)
    again = branch_file.parse(tomllib.loads(exported))
    pensions = next(s for s in again[1] if s["id"] == "pensions")
    assert pensions["schedule"] == hours and pensions["daily_cap"] == 50

    # the kiosk takes it at its next sync and applies it itself, offline too
    sync_once(kiosk_dir)
    db = state.connect(kiosk_dir / "state.db")
    helsinki = ZoneInfo("Europe/Helsinki")
    sunday = datetime(2026, 11, 29, 10, tzinfo=helsinki).astimezone(UTC)
    monday_lunch = datetime(2026, 11, 23, 12, 30, tzinfo=helsinki).astimezone(UTC)
    christmas = datetime(2026, 12, 25, 10, tzinfo=helsinki).astimezone(UTC)
    assert tickets.availability(db, "pensions", sunday) == Availability("closed_today")
    assert tickets.availability(db, "pensions", monday_lunch) == Availability("later", "13:00")
    assert tickets.availability(db, "pensions", christmas) == Availability("closed_today")
    # issuing goes by the server's time of this boot (a wall clock that
    # disagrees is not believed), so now: a ticket exactly when the hours allow
    now = clock.read(db).moment
    if tickets.availability(db, "pensions", now).is_open:
        assert tickets.issue_ticket(db, "pensions", language="fi").service_id == "pensions"
    else:
        with pytest.raises(tickets.ServiceClosed):
            tickets.issue_ticket(db, "pensions", language="fi")
    db.close()

    # switching a service off reaches the kiosk as "closed"
    page.get_by_role("link", name="Pensions").click()
    page.get_by_label("Open (untick").uncheck()
    page.get_by_role("button", name="Save service").click()
    sync_once(kiosk_dir)
    db = state.connect(kiosk_dir / "state.db")
    assert tickets.availability(db, "pensions", monday_lunch) == Availability("closed")
    db.close()


def test_a_bad_service_form_comes_back_with_what_was_typed(browser, managed):
    server, _ = managed
    before = services_in(server, managed.branch)
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, server, managed.manager)
    page.goto(f"{server.url}/console/manage/services/new")
    hostile = '<script>alert("x")</script> Ääkköset 🎫'
    fill_service(page, id="pensions", prefix="D", name_en=hostile)
    page.get_by_label("Open all day, every day").uncheck()
    fill_service(page, hours_mon="08:00-12:00, 11:00-13:00")
    page.get_by_role("button", name="Save service").click()
    assert "overlap" in page.locator("#form-error").inner_text()
    assert page.locator("[name=name_en]").input_value() == hostile, "nothing typed is lost"
    assert page.locator("[name=hours_mon]").input_value() == "08:00-12:00, 11:00-13:00"
    assert services_in(server, managed.branch) == before

    for field, value, message in [
        ("prefix", "A", "used by 'payments'"),
        ("prefix", "D1", "1 to 3 letters"),
        ("daily_cap", "many", "daily cap: 'many' is not a number"),
        ("exceptions", "christmas closed", "not a date"),
        ("id", "Big Id", "id must be lower-case"),
    ]:
        page.goto(f"{server.url}/console/manage/services/new")
        fill_service(page, id="pensions", prefix="D", name_en="Pensions")
        fill_service(page, **{field: value})
        page.get_by_role("button", name="Save service").click()
        assert message in page.locator("#form-error").inner_text(), field
    assert services_in(server, managed.branch) == before

    # hostile text is stored as text and shown as text
    page.goto(f"{server.url}/console/manage/services/new")
    fill_service(page, id="pensions", prefix="D", name_en=hostile)
    page.get_by_role("button", name="Save service").click()
    assert hostile in page.get_by_role("row").filter(has_text="Ääkköset").inner_text()
    assert dialogs == [], "no script ran"
    config = requests.get(
        f"{server.url}/api/v1/branches/{managed.branch}/queue",
        headers={"Authorization": f"Bearer {server.display_token(branch=managed.branch)}"},
        timeout=5,
    )
    assert config.status_code == 200


def test_only_managers_with_a_valid_form_change_anything(browser, managed):
    server, _ = managed
    add_staff(server, "olli", "2", branch=managed.branch)  # the module's only olli
    before = services_in(server, managed.branch)
    with requests.Session() as web:
        assert web.get(f"{server.url}/console/manage", timeout=5).url.endswith("/console/login")
        web.post(
            f"{server.url}/console/login",
            data={"username": "olli", "password": PASSWORD},
            timeout=5,
        )
        staff_page = web.get(f"{server.url}/console/manage", timeout=5)
        assert staff_page.status_code == 403 and "Managers only" in staff_page.text
        assert "Manage" not in web.get(f"{server.url}/console", timeout=5).text
        post = web.post(
            f"{server.url}/console/manage/services",
            data={"csrf": "x", "id": "evil", "prefix": "E", "name_en": "Evil"},
            timeout=5,
        )
        assert post.status_code == 403

    with requests.Session() as web:
        web.post(
            f"{server.url}/console/login",
            data={"username": managed.manager, "password": PASSWORD},
            timeout=5,
        )
        fields = {"id": "evil", "prefix": "E", "name_en": "Evil", "open": "on"}
        no_csrf = web.post(f"{server.url}/console/manage/services", data=fields, timeout=5)
        assert no_csrf.status_code == 403 and "stale or forged" in no_csrf.text
        forged = web.post(
            f"{server.url}/console/manage/services", data=fields | {"csrf": "0" * 32}, timeout=5
        )
        assert forged.status_code == 403
        huge = web.post(
            f"{server.url}/console/manage/services",
            data=fields | {"csrf": "x", "name_en": "x" * 5000},
            timeout=5,
        )
        assert huge.status_code == 413
        many = web.post(
            f"{server.url}/console/manage/services",
            data={f"f{i}": "x" for i in range(500)},
            timeout=5,
        )
        assert many.status_code == 413
        for path in ("/console/manage/kiosks/x/revoke", "/console/manage/staff/olli/remove"):
            assert web.post(f"{server.url}{path}", data={}, timeout=5).status_code == 403
    assert services_in(server, managed.branch) == before
    assert server.sql("SELECT COUNT(*) FROM staff WHERE branch_id = ?", [managed.branch]) == [(2,)]
    assert server.sql(
        "SELECT COUNT(*) FROM kiosks WHERE revoked_at IS NULL AND branch_id = ?", [managed.branch]
    )[0][0]


def test_kiosks_pair_show_their_health_get_renamed_and_revoked(browser, managed, tmp_path):
    server, kiosk_dir = managed
    db = state.connect(kiosk_dir / "state.db")
    devices.record(db, "printer", "paper_near_end")
    devices.set_out_of_order(db, True)
    db.close()
    sync_once(kiosk_dir)

    page = browser.new_page()
    log_in(page, server, managed.manager)
    page.goto(f"{server.url}/console/manage")
    page.get_by_role("region", name="Kiosks").get_by_role("button", name="New pairing code").click()
    code = page.locator("#pairing-code").inner_text()
    assert len(code) == 8
    second = tmp_path / "second"
    run(
        "vuoro-sync",
        "--state-dir",
        str(second),
        "pair",
        "--server",
        server.url,
        "--code",
        code,
        "--name",
        "lobby",
    )
    sync_once(second)
    page.goto(f"{server.url}/console/manage")
    door = page.get_by_role("row").filter(has_text="door")
    assert "paper near end" in door.inner_text()
    assert "online" in door.inner_text() and "OUT OF ORDER" in door.inner_text()
    assert "alarm" in door.get_attribute("class"), "a paper alarm stands out"
    lobby = page.get_by_role("row").filter(has_text="lobby")
    assert "online" in lobby.inner_text() and "0.1.0" in lobby.inner_text()

    lobby.get_by_label("New name for lobby").fill("Lobby, by the lifts")
    lobby.get_by_role("button", name="Rename").click()
    assert "Kiosk renamed" in page.locator(".flash").inner_text()
    assert "Lobby, by the lifts" in server.cli("kiosks", "--branch", managed.branch)

    page.on("dialog", lambda d: d.accept())
    page.get_by_role("row").filter(has_text="door").get_by_role("button", name="Reboot").click()
    assert "reboots at its next heartbeat" in page.locator(".flash").inner_text()
    assert server.sql(
        "SELECT kind FROM commands JOIN kiosks ON kiosks.id = commands.kiosk_id "
        "WHERE commands.delivered_at IS NULL AND kiosks.branch_id = ?",
        [managed.branch],
    ) == [("reboot",)]
    page.get_by_role("row").filter(has_text="Lobby, by the lifts").get_by_role(
        "button", name="Revoke"
    ).click()
    assert "Kiosk revoked" in page.locator(".flash").inner_text()
    refused = subprocess.run(
        [str(BIN / "vuoro-sync"), "--state-dir", str(second), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "revoked" in refused.stderr


def test_a_manager_adds_and_removes_staff(browser, managed):
    server, _ = managed
    page = browser.new_page()
    log_in(page, server, managed.manager)
    page.goto(f"{server.url}/console/manage")
    fill_service(page, username="Pekka", password="short", counter="7", services="payments")
    page.locator("[name=password]").evaluate("e => e.removeAttribute('minlength')")
    page.get_by_role("button", name="Save staff member").click()
    assert "10 to 200 characters" in page.locator(".error").inner_text()
    assert page.locator("[name=username]").input_value() == "Pekka", "kept, the password not"
    fill_service(page, password="a much longer secret", counter="7", services="payments")
    page.get_by_role("button", name="Save staff member").click()
    assert "Staff pekka saved" in page.locator(".flash").inner_text()

    other = browser.new_context().new_page()
    log_in(other, server, "pekka", "a much longer secret")
    assert "Counter 7" in other.locator("header").inner_text()

    page.on("dialog", lambda d: d.accept())
    page.get_by_role("row").filter(has_text="pekka").get_by_role("button", name="Remove").click()
    assert "Staff pekka removed" in page.locator(".flash").inner_text()
    other.reload()
    assert other.url.endswith("/console/login"), "the removed account's session ended"
    assert page.get_by_role("row").filter(has_text="maria").get_by_role("button").count() == 0


def test_a_ticket_no_day_could_take_is_shown_and_placed_by_a_manager(browser, managed, monkeypatch):
    """A kiosk unsure of the date restarted before sending: the server parks the
    ticket, the management page shows it with the kiosk's clock and problems,
    and one click puts it at the end of today's queue."""
    server, kiosk_dir = managed
    monkeypatch.setenv("VUORO_CLOCK_SYNCED", "0")
    db = state.connect(kiosk_dir / "state.db")
    db.execute("DELETE FROM config WHERE key = 'server_clock'")  # a new boot, no NTP yet
    ticket = tickets.issue_ticket(db, "payments", language="fi")
    tickets.mark_handed(db, ticket.id)
    tickets.mark_printed(db, ticket.id)
    db.execute("UPDATE tickets SET boot_id = 'an-earlier-boot' WHERE id = ?", [ticket.id])
    devices.record(db, "state_db", "recovered", "damaged state DB kept as state.db.damaged-x")
    db.close()
    assert ticket.display.startswith("AK") and ticket.time_source == "unsure"
    sync_once(kiosk_dir)

    page = browser.new_page()
    log_in(page, server, managed.manager)
    page.goto(f"{server.url}/console/manage")
    door = page.get_by_role("row").filter(has_text="door")
    assert "Clock unsure: clock not yet synchronised since boot" in door.inner_text()
    assert "state_db recovered" in door.inner_text()
    row = page.get_by_role("row").filter(has_text=ticket.display)
    assert "issue time unknown" in row.inner_text()
    row.get_by_role("button", name="Add to today's queue").click()
    assert "in today's queue" in page.locator(".flash").inner_text()
    assert page.get_by_role("row").filter(has_text=ticket.display).count() == 0
    assert server.call_next("1", branch=managed.branch) == (f"{ticket.display} to counter 1")
