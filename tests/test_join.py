"""Joining the queue from a phone, over HTTP on a real server process: the
page's figures are the queue's, a join is a remote ticket from the day's
counter (never a kiosk's or a counter's number), one per device and service,
and every refused or hostile request issues nothing. The storage verb runs on
SQLite and PostgreSQL (``storage``)."""

from __future__ import annotations

import hashlib
import html
import json
import re
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from server import branch_file
from server.i18n import page_words, wait_text
from server.storage import JoinRefused, Rejected, Throttled
from server.storage.issuing import JOIN_ADDRESS
from sync import protocol
from sync.schedule import Schedule
from tests.server_data import paired, today
from tests.web import print_ticket

# the HTTP layer does not depend on the database; the storage verb is tested on
# both below (the ``storage`` fixture)
SERVER_DATABASES = ("sqlite",)

HELSINKI = ZoneInfo("Europe/Helsinki")
addresses = iter(f"198.51.100.{n}" for n in range(1, 250))


def from_(address: str | None = None, **headers: str) -> dict[str, str]:
    """Request headers as a phone behind a proxy we trust (each test its own
    address, so no test fills another's join bucket)."""
    return {"X-Forwarded-For": address or next(addresses), **headers}


def join(server, branch: str, service: str | None, device: str | None = None, **kw):
    """POST a join as the page's form does; the response, not followed."""
    cookies = {"vuoro_device": device} if device is not None else {}
    data = kw.pop("data", None) or ({"service": service} if service is not None else {})
    return requests.post(
        f"{server.url}/join/{branch}",
        data=data,
        cookies=cookies,
        allow_redirects=False,
        timeout=10,
        headers=kw.pop("headers", None) or from_(),
        **kw,
    )


def tickets(server, branch: str) -> list[tuple]:
    return server.sql(
        "SELECT display, number, origin, device, status, language FROM tickets "
        "WHERE branch_id = ? ORDER BY received_at, number",
        [branch],
    )


def shown_queue(page: str, service: str) -> str:
    found = re.search(rf'<p class="queue" id="q-{service}">(.*?)</p>', page, re.S)
    assert found, f"{service} is not shown as open"
    return html.unescape(found.group(1))


def test_the_page_shows_each_service_with_the_queue_the_displays_get(own_branch):
    server, branch = own_branch.server, own_branch.id
    for service in ("payments", "payments", "permits"):
        server.storage.issue_at_counter(branch, service, None)
    page = requests.get(f"{server.url}/join/{branch}?lang=en", headers=from_(), timeout=10)
    assert page.status_code == 200
    queue = server.storage.queue(branch)
    words = page_words("en")
    for service in ("payments", "permits", "advice"):
        state = queue[service]
        expected = f"People waiting: {state.waiting}"
        if state.estimated_wait_s is not None:
            expected += f" · Estimated wait: {wait_text(state.estimated_wait_s, words)}"
        assert shown_queue(page.text, service) == expected
    assert queue["payments"].waiting == 2 and "about 10 min" in shown_queue(page.text, "payments")
    # the cookie: random, for /join only, not for scripts, sent on a link from elsewhere
    cookie = page.headers["set-cookie"]
    assert re.fullmatch(
        r"vuoro_device=[A-Za-z0-9_-]{32}; HttpOnly; Max-Age=\d+; Path=/join; SameSite=lax", cookie
    ), cookie
    secure = requests.get(
        f"{server.url}/join/{branch}", headers=from_(**{"X-Forwarded-Proto": "https"}), timeout=10
    )
    assert "; Secure" in secure.headers["set-cookie"]
    # the phone's language, else the branch's first; ?lang= wins
    finnish = requests.get(
        f"{server.url}/join/{branch}", headers=from_(**{"Accept-Language": "fi-FI,fi;q=0.9"})
    )
    assert '<html lang="fi">' in finnish.text and "Maksut" in finnish.text
    assert "Jonottajia: 2" in finnish.text
    swedish = requests.get(
        f"{server.url}/join/{branch}?lang=sv", headers=from_(**{"Accept-Language": "fi"})
    )
    assert '<html lang="sv">' in swedish.text and "Betalningar" in swedish.text


def test_the_page_offers_a_call_back_where_the_branch_calls_back(own_branch):
    """No time to wait: the page links the branch's call-back form, in the
    page's language; a branch that does not call back offers nothing."""
    server, branch = own_branch.server, own_branch.id
    page = requests.get(f"{server.url}/join/{branch}?lang=fi", headers=from_(), timeout=10)
    link = re.search(r'<a id="call-back" href="([^"]+)">([^<]+)</a>', page.text)
    assert link and link[1] == f"/callback/{branch}?lang=fi", page.text
    assert "soitamme" in link[2].lower()
    form = requests.get(f"{server.url}{link[1]}", timeout=10)
    assert form.status_code == 200 and '<html lang="fi">' in form.text
    server.sql("UPDATE callback_settings SET enabled = 0 WHERE branch_id = ?", [branch])
    page = requests.get(f"{server.url}/join/{branch}?lang=fi", headers=from_(), timeout=10)
    assert page.status_code == 200 and 'id="call-back"' not in page.text


def test_a_join_is_a_remote_ticket_and_a_second_tap_opens_the_same_one(own_branch):
    server, branch = own_branch.server, own_branch.id
    first = join(server, branch, "payments", headers=from_(**{"Accept-Language": "fi"}))
    assert first.status_code == 303
    location = first.headers["location"]
    token = re.fullmatch(r"/t/([A-Za-z0-9_-]{22})", location).group(1)
    device = first.cookies["vuoro_device"]
    assert requests.get(f"{server.url}{location}", timeout=10).status_code == 200
    ticket = server.storage.ticket_by_token(token)
    assert ticket["status"] == "waiting" and ticket["position"] == 1
    leased = dict(
        server.sql(
            "SELECT service_id, MAX(last) FROM leases WHERE branch_id = ? GROUP BY service_id",
            [branch],
        )
    )  # the paired kiosk's blocks: the counter goes on after them
    a1, a2, b1 = (f"A{leased['payments'] + 1:03d}", f"A{leased['payments'] + 2:03d}",
                  f"B{leased['permits'] + 1:03d}")  # fmt: skip
    ((display, _number, origin, stored, status, language),) = tickets(server, branch)
    assert (display, origin, status, language) == (a1, "remote", "waiting", "fi")
    assert stored == hashlib.sha256(device.encode()).hexdigest(), "only the hash is kept"

    again = join(server, branch, "payments", device)
    assert again.status_code == 303 and again.headers["location"] == location
    other = join(server, branch, "payments")  # another phone
    assert other.status_code == 303 and other.headers["location"] != location
    permits = join(server, branch, "permits", device)  # the same phone, another service
    assert permits.status_code == 303 and permits.headers["location"] != location
    assert [t[0] for t in tickets(server, branch)] == [a1, a2, b1]

    # called: still the customer's turn, still the same ticket; served: a new one
    assert server.call_next("3", "payments", branch=branch) == f"{a1} to counter 3"
    assert join(server, branch, "payments", device).headers["location"] == location
    page = requests.get(
        f"{server.url}/join/{branch}?lang=en", cookies={"vuoro_device": device}, timeout=10
    )
    assert f'href="{location}"' in page.text, "the page links the numbers the phone holds"
    server.sql("UPDATE tickets SET status = 'served' WHERE public_token = ?", [token])
    later = join(server, branch, "payments", device)
    assert later.status_code == 303 and later.headers["location"] != location
    assert len(tickets(server, branch)) == 4


def test_numbers_never_clash_with_a_kiosks_lease_or_a_counter_ticket(own_branch, tmp_path):
    server, branch = own_branch.server, own_branch.id
    print_ticket(server, own_branch.kiosk_dir, "payments", tmp_path)  # from the kiosk's lease
    ((leased_to,),) = server.sql(
        "SELECT MAX(last) FROM leases WHERE branch_id = ? AND service_id = 'payments'", [branch]
    )
    assert join(server, branch, "payments").status_code == 303
    counter = server.storage.issue_at_counter(branch, "payments", None)
    assert join(server, branch, "payments").status_code == 303
    rows = tickets(server, branch)
    assert [r[2] for r in rows] == ["kiosk", "remote", "counter", "remote"]
    numbers = [r[1] for r in rows]
    assert len(set(numbers)) == 4 and len({r[0] for r in rows}) == 4
    assert all(n > leased_to for n in numbers[1:]), "no kiosk holds a number given here"
    assert numbers[1:] == [leased_to + 1, leased_to + 2, leased_to + 3]
    assert counter["number"] == leased_to + 2
    ((kiosk_id,),) = server.sql("SELECT id FROM kiosks WHERE branch_id = ?", [branch])
    kiosk = {"id": kiosk_id, "branch_id": branch}
    day = datetime.now(HELSINKI).date().isoformat()
    lease = server.storage.lease(
        kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=5)
    )
    assert lease.first == leased_to + 4, "the kiosk's next block starts after them all"


def _closed_today_open_tomorrow() -> str:
    today_ = datetime.now(HELSINKI).date().isoformat()
    return json.dumps({"hours": {"mon": ["08:00-16:00"], "tue": ["08:00-16:00"],
                               "wed": ["08:00-16:00"], "thu": ["08:00-16:00"],
                               "fri": ["08:00-16:00"], "sat": ["08:00-16:00"],
                               "sun": ["08:00-16:00"]},
                       "exceptions": {today_: []}, "last_ticket_min": 0})  # fmt: skip


def test_closed_and_full_services_are_shown_as_such_and_refused(own_branch):
    server, branch = own_branch.server, own_branch.id
    server.sql(
        "UPDATE services SET schedule = ? WHERE branch_id = ? AND id = 'permits'",
        [_closed_today_open_tomorrow(), branch],
    )
    server.sql("UPDATE services SET is_open = 0 WHERE branch_id = ? AND id = 'advice'", [branch])
    server.storage.issue_at_counter(branch, "payments", None)
    server.sql(
        "UPDATE services SET daily_cap = 1 WHERE branch_id = ? AND id = 'payments'", [branch]
    )
    page = requests.get(f"{server.url}/join/{branch}?lang=en", headers=from_(), timeout=10).text
    assert 'value="payments"' not in page and 'value="permits"' not in page
    assert 'value="advice"' not in page, "no button for a service that takes no number"
    closed = dict(re.findall(r'data-service="(\w+)">.*?<p class="queue">(.*?)</p>', page, re.S))
    tomorrow = datetime.now(HELSINKI).date() + timedelta(days=1)
    assert closed["advice"] == "Closed now"
    assert closed["permits"].startswith("Closed now · Opens ") and "at 08:00" in closed["permits"]
    assert str(tomorrow.day) in closed["permits"]
    assert closed["payments"] == "Today&#39;s numbers are all taken"  # always open: no hours

    for service, said in (
        ("payments", "Today's numbers for Payments are all taken."),
        ("permits", "Permits and licences does not take numbers now. Opens "),
        ("advice", "Advice does not take numbers now."),
    ):
        refused = join(server, branch, service, headers=from_(**{"Accept-Language": "en"}))
        assert refused.status_code == 409
        error = re.search(r'<p class="error" role="alert" id="join-error">(.*?)</p>', refused.text)
        assert html.unescape(error.group(1)).startswith(said), error.group(1)
    assert len(tickets(server, branch)) == 1, "only the counter's ticket"


def test_a_branch_with_joining_off_says_so_politely_and_issues_nothing(own_branch):
    server, branch = own_branch.server, own_branch.id
    exported = branch_file.dump(*server.storage.branch_settings(branch))
    assert branch_file.parse(tomllib.loads(exported))[0]["remote_join"] is True
    server.sql("UPDATE branches SET remote_join = 0 WHERE id = ?", [branch])
    exported = branch_file.dump(*server.storage.branch_settings(branch))
    assert "remote_join" not in exported  # off: as a file that says nothing
    page = requests.get(f"{server.url}/join/{branch}?lang=en", headers=from_(), timeout=10)
    assert page.status_code == 200
    assert "Joining from a phone is not in use at this branch" in page.text
    assert "<button" not in page.text
    refused = join(server, branch, "payments")
    assert refused.status_code == 403 and 'role="alert"' in refused.text
    assert tickets(server, branch) == []
    # a branch file says nothing: off; the demo branch's says on
    text = own_branch.toml.read_text(encoding="utf-8")
    assert "remote_join = true" in text
    plain, _ = branch_file.parse(tomllib.loads(text.replace("remote_join = true\n", "")))
    assert plain["remote_join"] is False
    with pytest.raises(Rejected, match="remote_join must be true or false"):
        branch_file.parse(tomllib.loads(text.replace("= true", '= "yes"')))


def test_joins_from_one_address_are_throttled_with_retry_after(own_branch):
    server, branch = own_branch.server, own_branch.id
    crowd = from_("203.0.113.9")
    for _ in range(int(JOIN_ADDRESS.capacity)):
        assert join(server, branch, "advice", headers=crowd).status_code == 303
    throttled = join(server, branch, "advice", headers=crowd)
    assert throttled.status_code == 429
    seconds = int(throttled.headers["Retry-After"])
    assert 0 < seconds <= JOIN_ADDRESS.leak_s
    assert f"Try again in {seconds} s" in throttled.text
    assert join(server, branch, "advice").status_code == 303, "another address still joins"
    assert len(tickets(server, branch)) == JOIN_ADDRESS.capacity + 1


def test_a_join_from_another_sites_page_is_refused(own_branch):
    server, branch = own_branch.server, own_branch.id
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        refused = join(server, branch, "payments", headers=from_(**headers))
        assert refused.status_code == 403, headers
        assert "This form came from another site." in refused.text
    same = join(server, branch, "payments", headers=from_(**{"Sec-Fetch-Site": "same-origin"}))
    assert same.status_code == 303
    assert len(tickets(server, branch)) == 1


def test_hostile_input_gets_a_clear_answer_and_issues_nothing(own_branch):
    server, branch = own_branch.server, own_branch.id
    unknown = requests.get(f"{server.url}/join/no-such-branch", timeout=10)
    assert unknown.status_code == 404 and "Page not found" in unknown.text
    for bad in ("DEMO", "<script>", "%C3%A4%C3%B6", "a" * 65, "a" * 4000, "%00"):
        for suffix in ("", "/poster"):
            got = requests.get(f"{server.url}/join/{bad}{suffix}", timeout=10)
            assert (got.status_code, got.text) == (404, unknown.text), bad
        posted = join(server, bad, "payments")
        assert (posted.status_code, posted.text) == (404, unknown.text), bad
    assert "<script>" not in unknown.text

    for service in ("nope", "a" * 65, "Payments", "<script>", "ä", "payments\n", ""):
        refused = join(server, branch, service)
        assert refused.status_code in (400, 404), service
        assert 'role="alert"' in refused.text and "<script>" not in refused.text
    refused = join(server, branch, None, data={"other": "x"})  # no service field
    assert refused.status_code == 400 and "Choose one service." in refused.text
    twice = join(server, branch, None, data=[("service", "payments"), ("service", "permits")])
    assert twice.status_code == 400
    as_json = requests.post(
        f"{server.url}/join/{branch}", json={"service": "payments"}, headers=from_(), timeout=10
    )
    assert as_json.status_code == 400
    a_file = requests.post(
        f"{server.url}/join/{branch}",
        files={"service": ("x.txt", b"payments")},
        headers=from_(),
        timeout=10,
    )
    assert a_file.status_code == 400
    huge = join(server, branch, None, data={"service": "payments", "pad": "x" * 200_000})
    assert huge.status_code == 413
    many = join(server, branch, None, data=[("f", "x")] * 50 + [("service", "payments")])
    assert many.status_code == 400
    assert tickets(server, branch) == []

    # a forged cookie is no device of ours: a new one is given, the join is one ticket
    for forged in ("x" * 5000, "../../etc", "a" * 31, "ä" * 32):
        got = requests.post(
            f"{server.url}/join/{branch}",
            data={"service": "advice"},
            headers=from_(Cookie=f"vuoro_device={forged}".encode().decode("latin-1")),
            allow_redirects=False,
            timeout=10,
        )
        assert got.status_code in (303, 400), forged
        if got.status_code == 303:
            assert got.cookies["vuoro_device"] != forged
    assert all(t[2] == "remote" for t in tickets(server, branch))
    assert len({t[3] for t in tickets(server, branch)}) == len(tickets(server, branch))


def test_the_join_verb_on_each_database(storage):
    """The storage verb alone: one active ticket per device and service, numbers
    from the counter shared with leases and counter tickets, the branch's switch,
    the service's hours and cap, the address bucket; nothing issued when refused."""
    kiosk = paired(storage)
    day = today(storage)
    lease = storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=3))
    first, new = storage.join("demo", "payments", "device-1", "192.0.2.1", "sv")
    assert new and first["number"] == lease.last + 1
    again, new = storage.join("demo", "payments", "device-1", "192.0.2.1", "sv")
    assert not new and again == first
    counter = storage.issue_at_counter("demo", "payments", None)
    second, new = storage.join("demo", "payments", "device-2", "192.0.2.1")
    assert new and [counter["number"], second["number"]] == [lease.last + 2, lease.last + 3]
    assert storage.device_tickets("demo", "device-1") == {
        "payments": {"number": first["display"], "token": first["public_token"]}
    }
    with storage.reading() as db:
        rows = db.execute(
            "SELECT origin, device, language FROM tickets WHERE branch_id = 'demo' ORDER BY number"
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("remote", "device-1", "sv"),
        ("counter", None, ""),
        ("remote", "device-2", ""),
    ]

    def refused(service: str = "advice", device: str = "device-3") -> str:
        with pytest.raises(JoinRefused) as caught:
            storage.join("demo", service, device, "192.0.2.1")
        return caught.value.reason

    assert refused("no-such-service") == "unknown"
    with storage.transaction() as db:
        db.execute("UPDATE services SET daily_cap = 1 WHERE id = 'advice'")
    storage.join("demo", "advice", "device-3", "192.0.2.1")
    assert refused(device="device-4") == "full"
    with storage.transaction() as db:
        db.execute(
            "UPDATE services SET daily_cap = NULL, schedule = ? WHERE id = 'advice'",
            [_closed_today_open_tomorrow()],
        )
    assert refused(device="device-4") == "closed_today"
    with storage.transaction() as db:
        db.execute("UPDATE branches SET remote_join = 0 WHERE id = 'demo'")
    assert not storage.remote_join_on("demo")
    assert refused("payments", "device-5") == "off"
    with storage.transaction() as db:
        db.execute("UPDATE branches SET remote_join = 1 WHERE id = 'demo'")
    for n in range(int(JOIN_ADDRESS.capacity) - 3):  # three joined from there already
        storage.join("demo", "permits", f"many-{n}", "192.0.2.1")
    with pytest.raises(Throttled):
        storage.join("demo", "permits", "one-more", "192.0.2.1")
    storage.join("demo", "permits", "elsewhere", "192.0.2.200")  # another address
    with storage.reading() as db:
        count = db.execute("SELECT COUNT(*) FROM tickets WHERE branch_id = 'demo'").fetchone()[0]
    assert count == 4 + JOIN_ADDRESS.capacity - 3 + 1


def test_taps_at_once_from_one_phone_give_one_ticket_and_a_cap_is_never_passed(storage):
    """Joins racing in threads (each its own connection): one device gets one
    ticket however many taps arrive together, and a cap of 3 gives 3."""
    with storage.transaction() as db:
        db.execute("UPDATE services SET daily_cap = 3 WHERE id = 'advice'")

    def race(devices: list[str], service: str) -> list[object]:
        start = threading.Barrier(len(devices))

        def tap(device: str) -> object:
            start.wait()
            try:
                return storage.join("demo", service, device, f"192.0.2.{len(device)}")
            except JoinRefused as refused:
                return refused.reason

        with ThreadPoolExecutor(len(devices)) as pool:
            return list(pool.map(tap, devices))

    same = race(["one-phone"] * 6, "payments")
    assert sum(1 for r in same if r[1]) == 1, "one new ticket, the other taps get it back"
    assert len({r[0]["id"] for r in same}) == 1
    capped = race([f"phone-{n}" for n in range(6)], "advice")
    assert sorted(r if isinstance(r, str) else "issued" for r in capped) == [
        *["full"] * 3,
        *["issued"] * 3,
    ]


def test_a_closed_service_tells_when_it_opens_next():
    tz = HELSINKI
    hours = Schedule({"mon": ["08:00-12:00", "13:00-16:00"], "wed": ["09:00-10:00"]}, {})
    monday = datetime(2026, 12, 7, 7, 0, tzinfo=tz)
    assert hours.next_opening(monday) == monday.replace(hour=8)
    assert hours.next_opening(monday.replace(hour=12, minute=30)) == monday.replace(hour=13)
    assert hours.next_opening(monday.replace(hour=17)) == datetime(2026, 12, 9, 9, 0, tzinfo=tz)
    holiday = Schedule(hours.hours, {"2026-12-09": []})
    assert holiday.next_opening(monday.replace(hour=17)) == datetime(2026, 12, 14, 8, tzinfo=tz)
    assert Schedule().next_opening(monday) is None, "always open"
    assert Schedule({}, {}).next_opening(monday) is None, "never open"
    last = Schedule({"mon": ["08:00-08:10"], "tue": ["09:00-12:00"]}, {}, last_ticket_min=15)
    assert last.next_opening(monday) == datetime(2026, 12, 8, 9, 0, tzinfo=tz)
