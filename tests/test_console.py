"""The staff console in real headless Chromium, and its defences."""

from __future__ import annotations

import http.client
import re
import typing
import urllib.parse
from collections.abc import Callable

import pytest
import requests

from server.staff import ADDRESS
from tests.web import PASSWORD, add_staff, print_ticket


@pytest.fixture
def counter(own_branch):
    """Anna at counter 3 of the test's own branch, on the module's server."""
    server = own_branch.server
    anna = own_branch.name("anna")
    out = add_staff(
        server, anna.title(), "3", services=("payments", "permits"), branch=own_branch.id
    )
    assert out == f"staff {anna} at counter 3", "the username is stored lower-case"
    return server, own_branch.kiosk_dir, anna


def log_in(page, server, password=PASSWORD, username="anna"):
    page.goto(f"{server.url}/console")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def ticket_status(server, url: str) -> str:
    """The status of the ticket behind a QR code's URL, as stored."""
    token = url.rsplit("/", 1)[1]
    return server.sql("SELECT status FROM tickets WHERE public_token = ?", [token])[0][0]


def feedback(server, url: str) -> list[tuple]:
    """The feedback stored for the ticket behind a QR code's URL."""
    token = url.rsplit("/", 1)[1]
    return server.sql(
        "SELECT rating, comment FROM feedback JOIN tickets ON tickets.id = feedback.ticket_id "
        "WHERE tickets.public_token = ?",
        [token],
    )


def test_a_counter_calls_serves_and_the_customer_gives_feedback(browser, counter, tmp_path):
    server, kiosk_dir, anna = counter
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    customer = browser.new_page(viewport={"width": 360, "height": 740})
    customer.goto(url)
    staff = browser.new_page()
    log_in(staff, server, username=anna)
    assert "Counter 3" in staff.locator("header").inner_text()
    staff.get_by_role("button", name="Call next").click()
    staff.locator("#current", has_text="A001").wait_for()
    customer.locator("#status").get_by_text("Tule palvelupisteeseen 3").wait_for(timeout=20000)
    staff.get_by_role("button", name="Start").click()
    staff.locator("#current-status", has_text="being served").wait_for()
    staff.get_by_role("button", name="Served").click()
    staff.locator("#current", has_text="—").wait_for()
    customer.get_by_text("Millainen käyntisi oli?").wait_for(timeout=20000)  # offered once
    customer.get_by_label("4/5").check()
    customer.get_by_label("Haluatko lisätä jotain? (vapaaehtoinen)").fill("Nopeaa <b>palvelua</b>")
    customer.get_by_role("button", name="Lähetä").click()
    customer.get_by_text("Kiitos palautteestasi!").wait_for()
    assert customer.locator("form.feedback").count() == 0, "offered once"
    assert feedback(server, url) == [(4, "Nopeaa <b>palvelua</b>")]
    assert ticket_status(server, url) == "served"
    customer.get_by_role("button", name="Poista kommenttini").click()  # the customer's own words
    customer.get_by_text("Kiitos palautteestasi!").wait_for()
    assert customer.get_by_role("button", name="Poista kommenttini").count() == 0
    assert feedback(server, url) == [(4, "")]


def test_a_transfer_keeps_the_original_place_and_the_ticket_names_its_new_queue(
    counter, tmp_path, browser
):
    server, kiosk_dir, anna = counter
    first = print_ticket(server, kiosk_dir, "payments", tmp_path)  # A001, earliest
    print_ticket(server, kiosk_dir, "permits", tmp_path)  # then a permits ticket
    staff = browser.new_page()
    log_in(staff, server, username=anna)
    staff.get_by_role("button", name="Call next").click()
    staff.locator("#current", has_text="A001").wait_for()
    staff.get_by_label("Transfer to").select_option("permits")
    staff.get_by_role("button", name="Transfer").click()
    staff.locator("#current", has_text="—").wait_for()
    staff.get_by_role("button", name="Call next").click()
    staff.locator("#current", has_text="A001").wait_for()  # ahead of the later permits ticket
    ticket = requests.get(f"{first.replace('/t/', '/api/v1/tickets/')}?lang=en", timeout=5).json()
    assert (ticket["number"], ticket["status"], ticket["counter"]) == ("A001", "called", "3")
    assert ticket["service"] == "Permits and licences", "the holder sees the queue it is in now"


def test_forms_without_the_csrf_token_change_nothing(counter, tmp_path):
    server, kiosk_dir, anna = counter
    url = print_ticket(server, kiosk_dir, "payments", tmp_path)
    session = requests.Session()
    session.post(
        f"{server.url}/console/login", data={"username": anna, "password": PASSWORD}, timeout=5
    )
    assert session.cookies.get("vuoro_session")
    for csrf in ("", "forged", "x" * 101):
        reply = session.post(
            f"{server.url}/console/act",
            data={"csrf": csrf, "action": "call"},
            timeout=5,
            allow_redirects=False,
        )
        assert reply.status_code in (403, 422)
    assert ticket_status(server, url) == "waiting"
    anonymous = requests.post(
        f"{server.url}/console/act",
        data={"csrf": "x", "action": "call"},
        timeout=5,
        allow_redirects=False,
    )
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/console/login"


def test_five_wrong_passwords_lock_the_address_out_even_for_the_right_one(counter, address):
    """Five wrong passwords from one address are answered 401, then that
    address is refused (429, with Retry-After), even with the right password."""
    server, _, anna = counter
    here = address()
    statuses = [post_login(server, anna, f"guess{i}", here).status for i in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]
    right = post_login(server, anna, PASSWORD, here)
    assert right.status == 429, "even the right password waits out the lock"
    assert 0 < int(right.headers["retry-after"]) <= ADDRESS.leak_s


class LoginReply(typing.NamedTuple):
    status: int
    body: str
    headers: dict[str, str]  # by lower-case name


def post_login(server, username: str, password: str, source: str) -> LoginReply:
    """A login form sent from ``source``, a loopback address of this machine
    (127.0.0.0/8 is all ours), so the server sees a different address per source."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/console/login",
            urllib.parse.urlencode({"username": username, "password": password}),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        reply = connection.getresponse()
        headers = {name.lower(): value for name, value in reply.getheaders()}
        return LoginReply(reply.status, reply.read().decode(), headers)
    finally:
        connection.close()


@pytest.fixture(scope="module")
def address() -> Callable[[], str]:
    """Loopback addresses no test of the module has used: a test that locks
    one out leaves the others' logins (and the browsers' 127.0.0.1) alone on
    the module's server."""
    hosts = iter(range(10, 255))
    return lambda: f"127.0.0.{next(hosts)}"


def locked_for(body: str) -> int:
    """The wait the 429 page states, in seconds."""
    match = re.search(r"try again in (\d+) s", body)
    assert match, body
    return int(match.group(1))


def let_time_pass(server, seconds: float) -> None:
    """Time passes for the login throttle: every failure is ``seconds`` older
    (other tests' too: older failures free their addresses and names sooner)."""
    server.sql("UPDATE throttle SET updated_at = updated_at - ?", [seconds])


def test_a_failing_address_gets_one_more_try_each_time_a_failure_is_forgotten(counter, address):
    """After the first lock (5 wrong passwords), one failure leaks away per
    minute: an address that keeps failing gets one more try a minute, and the
    page says how long to wait; once the failures are forgotten it is free."""
    server, _, anna = counter
    here = address()
    assert [
        post_login(server, anna, f"guess{i}", here).status for i in range(ADDRESS.capacity)
    ] == [401] * ADDRESS.capacity
    for lock in range(3):
        status, body, _ = post_login(server, anna, "one more guess", here)
        assert status == 429, f"lock {lock}: {status}"
        assert 0 < locked_for(body) <= ADDRESS.leak_s, body
        let_time_pass(server, ADDRESS.leak_s)
        status = post_login(server, anna, f"wrong after lock {lock}", here).status
        assert status == 401, "a wrong password once a failure leaked away is checked, and counted"
    let_time_pass(server, ADDRESS.capacity * ADDRESS.leak_s)
    assert post_login(server, anna, PASSWORD, here).status == 303


def test_wrong_passwords_for_many_names_lock_the_address(counter, address, own_branch):
    """Guessing one password each for many usernames from one address locks
    that address: a real user's right password from it is then refused (429),
    while the same user from another address logs in (the lock is the
    address's, not hers)."""
    server, _, anna = counter
    here, elsewhere = address(), address()
    guessed = [
        post_login(server, own_branch.name(f"user{i}"), "letmein", here).status
        for i in range(ADDRESS.capacity)
    ]
    assert guessed == [401] * ADDRESS.capacity
    status, body, _ = post_login(server, anna, PASSWORD, here)
    assert status == 429 and 0 < locked_for(body) <= ADDRESS.leak_s, (status, body)
    status = post_login(server, anna, PASSWORD, elsewhere).status
    assert status == 303, "another address is not locked, nor is anna's name"


def test_wrong_passwords_for_one_name_do_not_lock_her_out_elsewhere(counter, address, own_branch):
    """Five wrong passwords for anna from one address lock that address, not
    her name: her right password from another address logs her in, as does
    another user from there."""
    server, _, anna = counter
    here, elsewhere = address(), address()
    bert = own_branch.name("bert")
    add_staff(server, bert, "4", services=("payments",), branch=own_branch.id)
    assert [post_login(server, anna, "nope", here).status for _ in range(ADDRESS.capacity)] == [
        401
    ] * ADDRESS.capacity
    assert post_login(server, anna, PASSWORD, elsewhere).status == 303
    assert post_login(server, bert, PASSWORD, elsewhere).status == 303


@pytest.mark.parametrize(
    "data",
    [
        {"username": "a" * 101, "password": "x"},
        {"username": "anna", "password": "p" * 201},
        {"username": "anna"},
        {},
    ],
)
def test_oversized_or_missing_login_fields_are_refused(module_server, data):
    server = module_server
    reply = requests.post(f"{server.url}/console/login", data=data, timeout=5)
    assert reply.status_code == 422


def test_names_with_html_are_escaped_in_the_console(browser, own_branch, tmp_path):
    server = own_branch.server
    hostile = tmp_path / "hostile.toml"
    hostile.write_text(
        own_branch.toml.read_text(encoding="utf-8").replace(
            'en = "Payments"', 'en = "<img src=x onerror=alert(1)>Payments"'
        ),
        encoding="utf-8",
    )
    server.load_branch(hostile)
    anna = own_branch.name("anna")
    add_staff(server, anna, "<b>3</b>", branch=own_branch.id)
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, server, username=anna)
    assert "<img src=x onerror=alert(1)>Payments" in page.locator("#desk").inner_text()
    page.locator("table.waiting caption", has_text="<img src=x onerror=alert(1)>").wait_for()
    assert "<b>3</b>" in page.locator("header").inner_text()
    assert dialogs == []
