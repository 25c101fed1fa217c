"""Staff accounts against hostile clients: a throttle that cannot lock staff
out, failures that are forgotten and logged, sessions that end when the
password changes, forms other sites cannot send, passwords that mean
something, one ticket per counter, and no names of other branches.

Most tests run against one real server process over a socket (each with its
own usernames and source addresses, 127.0.0.0/8 being all ours); the clock
and the concurrency tests drive the same classes in-process.
"""

from __future__ import annotations

import http.client
import logging
import re
import subprocess
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests

from server import branch_file
from server import staff as staff_module
from server.counter import Counter
from server.staff import ACCOUNT, ADDRESS, LockedOut, Staff
from server.storage import Rejected, Storage, now
from sync import protocol
from tests.server_data import DEMO, batch, paired, ticket, today
from tests.server_process import BIN, DEMO_BRANCH, Server

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    srv = server_database.server(tmp_path_factory.mktemp("staff"))
    srv.load_branch(DEMO_BRANCH)
    yield srv
    srv.stop()


def add(server: Server, username: str, role: str = "staff", password: str = PASSWORD) -> None:
    Staff(server.storage).add("demo", username, password, "1", [], role)


def post_login(
    server: Server, username: str, password: str, source: str, headers: dict | None = None
) -> tuple[int, dict[str, str], str]:
    """The login form sent from ``source`` (a loopback address of this machine)."""
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/console/login",
            urllib.parse.urlencode({"username": username, "password": password}),
            {"Content-Type": "application/x-www-form-urlencoded"} | (headers or {}),
        )
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read().decode()
    finally:
        connection.close()


def logged_in(server: Server, username: str) -> requests.Session:
    web = requests.Session()
    reply = web.post(
        f"{server.url}/console/login",
        data={"username": username, "password": PASSWORD},
        timeout=30,
        allow_redirects=False,
    )
    assert reply.status_code == 303, reply.text
    return web


def still_in(server: Server, web: requests.Session) -> bool:
    reply = web.get(f"{server.url}/console", timeout=30, allow_redirects=False)
    return reply.status_code == 200


def vuoro_server(db, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """The operator's CLI on ``db``, whatever its exit status."""
    return subprocess.run(
        [str(BIN / "vuoro-server"), "--db", str(db), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# -- item 4: a throttle that is no weapon ----------------------------------------


def test_a_spray_from_many_addresses_does_not_lock_the_manager_out(server):
    """Wrong passwords for the manager from eight addresses, three each (far
    more than would lock an account before): her right password from her own
    desk, which has not been failing, still logs her in."""
    add(server, "maria-spray", role="manager")
    for host in range(8):
        for _ in range(3):
            status, _, _ = post_login(server, "maria-spray", "guess123456", f"127.0.4.{10 + host}")
            assert status in (401, 429)  # 429: this address failed, and she is under attack
    status, _, body = post_login(server, "maria-spray", PASSWORD, "127.0.4.200")
    assert status == 303, body


def test_a_failing_address_may_not_keep_guessing_an_account_under_attack(server):
    """Once an account drew many wrong passwords, an address with failures of
    its own is refused without a check (429, Retry-After), right password or
    not: that is what bounds guessing from a botnet. Another account from
    the same address is still checked."""
    add(server, "olli-target")
    add(server, "olli-colleague")
    for host in range(ACCOUNT.capacity):
        assert post_login(server, "olli-target", "guess123456", f"127.0.5.{10 + host}")[0] == 401
    status, headers, body = post_login(server, "olli-target", PASSWORD, "127.0.5.10")
    assert status == 429 and 0 < int(headers["retry-after"]) <= ADDRESS.leak_s, body
    assert post_login(server, "olli-colleague", PASSWORD, "127.0.5.10")[0] == 303
    assert post_login(server, "olli-target", PASSWORD, "127.0.5.99")[0] == 303


class Clock:
    """Wall time for the throttle that tests can move on."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.real_time = time.time

    def time(self) -> float:
        return self.real_time() + self.offset

    def now(self):
        return now() + timedelta(seconds=self.offset)


def test_failures_are_forgotten_over_time(storage, monkeypatch):
    """Five wrong passwords lock the address; two hours later they are
    forgotten: four more wrong ones are just wrong, and the right one works."""
    clock = Clock()
    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(staff_module, "now", clock.now)  # the clock of earlier lock-outs
    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "3", [])
    for _ in range(5):
        assert staff.log_in("anna", "wrong guess 1", "10.0.0.1") == ""
    with pytest.raises(LockedOut):
        staff.log_in("anna", PASSWORD, "10.0.0.1")
    clock.offset += 2 * 3600
    for _ in range(4):
        assert staff.log_in("anna", "wrong guess 2", "10.0.0.1") == ""
    assert staff.session(staff.log_in("anna", PASSWORD, "10.0.0.1")).username == "anna"


def test_failed_logins_and_each_lock_out_are_logged_without_the_password(storage, caplog):
    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "3", [])
    caplog.set_level(logging.INFO, logger="vuoro.server")
    for _ in range(5):
        staff.log_in("anna", "hunter2-secret", "10.0.0.7")
    records = [r for r in caplog.records if r.name.startswith("vuoro.server")]
    failed = [r for r in records if "failed" in r.getMessage()]
    assert len(failed) == 5 and all("anna" in r.getMessage() for r in failed)
    lockouts = [r for r in records if r.levelno == logging.WARNING and "lock-out" in r.getMessage()]
    assert len(lockouts) == 2, [r.getMessage() for r in records]  # the address, the account
    assert all("anna" in r.getMessage() and "10.0.0.7" in r.getMessage() for r in lockouts)
    assert "hunter2" not in caplog.text


# -- item 5: sessions, login CSRF, passwords ---------------------------------------


def test_a_new_password_from_the_cli_ends_the_accounts_sessions_at_once(server):
    add(server, "pekka-cli")
    web = logged_in(server, "pekka-cli")
    assert still_in(server, web)
    server.cli(
        "staff",
        "--branch",
        "demo",
        "--username",
        "pekka-cli",
        "--counter",
        "2",
        stdin="a brand new secret\n",
    )
    assert not still_in(server, web), "the old password's session still works"


def test_a_manager_changing_staff_ends_their_sessions_but_keeps_her_own(server):
    add(server, "maria-boss", role="manager")
    add(server, "sami-clerk")
    clerk = logged_in(server, "sami-clerk")
    boss = logged_in(server, "maria-boss")
    boss_elsewhere = logged_in(server, "maria-boss")
    page = boss.get(f"{server.url}/console/manage", timeout=30)
    for username in ("sami-clerk", "maria-boss"):
        reply = boss.post(
            f"{server.url}/console/manage/staff",
            data={
                "csrf": csrf_of(page.text),
                "username": username,
                "password": "another long secret",
                "counter": "5",
                "services": "",
                "role": "manager" if username == "maria-boss" else "staff",
            },
            timeout=30,
        )
        assert reply.status_code == 200 and "saved" in reply.text, reply.text
    assert not still_in(server, clerk), "the clerk's old session still works"
    assert not still_in(server, boss_elsewhere), "her session elsewhere still works"
    assert still_in(server, boss), "the manager lost the session she changed it from"


def test_a_forged_logout_keeps_both_the_session_and_its_cookie(server):
    """A logout without the session's CSRF token changes nothing (403): never a
    cookie cleared while the session it names stays valid."""
    add(server, "tiina-logout")
    web = logged_in(server, "tiina-logout")
    forged = web.post(
        f"{server.url}/console/logout", data={"csrf": "forged"}, timeout=30, allow_redirects=False
    )
    assert forged.status_code == 403
    assert "vuoro_session" not in forged.headers.get("set-cookie", "")
    assert still_in(server, web)
    csrf = csrf_of(web.get(f"{server.url}/console", timeout=30).text)
    token = web.cookies.get("vuoro_session")
    real = web.post(
        f"{server.url}/console/logout", data={"csrf": csrf}, timeout=30, allow_redirects=False
    )
    assert real.status_code == 303 and not web.cookies.get("vuoro_session")
    web.cookies.set("vuoro_session", token, path="/console")
    assert not still_in(server, web), "the ended session came back"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_login_form_sent_from_another_site_is_refused(server, headers):
    add(server, "ville-csrf")
    status, reply_headers, body = post_login(
        server, "ville-csrf", PASSWORD, "127.0.6.1", headers=headers
    )
    assert status == 403 and "another site" in body
    assert "vuoro_session" not in reply_headers.get("set-cookie", "")


def test_a_login_form_from_this_site_is_taken(server):
    add(server, "ville-same")
    same = {"Origin": server.url, "Sec-Fetch-Site": "same-origin"}
    assert post_login(server, "ville-same", PASSWORD, "127.0.6.2", headers=same)[0] == 303


def test_a_real_browser_on_another_site_cannot_log_staff_in(server, browser):
    """Another site's page posts the login form (with the attacker's own
    password, to log the victim's browser into the attacker's account)."""
    add(server, "attacker")
    page = browser.new_page()
    page.set_content(
        f'<form method="post" action="{server.url}/console/login">'
        '<input name="username" value="attacker">'
        f'<input name="password" value="{PASSWORD}"><button>go</button></form>'
    )
    with page.expect_navigation():
        page.click("button")
    assert "another site" in page.content()
    assert not [c for c in page.context.cookies() if c["name"] == "vuoro_session"]


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (" " * 10, "only spaces"),
        ("\t" * 12, "only spaces"),
        ("aaaaaaaaaa", "5 different"),
        ("abababababab", "5 different"),
        ("1234567890", "run of keys"),
        ("qwertyuiop", "run of keys"),
        ("my name is anna-weak", "username"),
        ("short", "10 to 200"),
    ],
)
def test_blank_and_trivial_passwords_are_refused_with_the_rule(storage, password, reason):
    with pytest.raises(Rejected, match=reason):
        Staff(storage).add("demo", "anna-weak", password, "3", [])


def test_the_cli_refuses_a_password_of_spaces_and_says_why(server):
    result = vuoro_server(
        server.db,
        "staff",
        "--branch",
        "demo",
        "--username",
        "blank",
        "--counter",
        "1",
        stdin=" " * 10 + "\n",
    )
    assert result.returncode == 2 and "only spaces" in result.stderr
    assert not server.sql("SELECT 1 FROM staff WHERE username = 'blank'")


# -- item 10: the staff form names nobody of another branch ------------------------


def test_a_username_of_another_branch_is_not_revealed(storage, tmp_path):
    other = tmp_path / "other.toml"
    other.write_text(
        DEMO.read_text(encoding="utf-8").replace('id = "demo"', 'id = "north"', 1),
        encoding="utf-8",
    )
    storage.put_branch(*branch_file.load(other))
    staff = Staff(storage)
    staff.add("north", "kalle", PASSWORD, "1", [])
    with pytest.raises(Rejected) as refused:
        staff.add("demo", "kalle", "another long secret", "2", [])
    assert "branch" not in str(refused.value) and "choose another" in str(refused.value)
    assert staff.members("north")[0]["counter"] == "1", "nothing changed"


# -- item 8: one counter, one called ticket ------------------------------------------


def waiting(storage: Storage, count: int) -> None:
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=count))
    storage.ingest(
        kiosk, batch(*(ticket(n, day=day, mono=n) for n in range(1, count + 1)), mono=99)
    )


def test_calls_at_once_from_one_counter_call_one_ticket(storage):
    """Eight presses of "call next" at one counter at the same instant (a
    double click, two tabs): one ticket is called, the others are told so."""
    waiting(storage, 8)
    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "3", [])
    anna = staff.session(staff.log_in("anna", PASSWORD, "10.0.0.1"))
    start, said = threading.Barrier(8), []

    def press() -> None:
        counter = Counter(Storage(storage.target))  # a connection per request, as served
        start.wait()
        said.append(counter.act(anna, "call"))

    presses = [threading.Thread(target=press) for _ in range(8)]
    for thread in presses:
        thread.start()
    for thread in presses:
        thread.join(timeout=60)
    with storage.reading() as db:
        called = db.execute("SELECT display FROM tickets WHERE status = 'called'").fetchall()
    assert len(called) == 1, (called, said)
    assert said.count(f"{called[0][0]} called") == 1
    assert said.count(f"{called[0][0]} is still called here") == 7, said


def test_the_cli_calls_next_only_once_the_called_ticket_is_finished(storage):
    waiting(storage, 3)

    def call(*extra: str) -> subprocess.CompletedProcess:
        return vuoro_server(
            storage.target, "call-next", "--branch", "demo", "--counter", "3", *extra
        )

    assert call().stdout.strip() == "A001 to counter 3"
    again = call()
    assert again.returncode == 2 and "A001 is still called at counter 3" in again.stderr
    assert call("--finish", "served").stdout.strip() == "A002 to counter 3"
    with storage.reading() as db:
        rows = dict(db.execute("SELECT display, status FROM tickets").fetchall())
    assert rows == {"A001": "served", "A002": "called", "A003": "waiting"}


def test_a_hash_of_the_older_four_lane_setting_is_renewed_at_login(storage):
    """Older hashes spread one check over four threads; a login renews them
    to one lane, so the password-check pool's size bounds the CPU logins take."""
    from argon2 import PasswordHasher, extract_parameters

    staff = Staff(storage)
    staff.add("demo", "anna", PASSWORD, "3", [])
    with storage.transaction() as db:
        db.execute("UPDATE staff SET password_hash = ?", [PasswordHasher().hash(PASSWORD)])
    assert staff.session(staff.log_in("anna", PASSWORD, "10.0.0.1")).username == "anna"
    with storage.reading() as db:
        stored = db.execute("SELECT password_hash FROM staff").fetchone()[0]
    assert extract_parameters(stored).parallelism == 1
    assert staff.log_in("anna", PASSWORD, "10.0.0.1"), "the renewed hash takes the password"


def test_the_password_check_line_is_bounded_and_clean_addresses_may_fill_all_of_it():
    """Checks beyond the line are refused at once (the route answers 503 with
    Retry-After); addresses with recent failures may fill only half of it."""
    import asyncio

    from server.throttle import Busy, PasswordChecks

    release = threading.Event()

    async def scenario() -> list[str]:
        checks = PasswordChecks(workers=1, line=4)
        held = [asyncio.ensure_future(checks.run(release.wait, 30)) for _ in range(2)]
        await asyncio.sleep(0.05)
        outcomes = []
        for clean in (False, True, True, True):
            try:
                future = asyncio.ensure_future(checks.run(release.wait, 30, clean=clean))
                await asyncio.sleep(0.05)
                if future.done():
                    future.result()
                held.append(future)
                outcomes.append("queued")
            except Busy as exc:
                outcomes.append(f"busy {exc.seconds}")
        release.set()
        await asyncio.gather(*held)
        return outcomes

    # a thread of its own: the module's Chromium (Playwright's sync API) keeps
    # an event loop running in this one
    with ThreadPoolExecutor(1) as thread:
        outcomes = thread.submit(asyncio.run, scenario()).result()
    assert outcomes[0].startswith("busy") and outcomes[1:3] == ["queued", "queued"]
    assert outcomes[3].startswith("busy"), outcomes
