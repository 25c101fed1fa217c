"""The counter screen as a receptionist uses it, in real headless Chromium on a
real server (each database): choosing the counter and its services, the
waiting lists following the branch live, calling a chosen ticket with a
reason, no-show only after the grace time and its undo, a break, a number
given at the counter, the console in Finnish, the keyboard shortcuts; and
hostile values in every new field."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests

from server.storage import iso, now
from tests.web import PASSWORD, add_staff, print_ticket


def log_in(page, server, username: str) -> None:
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#screen").wait_for()
    wait_live(page)


def wait_live(page) -> None:
    """The screen's script has drawn the state it was given (lists are its own)."""
    page.locator("#screen[data-live=true]").wait_for(state="attached")


#: Chromium and a real server per test: on SQLite only. The verbs behind the
#: screen (a chosen call, a break, an undo) run on both databases in
#: tests/test_desks.py, where they cost a fraction of this.
SERVER_DATABASES = ("sqlite",)


@pytest.fixture
def desk(own_branch, browser):
    """Anna (payments and permits, counter 3) logged in on her own branch: the page."""
    server = own_branch.server
    anna = own_branch.name("anna")
    add_staff(server, anna, "3", services=("payments", "permits"), branch=own_branch.id)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, anna)
    return page


def act(page, server, **form) -> dict:
    """A counter form sent as the screen's script sends it (its cookies, JSON back)."""
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    reply = page.request.post(
        f"{server.url}/console/act",
        form={"csrf": csrf, **form},
        headers={"Accept": "application/json"},
    )
    assert reply.status in (200, 403, 422), reply.text()
    return {"status": reply.status, **(reply.json() if reply.status != 422 else {})}


def ticket_row(server, branch: str, number: str) -> dict:
    rows = server.sql(
        "SELECT id, status, counter, call_reason, origin, staff_id FROM tickets "
        "WHERE branch_id = ? AND display = ?",
        [branch, number],
    )
    assert len(rows) == 1, rows
    return dict(
        zip(("id", "status", "counter", "reason", "origin", "staff_id"), rows[0], strict=True)
    )


def test_the_counter_and_its_services_are_chosen_after_login(own_branch, browser, tmp_path):
    server, branch = own_branch.server, own_branch.id
    anna, bert = own_branch.name("anna"), own_branch.name("bert")
    add_staff(server, anna, "3", services=("payments", "permits"), branch=branch)
    add_staff(server, bert, "4", services=("payments",), branch=branch)
    print_ticket(server, own_branch.kiosk_dir, "permits", tmp_path)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(page, server, anna)
    desk = page.locator("#desk")
    assert desk.get_attribute("open") is not None, "the first thing after login"
    assert page.get_by_label("Counter", exact=True).input_value() == "3", "the account's own"
    assert (
        page.get_by_label("Payments").is_checked()
        and page.get_by_label("Advice").is_checked() is False
    )
    page.get_by_label("Counter", exact=True).fill("Tiski 7")
    page.get_by_label("Permits and licences").uncheck()
    page.get_by_role("button", name="Work at this counter").click()
    page.locator("#flash", has_text="You work at counter Tiski 7 now.").wait_for()
    wait_live(page)
    assert "Counter Tiski 7" in page.locator("header").inner_text()
    assert page.locator("#desk").get_attribute("open") is None, "chosen: out of the way"
    # permits is not this counter's any more: counted honestly, apart
    page.locator("#summary", has_text="Nobody is waiting for your services.").wait_for()
    assert "1 waiting for other services." in page.locator("#summary").inner_text()
    assert page.locator("#others td[data-service=permits]").inner_text() == "1"
    (session,) = server.sql(
        "SELECT x.counter, x.services FROM sessions x JOIN staff s ON s.id = x.staff_id "
        "WHERE s.username = ?",
        [anna],
    )
    assert (session[0], json.loads(session[1])) == ("Tiski 7", ["payments"])
    log = [
        (c, s, json.loads(v))
        for c, s, v in server.sql(
            "SELECT counter, state, services FROM counter_log WHERE branch_id = ? ORDER BY id",
            [branch],
        )
    ]
    assert log == [
        ("3", "open", ["payments", "permits"]),  # the login opened the usual one
        ("3", "closed", []),
        ("Tiski 7", "open", ["payments"]),
    ]
    # nobody waiting for her services: call next says so, and where they wait
    page.get_by_role("button", name="Call next").click()
    page.locator(
        "#flash", has_text="Nobody is waiting for your services; 1 waiting for others."
    ).wait_for()
    # a second person at the same counter is told so, by name, and so is she
    other = browser.new_page(viewport={"width": 1280, "height": 900})
    log_in(other, server, bert)
    other.get_by_label("Counter", exact=True).fill("Tiski 7")
    other.get_by_role("button", name="Work at this counter").click()
    other.locator("#sharing", has_text=anna).wait_for()
    page.locator("#sharing", has_text=bert).wait_for()  # live, without a reload
    assert "also works at this counter" in page.locator("#sharing").inner_text()
    # the counter is offered to choose next time
    assert "Tiski 7" in [
        o.get_attribute("value") for o in page.locator("#known-counters option").all()
    ]


def test_the_waiting_list_follows_the_kiosk_and_the_other_counters(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    page.locator("#summary", has_text="Nobody is waiting.").wait_for()
    page.get_by_label("Why this customer goes first (required)").fill("half-typed: ä ö å")
    print_ticket(server, kiosk_dir, "payments", tmp_path)  # a customer taps the kiosk
    row = page.locator("table.waiting[data-service=payments] tbody tr", has_text="A001")
    row.wait_for()
    assert "0 min" in row.inner_text()
    print_ticket(server, kiosk_dir, "payments", tmp_path)
    page.locator("td[data-service=payments]", has_text="2").wait_for()
    server.call_next("9", "payments", branch=branch)  # another counter takes A001
    row.wait_for(state="detached")
    page.locator("td[data-service=payments]", has_text="1").wait_for()
    assert page.locator("table.waiting tbody tr").all_inner_texts()[0].startswith("A002")
    reason = page.get_by_label("Why this customer goes first (required)")
    assert reason.input_value() == "half-typed: ä ö å", "the live updates keep what is typed"


def test_a_chosen_ticket_is_called_with_its_reason_recorded(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    for _ in range(3):
        print_ticket(server, kiosk_dir, "payments", tmp_path)
    page.locator("td[data-service=payments]", has_text="3").wait_for()
    page.get_by_role("button", name="Choose A003").click()
    assert (
        page.get_by_label("Call out of turn").input_value()
        == ticket_row(server, branch, "A003")["id"]
    )
    reason = page.get_by_label("Why this customer goes first (required)")
    assert page.evaluate("document.activeElement.id") == "chosen-reason"
    reason.fill("  pyörätuoli\u202e <script>alert(1)</script> \U0001f9d1\u200d\U0001f9bd  ")
    page.get_by_role("button", name="Call this ticket").click()
    page.locator("#current", has_text="A003").wait_for()
    called = ticket_row(server, branch, "A003")
    assert called["status"] == "called" and called["counter"] == "3"
    assert called["reason"] == "pyörätuoli <script>alert(1)</script> \U0001f9d1\u200d\U0001f9bd"
    assert called["staff_id"] is not None
    assert reason.input_value() == "", "sent: the form starts afresh"
    assert ticket_row(server, branch, "A001")["status"] == "waiting", "the others keep their place"


def test_hostile_values_for_a_chosen_call_change_nothing(desk, own_branch, module_server, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    print_ticket(server, kiosk_dir, "payments", tmp_path)
    mine = ticket_row(server, branch, "A001")["id"]
    # another branch's waiting ticket, on the same server
    other = module_server.storage.issue_at_counter(branch, "permits", None)
    server.sql("UPDATE tickets SET branch_id = 'elsewhere' WHERE id = ?", [other["id"]])
    cases = [
        ({"ticket": mine, "reason": ""}, "a reason is needed"),
        ({"ticket": mine, "reason": " \t\n\x00 "}, "a reason is needed"),
        ({"ticket": mine, "reason": "x" * 201}, "at most 200"),
        ({"ticket": other["id"], "reason": "hers"}, "no such waiting ticket"),
        ({"ticket": "' OR 1=1 --", "reason": "sql"}, "no such waiting ticket"),
        ({"ticket": "", "reason": "none"}, "no such waiting ticket"),
    ]
    for form, said in cases:
        answer = act(page, server, action="call_ticket", **form)
        assert answer["ok"] is False and said in answer["message"], (form, answer)
    assert act(page, server, action="call_ticket", ticket=mine, reason="y" * 2001)["status"] == 422
    assert act(page, server, action="call_ticket", ticket="t" * 65, reason="x")["status"] == 422
    forged = page.request.post(
        f"{server.url}/console/act",
        form={"csrf": "forged", "action": "call_ticket", "ticket": mine, "reason": "why"},
        headers={"Accept": "application/json"},
    )
    assert forged.status == 403
    assert ticket_row(server, branch, "A001")["status"] == "waiting"
    anonymous = requests.post(
        f"{server.url}/console/act",
        data={"csrf": "x", "action": "call_ticket", "ticket": mine, "reason": "why"},
        timeout=10,
        allow_redirects=False,
    )
    assert (
        anonymous.status_code == 303 and ticket_row(server, branch, "A001")["status"] == "waiting"
    )


def test_no_show_waits_for_the_grace_time_and_can_be_undone(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    print_ticket(server, kiosk_dir, "payments", tmp_path)
    page.locator("td[data-service=payments]", has_text="1").wait_for()
    page.get_by_role("button", name="Call next").click()
    page.locator("#current", has_text="A001").wait_for()
    no_show = page.get_by_role("button", name="No-show")
    assert no_show.is_disabled(), "not the instant after calling"
    assert "No-show possible in" in page.locator("#no-show-hint").inner_text()
    refused = act(page, server, action="no_show")
    assert refused["ok"] is False and "Too soon for a no-show" in refused["message"]
    assert ticket_row(server, branch, "A001")["status"] == "called"
    # the grace time (30 s by default) has passed: as if called a minute ago
    server.sql(
        "UPDATE tickets SET called_at = ? WHERE branch_id = ? AND display = 'A001'",
        [iso(now() - timedelta(seconds=60)), branch],
    )
    page.reload()
    wait_live(page)
    no_show.click()
    page.locator("#current", has_text="—").wait_for()
    assert ticket_row(server, branch, "A001")["status"] == "no_show"
    undo = page.get_by_role("button", name="Undo no-show of A001")
    undo.click()
    page.locator("#current", has_text="A001").wait_for()
    back = ticket_row(server, branch, "A001")
    assert (back["status"], back["counter"]) == ("called", "3")
    # an undo long after is refused, and says why
    server.sql(
        "UPDATE tickets SET status = 'no_show', finished_at = ? WHERE id = ?",
        [iso(now() - timedelta(seconds=60)), back["id"]],
    )
    late = act(page, server, action="undo")
    assert late["ok"] is False and "the time for it has passed" in late["message"]


def test_a_break_refuses_calls_and_leaves_the_estimates(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    for _ in range(6):
        print_ticket(server, kiosk_dir, "payments", tmp_path)
    # two counters serve payments lately: anna's (3) and counter 4
    assert act(page, server, action="call")["ok"]
    server.call_next("4", "payments", branch=branch)

    def per_person() -> float:
        server.storage.forget_estimates(branch)
        return server.storage.queue(branch)["payments"].wait_per_person_s

    both = per_person()
    page.keyboard.press("p")  # the break's shortcut
    page.locator("#counter-state", has_text="On a break").wait_for()
    assert server.storage.counter_states(branch)["3"]["state"] == "paused"
    assert per_person() == pytest.approx(both * 2, rel=0.01), "one counter fewer serving"
    refused = act(page, server, action="call")
    assert refused["ok"] is False and "You are on a break" in refused["message"]
    waiting = ticket_row(server, branch, "A004")["id"]
    refused = act(page, server, action="call_ticket", ticket=waiting, reason="urgent")
    assert refused["ok"] is False and "You are on a break" in refused["message"]
    page.get_by_role("button", name="Back from break").click()
    page.locator("#counter-state", has_text="Open").wait_for()
    assert per_person() == pytest.approx(both, rel=0.01)
    states = [
        s
        for c, s in server.sql(
            "SELECT counter, state FROM counter_log WHERE branch_id = ? ORDER BY id", [branch]
        )
        if c == "3"
    ]
    assert states == ["open", "paused", "open"]


def test_a_number_given_at_the_counter_joins_the_queue(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    print_ticket(server, kiosk_dir, "permits", tmp_path)  # B001 from the kiosk
    page.locator("td[data-service=permits]", has_text="1").wait_for()
    page.get_by_label("Service", exact=True).select_option("permits")
    page.get_by_role("button", name="Give a number").click()
    page.locator("#issued-number").wait_for()
    number = page.locator("#issued-number").inner_text()
    assert number.startswith("B") and number != "B001"
    assert "printed at door" in page.locator("#issued-text").inner_text()
    given = ticket_row(server, branch, number)
    (sent,) = server.sql(
        "SELECT c.data FROM commands c JOIN kiosks k ON k.id = c.kiosk_id "
        "WHERE k.branch_id = ? AND c.kind = 'print_ticket'",
        [branch],
    )
    assert given["id"] in sent[0], "the kiosk's next heartbeat prints it"
    assert (given["status"], given["origin"]) == ("waiting", "counter")
    row = page.locator("table.waiting[data-service=permits] tbody tr", has_text=number)
    row.wait_for()
    assert "counter ticket" in row.inner_text()
    assert (
        page.locator("table.waiting[data-service=permits] tbody tr")
        .all_inner_texts()[-1]
        .startswith(number)
    ), "at the end of the queue"
    # no kiosk that can print: the number is said or written by hand
    server.sql("UPDATE kiosks SET revoked_at = ? WHERE branch_id = ?", [iso(now()), branch])
    page.get_by_role("button", name="Give a number").click()
    page.locator("#issued-text", has_text="give the number by hand").wait_for()
    for service in ("", "nope", "x" * 64):
        answer = act(page, server, action="issue", service=service)
        assert answer["ok"] is False, service
    assert act(page, server, action="issue", service="x" * 65)["status"] == 422


def test_the_console_in_finnish(desk, own_branch, tmp_path):
    server, kiosk_dir = own_branch.server, own_branch.kiosk_dir
    page = desk
    print_ticket(server, kiosk_dir, "payments", tmp_path)
    page.get_by_label("Language").select_option("fi")
    page.get_by_role("button", name="Work at this counter").click()
    page.get_by_role("button", name="Kutsu seuraava").wait_for()
    assert page.locator("html").get_attribute("lang") == "fi"
    wait_live(page)
    assert "Palvelupiste 3" in page.locator("header").inner_text()
    page.get_by_role("button", name="Kutsu seuraava").click()
    page.locator("#flash", has_text="A001 kutsuttu").wait_for()
    text = page.locator("main").inner_text()
    for english in ("Call next", "Served", "Waiting for your services", "Transfer to"):
        assert english not in text, english
    # the language is the account's: the next login is in Finnish too
    page.context.clear_cookies()
    page.goto(f"{server.url}/console/login")
    page.get_by_label("Username").fill(own_branch.name("anna"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Kutsu seuraava").wait_for()


def test_keyboard_shortcuts_press_the_buttons_but_not_while_typing(desk, own_branch, tmp_path):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    page = desk
    for _ in range(2):
        print_ticket(server, kiosk_dir, "payments", tmp_path)
    page.locator("td[data-service=payments]", has_text="2").wait_for()
    assert page.get_by_role("button", name="Call next").get_attribute("aria-keyshortcuts") == "N"
    reason = page.get_by_label("Why this customer goes first (required)")
    reason.click()
    page.keyboard.type("Not now")  # N, and the rest: typed, not pressed
    assert reason.input_value() == "Not now"
    assert ticket_row(server, branch, "A001")["status"] == "waiting"
    page.locator("h2#queue-title").click()  # out of the field
    page.keyboard.press("n")
    page.locator("#current", has_text="A001").wait_for()
    page.keyboard.press("s")
    page.locator("#current-status", has_text="being served").wait_for()
    page.keyboard.press("d")
    page.locator("#current", has_text="—").wait_for()
    assert ticket_row(server, branch, "A001")["status"] == "served"
    page.keyboard.press("Control+n")  # a modifier: the browser's, not the counter's
    assert ticket_row(server, branch, "A002")["status"] == "waiting"


@pytest.mark.parametrize(
    "form, said",
    [
        ({"counter": "", "services": ["payments"]}, 422),
        ({"counter": "x" * 21, "services": ["payments"]}, "1 to 20 printable"),
        ({"counter": "x" * 101, "services": ["payments"]}, 422),
        ({"counter": "3\x00\x1b[2J", "services": ["payments"]}, "1 to 20 printable"),
        ({"counter": "5", "services": []}, "at least one service"),
        ({"counter": "5", "services": ["nope"]}, "from the list"),
        ({"counter": "5", "services": ["p" * 65]}, "from the list"),
        ({"counter": "5", "services": ["payments"] * 101}, "from the list"),
        ({"counter": "5", "services": ["payments"], "language": "xx"}, "language from the list"),
        ({"counter": "5", "services": ["payments"], "language": "../../etc"}, "language"),
        ({"counter": "5", "services": ["payments"], "language": "f" * 17}, 422),
    ],
)
def test_hostile_counter_choices_are_refused_and_change_nothing(own_branch, form, said):
    server, branch = own_branch.server, own_branch.id
    anna = own_branch.name("anna")
    add_staff(server, anna, "3", services=("payments",), branch=branch)
    web = requests.Session()
    page = web.post(
        f"{server.url}/console/login", data={"username": anna, "password": PASSWORD}, timeout=30
    )
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    reply = web.post(
        f"{server.url}/console/desk",
        data={"csrf": csrf, **form},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    if said == 422:
        assert reply.status_code == 422
    else:
        assert reply.status_code == 200 and reply.json()["ok"] is False
        assert said in reply.json()["message"], reply.json()
    forged = web.post(
        f"{server.url}/console/desk",
        data={"csrf": "forged", "counter": "6", "services": ["payments"]},
        timeout=30,
        allow_redirects=False,
    )
    assert forged.status_code == 403
    assert server.sql(
        "SELECT x.counter FROM sessions x JOIN staff s ON s.id = x.staff_id WHERE s.username = ?",
        [anna],
    ) == [(None,)], "nothing chosen"


def test_a_counter_named_in_unicode_is_kept(own_branch):
    server, branch = own_branch.server, own_branch.id
    anna = own_branch.name("anna")
    add_staff(server, anna, "3", services=("payments",), branch=branch)
    web = requests.Session()
    page = web.post(
        f"{server.url}/console/login", data={"username": anna, "password": PASSWORD}, timeout=30
    )
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    chose = web.post(
        f"{server.url}/console/desk",
        data={"csrf": csrf, "counter": "Työpiste Ö 2", "services": ["advice"]},
        headers={"Accept": "application/json"},
        timeout=30,
    ).json()
    assert chose == {"ok": True, "message": "You work at counter Työpiste Ö 2 now."}
    assert "Työpiste Ö 2" in web.get(f"{server.url}/console", timeout=30).text


@pytest.mark.screenshot
def test_the_counter_screen_in_pictures(own_branch, browser, shots, tmp_path):
    """docs/console/counter-en.png and counter-fi.png (``make screenshots``): a
    called ticket, the lists with a counter ticket and a transferred one,
    another service's count, at a desk's 1280 px."""
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    anna = own_branch.name("anna")
    add_staff(server, anna, "3", services=("payments", "permits"), branch=branch)
    for service in ("payments", "payments", "payments", "permits", "advice", "advice"):
        print_ticket(server, kiosk_dir, service, tmp_path)
    server.storage.issue_at_counter(branch, "permits", None)
    server.sql(
        "UPDATE tickets SET transfers = 1 WHERE branch_id = ? AND display = 'A003'", [branch]
    )
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log_in(page, server, anna)
    page.get_by_role("button", name="Work at this counter").click()
    page.locator("#desk:not([open])").wait_for()
    wait_live(page)
    page.keyboard.press("n")
    page.locator("#current", has_text="A001").wait_for()
    (shots / "console").mkdir(exist_ok=True)
    page.screenshot(path=shots / "console" / "counter-en.png", full_page=True)
    page.get_by_role("link", name="Change counter").click()
    page.get_by_label("Language").select_option("fi")
    page.get_by_role("button", name="Work at this counter").click()
    page.get_by_role("button", name="Kutsu seuraava").wait_for()
    page.locator("#desk:not([open])").wait_for()
    wait_live(page)
    page.screenshot(path=shots / "console" / "counter-fi.png", full_page=True)


def test_logging_out_closes_the_counter_unless_someone_else_works_it(own_branch):
    server, branch = own_branch.server, own_branch.id
    anna, bert = own_branch.name("anna"), own_branch.name("bert")
    add_staff(server, anna, "5", services=("payments",), branch=branch)
    add_staff(server, bert, "5", services=("payments",), branch=branch)

    def logged_in(username: str) -> tuple[requests.Session, str]:
        web = requests.Session()
        page = web.post(
            f"{server.url}/console/login",
            data={"username": username, "password": PASSWORD},
            timeout=30,
        )
        return web, page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    (anna_web, anna_csrf), (bert_web, bert_csrf) = logged_in(anna), logged_in(bert)
    anna_web.post(f"{server.url}/console/logout", data={"csrf": anna_csrf}, timeout=30)
    assert server.storage.counter_states(branch)["5"]["state"] == "open", "bert is still there"
    bert_web.post(f"{server.url}/console/logout", data={"csrf": bert_csrf}, timeout=30)
    assert server.storage.counter_states(branch)["5"]["state"] == "closed"
