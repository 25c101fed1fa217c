"""Call me back: the requests' storage on each database (listing, marking,
two staff marking one request at once, giving up, erasing after the
retention, the figures), the branch file's settings, and the public form
through the real server process: numbers normalised to E.164, every kind of
bad input refused in words with nothing stored, the throttle, cross-site
forms, unknown branches, and the purge command."""

from __future__ import annotations

import threading
import tomllib
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests

from server import branch_file, events, phones
from server.storage import Rejected, Throttled, day_bounds, iso, now
from server.storage.callbacks import ADDRESS, CallbackChanged, CallbackRefused, check_settings
from tests.server_data import DEMO
from tests.server_process import cli_in_process

#: the HTTP checks are of the form and its answers, the same on either
#: database; the verbs behind them run on both below (``storage``)
SERVER_DATABASES = ("sqlite",)

GOOD = "040 123 4567"


def open_ids(storage, branch: str = "demo") -> list[str]:
    return [c["id"] for c in storage.open_callbacks(branch)]


# -- storage, on SQLite and PostgreSQL --------------------------------------------------------


def test_requests_are_listed_oldest_first_until_reached_or_given_up(storage):
    first = storage.request_callback("demo", GOOD, "tax card", "payments", "fi", address="10.0.0.1")
    second = storage.request_callback("demo", "+46 70 123 45 67", "permit", address="10.0.0.2")
    assert first["phone"] == "+358401234567" and second["phone"] == "+46701234567"
    listed = storage.open_callbacks("demo")
    assert [c["id"] for c in listed] == [first["id"], second["id"]]
    assert listed[0]["reason"] == "tax card" and listed[0]["service_id"] == "payments"
    assert listed[0]["tries"] == 0 and listed[0]["max_tries"] == 3 and listed[0]["waited_s"] >= 0
    assert listed[1]["service_id"] is None and listed[1]["origin"] == "web"

    assert storage.mark_callback("demo", first["id"], False, None, 0)["tries"] == 1
    assert open_ids(storage) == [first["id"], second["id"]], "not reached: still listed"
    marked = storage.mark_callback("demo", first["id"], True, None, 1)
    assert marked == {"id": first["id"], "state": "reached", "tries": 2}
    assert open_ids(storage) == [second["id"]]
    for tries in range(3):
        marked = storage.mark_callback("demo", second["id"], False, None, tries)
    assert marked["state"] == "given_up" and marked["tries"] == 3
    assert open_ids(storage) == []
    with pytest.raises(CallbackChanged) as closed:
        storage.mark_callback("demo", second["id"], True, None, 3)
    assert closed.value.key == "given_up"
    with pytest.raises(CallbackChanged) as unknown:
        storage.mark_callback("demo", "no-such-request", True)
    assert unknown.value.key == "unknown"
    with pytest.raises(CallbackChanged):
        storage.mark_callback("other-branch", first["id"], True)
    with storage.reading() as db:
        kinds = db.execute(
            "SELECT COUNT(*) FROM events WHERE kind = 'callback' AND queue_id = '~callbacks'"
        ).fetchone()[0]
        closer = db.execute(
            "SELECT state, reached_at IS NOT NULL, closed_at IS NOT NULL FROM callbacks "
            "WHERE id = ?",
            [first["id"]],
        ).fetchone()
    assert kinds == 2 + 2 + 3, "each request and each mark is an event"
    assert tuple(closer) == ("reached", True, True)


def test_the_branch_file_sets_the_tries_the_country_and_the_retention(storage):
    branch, services = branch_file.load(DEMO)
    branch["callbacks"] = check_settings(
        {"enabled": True, "max_tries": 1, "country": "SE", "retention_days": 7}
    )
    storage.put_branch(branch, services)
    assert storage.callback_settings("demo") == {
        "enabled": True,
        "country": "SE",
        "max_tries": 1,
        "retention_days": 7,
    }
    made = storage.request_callback("demo", "070 123 45 67", "permit", address="10.0.0.3")
    assert made["phone"] == "+46701234567", "read in the branch's country"
    assert storage.mark_callback("demo", made["id"], False)["state"] == "given_up"
    exported = branch_file.dump(*storage.branch_settings("demo"))
    assert "[callbacks]" in exported and 'country = "SE"' in exported
    again, _ = branch_file.parse(tomllib.loads(exported))
    assert again["callbacks"] == storage.callback_settings("demo")
    defaults, _ = branch_file.load(DEMO)
    assert defaults["callbacks"]["max_tries"] == 3
    storage.put_branch(defaults, services)
    exported = branch_file.dump(*storage.branch_settings("demo"))
    assert "[callbacks]\nenabled = true\n" in exported, "only what differs: on"
    assert "max_tries" not in exported and "country" not in exported
    defaults["callbacks"] = check_settings(None)
    assert defaults["callbacks"]["enabled"] is False, "off unless said"
    storage.put_branch(defaults, services)
    assert "[callbacks]" not in branch_file.dump(*storage.branch_settings("demo"))
    for bad in (
        {"max_tries": 0},
        {"max_tries": "3"},
        {"max_tries": True},
        {"retention_days": 100000},
        {"country": "XX"},
        {"country": "fi"},
        {"enabled": "yes"},
        {"colour": "red"},
        "on",
    ):
        with pytest.raises(Rejected):
            check_settings(bad)


def mark(storage, request: str, start, outcomes: dict, who: str, reached: bool) -> None:
    """One staff member's press, from a screen that showed no tries yet."""
    start.wait()
    try:
        outcomes[who] = storage.mark_callback("demo", request, reached, None, 0)
    except CallbackChanged as exc:
        outcomes[who] = exc


def test_two_staff_marking_one_request_at_once_one_wins(storage):
    """Anna presses Reached and Bert Not reached on the same request at the same
    instant, from what both screens showed (no tries yet): one of them counts,
    the other is told what happened instead. Several rounds, so either may win."""
    for round_ in range(6):
        made = storage.request_callback("demo", GOOD, f"round {round_}", address="10.0.1.1")
        start = threading.Barrier(2)
        outcomes: dict[str, object] = {}
        threads = [
            threading.Thread(target=mark, args=(storage, made["id"], start, outcomes, who, reached))
            for who, reached in (("anna", True), ("bert", False))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        won = [who for who, said in outcomes.items() if isinstance(said, dict)]
        lost = [said for said in outcomes.values() if isinstance(said, CallbackChanged)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        (answer,) = lost
        if won == ["anna"]:
            assert answer.key == "reached" and "reached just now" in str(answer)
        else:
            assert answer.key == "tried" and answer.values == {"tries": 1}
        with storage.reading() as db:
            tries = db.execute("SELECT tries FROM callbacks WHERE id = ?", [made["id"]])
            assert tries.fetchone()[0] == 1, "exactly one mark counted"
        with storage.transaction() as db:
            db.execute("DELETE FROM throttle")


def test_the_phone_and_reason_are_erased_after_the_retention(storage):
    old = storage.request_callback("demo", GOOD, "old and reached", address="10.0.2.1")
    recent = storage.request_callback("demo", GOOD, "reached today", address="10.0.2.1")
    waiting = storage.request_callback("demo", GOOD, "never called", address="10.0.2.1")
    storage.mark_callback("demo", old["id"], True)
    storage.mark_callback("demo", recent["id"], True)
    with storage.transaction() as db:
        db.execute(
            "UPDATE callbacks SET closed_at = ?, created_at = ? WHERE id = ?",
            [iso(now() - timedelta(days=31)), iso(now() - timedelta(days=31, hours=1)), old["id"]],
        )
    events.Hub(storage)._prune()  # each worker's round every ten minutes
    assert storage.purge_callbacks() == 0, "the branch's 30 days passed: erased, once"
    with storage.reading() as db:
        rows = {
            r[0]: tuple(r[1:])
            for r in db.execute(
                "SELECT id, phone, reason, state, purged_at IS NOT NULL FROM callbacks"
            ).fetchall()
        }
    assert rows[old["id"]] == ("", "", "reached", True)
    assert rows[recent["id"]] == ("+358401234567", "reached today", "reached", False)
    assert rows[waiting["id"]][:2] == ("+358401234567", "never called")
    assert storage.purge_callbacks(days=0) == 1, "the recent one, with --days 0"
    assert open_ids(storage) == [waiting["id"]], "a waiting request is never erased"
    with pytest.raises(Rejected):
        storage.purge_callbacks(days=-1)


def test_the_figures_count_by_the_day_asked_and_the_time_to_reach(storage):
    made = [
        storage.request_callback("demo", GOOD, f"n{n}", address=f"10.0.3.{n}") for n in range(5)
    ]
    storage.mark_callback("demo", made[0]["id"], True)
    storage.mark_callback("demo", made[1]["id"], True)
    storage.mark_callback("demo", made[2]["id"], True)
    for _ in range(3):
        storage.mark_callback("demo", made[3]["id"], False)
    with storage.reading() as db:
        today = date.fromisoformat(storage.branch_today(db, "demo")[0])
    # a minute past the branch's midnight: the same day at whatever hour the test runs
    base = day_bounds(today.isoformat(), ZoneInfo("Europe/Helsinki"))[0] + timedelta(minutes=1)
    with storage.transaction() as db:  # asked 10, 20 and 30 minutes before reached
        for n, minutes in enumerate((10, 20, 30)):
            db.execute(
                "UPDATE callbacks SET created_at = ?, reached_at = ? WHERE id = ?",
                [iso(base), iso(base + timedelta(minutes=minutes)), made[n]["id"]],
            )
    figures = storage.callback_figures("demo", today - timedelta(days=1), today)
    total = figures["total"]
    assert (total["requests"], total["reached"], total["given_up"], total["waiting"]) == (
        5,
        3,
        1,
        1,
    )
    assert total["reach_rate"] == pytest.approx(3 / 4)
    assert total["delay_median_s"] == pytest.approx(20 * 60)
    assert total["delay_p90_s"] == pytest.approx(30 * 60)
    assert storage.callback_typical_wait_s("demo") == pytest.approx(20 * 60)
    report = storage.report("demo", today, today)
    assert report["callbacks"]["total"]["requests"] == 5
    assert storage.callback_figures("demo", today + timedelta(days=1), today + timedelta(days=1))[
        "total"
    ] == {
        "requests": 0,
        "reached": 0,
        "given_up": 0,
        "waiting": 0,
        "reach_rate": None,
        "delay_median_s": None,
        "delay_p90_s": None,
    }


def test_refused_requests_store_nothing_and_the_throttle_counts_every_attempt(storage):
    for phone, reason, service, refusal in (
        ("0600 12345", "x", None, phones.PhoneRefused),
        (GOOD, " \u202e\u2066\n\t ", None, CallbackRefused),
        (GOOD, "x" * 201, None, CallbackRefused),
        (GOOD, "x", "no-such-service", CallbackRefused),
    ):
        with pytest.raises(refusal):
            storage.request_callback("demo", phone, reason, service, address="10.0.4.1")
    assert open_ids(storage) == []
    storage.request_callback("demo", GOOD, "x", address="10.0.4.1")
    storage.request_callback("demo", GOOD, "x", address="10.0.4.1")
    with pytest.raises(Throttled) as throttled:
        storage.request_callback("demo", GOOD, "x", address="10.0.4.1")
    assert 0 < throttled.value.seconds <= ADDRESS.leak_s
    assert len(open_ids(storage)) == 2
    storage.request_callback("demo", GOOD, "x", address="10.0.4.2")  # another address


# -- the phone numbers themselves ------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("040 123 4567", "FI", "+358401234567"),
        ("0401234567", "FI", "+358401234567"),
        ("040-123 4567", "FI", "+358401234567"),
        ("+358 40 123 4567", "FI", "+358401234567"),
        ("00358 40 123 4567", "FI", "+358401234567"),
        ("(09) 310 1691", "FI", "+35893101691"),
        ("+46 70 123 45 67", "FI", "+46701234567"),
        ("070-123 45 67", "SE", "+46701234567"),
        ("+372 5123 4567", "FI", "+37251234567"),
        ("+44 20 7946 0958", "FI", "+442079460958"),
        (" 040.123.4567 ", "FI", "+358401234567"),
    ],
)
def test_numbers_typed_every_usual_way_are_written_one_way(typed, region, e164):
    assert phones.normalise(typed, region) == e164


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("", "missing"),
        ("   ", "missing"),
        ("040 ABC 4567", "characters"),
        ("one two three", "characters"),
        ("\u0660\u0664\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667", "characters"),
        ("\uff10\uff14\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17", "characters"),
        ("040 123\u00004567", "characters"),
        ("040\u202e1234567", "characters"),
        ("<script>alert(1)</script>", "characters"),
        ("'; DROP TABLE callbacks; --", "characters"),
        ("040 123 4567 +", "characters"),
        ("4" * 40, "characters"),
        ("12", "too_short"),
        ("+358 4", "too_short"),
        ("+358 40 1234 5678 9012 3", "too_long"),
        ("0600 12345", "kind"),  # premium rate
        ("0700 123456", "kind"),
        ("0800 12345", "kind"),  # toll free
        ("020 123 4567", "kind"),  # nationwide service number
        ("112", "kind"),  # emergency: a short code
        ("116 117", "kind"),
        ("118", "too_short"),
        ("+999 123 456 789", "too_short"),  # no such country
        ("+358 123 4567", "invalid"),
    ],
)
def test_numbers_we_do_not_call_are_refused_with_a_reason(typed, reason):
    with pytest.raises(phones.PhoneRefused) as refused:
        phones.normalise(typed, "FI")
    assert refused.value.reason == reason


# -- the public form, through the real server ------------------------------------------------


def send(
    server, branch: str, lang: str = "en", headers: dict | None = None, **form
) -> requests.Response:
    fields = {"phone": GOOD, "reason": "tax card", "consent": "yes"} | form
    fields = {k: v for k, v in fields.items() if v is not None}
    return requests.post(
        f"{server.url}/callback/{branch}?lang={lang}",
        data=fields,
        headers=headers or {},
        allow_redirects=False,
        timeout=10,
    )


def stored(server, branch: str) -> list[tuple]:
    return server.sql(
        "SELECT phone, reason, service_id, language, origin, state FROM callbacks "
        "WHERE branch_id = ? ORDER BY created_at",
        [branch],
    )


def alert(reply: requests.Response) -> str:
    import re

    found = re.search(r'<p class="error" role="alert" id="form-error">(.*?)</p>', reply.text, re.S)
    assert found, reply.text[:500]
    return found.group(1)


@pytest.fixture
def fresh_throttle(own_branch):
    own_branch.server.sql("DELETE FROM throttle")
    return own_branch


def test_the_form_takes_a_number_typed_any_usual_way(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    page = requests.get(f"{server.url}/callback/{branch}?lang=fi", timeout=10)
    assert page.status_code == 200 and '<html lang="fi">' in page.text
    assert "30 päivän" in page.text, "the consent says how long the number is kept"
    assert 'name="service"' in page.text and "Maksut" in page.text
    for typed in ("040 123 4567", "+358401234567", "(040) 123-4567", "+46 70 123 45 67"):
        reply = send(server, branch, "fi", phone=typed, service="payments")
        assert reply.status_code == 200, reply.text
        assert "Soitamme sinulle" in reply.text
    numbers = [row[0] for row in stored(server, branch)]
    assert numbers == ["+358401234567"] * 3 + ["+46701234567"]
    assert stored(server, branch)[0][1:] == ("tax card", "payments", "fi", "web", "waiting")
    confirmation = send(server, branch, "en", phone="050 765 4321", service="").text
    assert "+358 50 7654321" in confirmation, "the number as we will dial it"
    assert "as soon as we can" in confirmation, "no figures yet for a typical wait"
    assert stored(server, branch)[-1][2] is None


def test_the_confirmation_says_how_soon_the_branch_usually_calls(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    for n in range(3):
        made = server.storage.request_callback(branch, GOOD, f"n{n}", address=f"10.1.0.{n}")
        server.storage.mark_callback(branch, made["id"], True)
    server.sql(
        "UPDATE callbacks SET created_at = ?, reached_at = ? WHERE branch_id = ?",
        [iso(now() - timedelta(minutes=30)), iso(now() - timedelta(minutes=18)), branch],
    )
    reply = send(server, branch, "en")
    assert "We usually call back within 12 minutes." in reply.text


#: (fields, status, what the page says, the field marked invalid)
REFUSED = [
    ({"phone": "040 ABC 4567"}, 400, "only digits, spaces", "phone"),
    ({"phone": "12"}, 400, "too short", "phone"),
    ({"phone": "+358 40 1234 5678 9012 3"}, 400, "too long", "phone"),
    ({"phone": "0600 12345"}, 400, "not service, premium or short", "phone"),
    ({"phone": "0800 12345"}, 400, "not service, premium or short", "phone"),
    ({"phone": "112"}, 400, "not service, premium or short", "phone"),
    ({"phone": "+358 123 4567"}, 400, "not a phone number we can call", "phone"),
    (
        {"phone": "\uff10\uff14\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17"},
        400,
        "only digits",
        "phone",
    ),
    ({"phone": "<script>alert(1)</script>"}, 400, "only digits", "phone"),
    ({"phone": "x" * 5000}, 400, "too long", ""),
    ({"phone": None}, 400, "Write the phone number", "phone"),
    ({"reason": None}, 400, "what the call is about", "reason"),
    ({"reason": "\u202e\u2066\x00\x1b\n\r\t"}, 400, "what the call is about", "reason"),
    ({"reason": "ä" * 201}, 400, "at most 200 characters", "reason"),
    ({"service": "no-such-service"}, 400, "Choose a service from the list.", "service"),
    ({"service": "x" * 100}, 400, "Choose a service from the list.", "service"),
    ({"consent": None}, 400, "Tick the box", "consent"),
    ({"consent": "no"}, 400, "Tick the box", "consent"),
]


def test_every_bad_field_is_refused_in_words_and_nothing_is_stored(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    for fields, status, said, field in REFUSED:
        server.sql("DELETE FROM throttle")
        reply = send(server, branch, "en", **fields)
        assert reply.status_code == status, (fields, reply.status_code)
        assert said in alert(reply), (fields, alert(reply))
        if field:
            assert f'id="{field}"' in reply.text and 'aria-invalid="true"' in reply.text
        assert "<script>alert(1)</script>" not in reply.text, "typed text is escaped"
    assert stored(server, branch) == []
    # the refusal speaks the customer's language, and keeps what was typed
    finnish = send(server, branch, "fi", phone="0600 12345", reason="verokortti")
    assert "lisämaksullisiin" in alert(finnish) and 'value="verokortti"' in finnish.text
    # text-direction overrides and control characters leave a reason; the rest stays
    reply = send(server, branch, "en", reason="tax\u202e card\x00\nplease\u2066")
    assert reply.status_code == 200
    assert stored(server, branch)[-1][1] == "tax card please"
    # a body larger than any form is refused before it is read
    big = requests.post(
        f"{server.url}/callback/{branch}",
        data={"phone": GOOD, "reason": "r" * 40000, "consent": "yes"},
        timeout=10,
    )
    assert big.status_code == 413
    as_json = requests.post(f"{server.url}/callback/{branch}", json={"phone": GOOD}, timeout=10)
    assert as_json.status_code == 400, "no form fields: refused in words"
    assert len(stored(server, branch)) == 1


def test_requests_from_one_address_are_throttled_with_retry_after(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    for _ in range(int(ADDRESS.capacity) - 1):
        assert send(server, branch).status_code == 200
    assert send(server, branch, phone="0600 12345").status_code == 400, "a refusal counts too"
    throttled = send(server, branch, "fi")
    assert throttled.status_code == 429
    assert 0 < int(throttled.headers["Retry-After"]) <= ADDRESS.leak_s
    assert "Liian monta pyyntöä" in alert(throttled)
    assert len(stored(server, branch)) == ADDRESS.capacity - 1, "nothing of the refused one"


def test_a_form_sent_from_another_site_is_refused(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    for headers in (
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
    ):
        reply = send(server, branch, headers=headers)
        assert reply.status_code == 403, headers
        assert "came from another site" in alert(reply)
    assert stored(server, branch) == []
    assert send(server, branch, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200


def test_an_unknown_or_malformed_branch_is_the_same_404_as_any(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    unknown = requests.get(f"{server.url}/callback/no-such-branch", timeout=10)
    assert unknown.status_code == 404
    for path in ("NOPE", "%3Cscript%3E", "a" * 80, "b%00", "b%20c", "-x"):
        for reply in (
            requests.get(f"{server.url}/callback/{path}", timeout=10),
            requests.post(f"{server.url}/callback/{path}", data={"phone": GOOD}, timeout=10),
        ):
            assert (reply.status_code, reply.text) == (404, unknown.text), path
    toml = fresh_throttle.toml
    text = toml.read_text()
    assert "[callbacks]\nenabled = true\n" in text
    toml.write_text(text.replace("enabled = true", "enabled = false"), encoding="utf-8")
    server.load_branch(toml)
    closed = requests.get(f"{server.url}/callback/{branch}", timeout=10)
    assert (closed.status_code, closed.text) == (404, unknown.text), "no call-backs: not there"
    assert send(server, branch).status_code == 404
    assert stored(server, branch) == []


def test_the_page_speaks_the_browsers_language_unless_asked(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    url = f"{server.url}/callback/{branch}"
    swedish = requests.get(url, headers={"Accept-Language": "sv-SE,sv;q=0.9"}, timeout=10).text
    assert '<html lang="sv">' in swedish and "Ring upp mig" in swedish
    estonian = requests.get(f"{url}?lang=et", headers={"Accept-Language": "sv"}, timeout=10).text
    assert '<html lang="et">' in estonian and "Helistage mulle" in estonian
    nonsense = requests.get(f"{url}?lang=xx%3Cb%3E", timeout=10).text
    assert '<html lang="en">' in nonsense, "the branch's first language"


def test_the_purge_command_erases_what_the_retention_allows(fresh_throttle):
    server, branch = fresh_throttle.server, fresh_throttle.id
    made = server.storage.request_callback(branch, GOOD, "old", address="10.2.0.1")
    server.storage.mark_callback(branch, made["id"], False)
    server.storage.mark_callback(branch, made["id"], True)
    kept = server.storage.request_callback(branch, GOOD, "waiting", address="10.2.0.1")
    server.sql(
        "UPDATE callbacks SET closed_at = ? WHERE id = ?",
        [iso(now() - timedelta(days=3)), made["id"]],
    )
    assert server.cli("callbacks-purge", "--branch", branch) == (
        "0 call-backs' phone numbers and reasons erased"
    ), "the default retention is 30 days"
    assert server.cli("callbacks-purge", "--days", "2", "--branch", branch) == (
        "1 call-backs' phone numbers and reasons erased"
    )
    assert server.sql(
        "SELECT phone, reason, state, tries FROM callbacks WHERE id = ?", [made["id"]]
    ) == [("", "", "reached", 2)]
    assert server.sql("SELECT phone FROM callbacks WHERE id = ?", [kept["id"]]) == [
        ("+358401234567",)
    ]
    status, _, err = cli_in_process("--db", str(server.db), "callbacks-purge", "--days", "-3")
    assert status == 2 and "days must be" in err
    status, _, err = cli_in_process("--db", str(server.db), "callbacks-purge", "--days", "x")
    assert status == 2 and "invalid int" in err
