"""Being told when the turn nears, by e-mail and text message: the storage
verbs on both databases; then the real server process (SQLite) with a real
SMTP server (aiosmtpd, tests/smtp_sink.py) and an HTTP SMS gateway stand-in
(tests/sms_gateway.py), each a process of its own: opt in from the ticket's
page, tickets ahead called, exactly one "near" and one "turn" message each,
the gateway failing then recovering, the server killed and restarted, a
cancelled ticket told nothing more, bad addresses refused with nothing stored."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import threading
import unittest.mock
from pathlib import Path

import pytest
import requests

from server.phones import PhoneRefused
from server.storage import Storage
from server.storage import notify as notify_storage
from server.storage.notify import NotifyRefused, clean_email
from tests.server_process import DEMO_BRANCH, free_port, wait_until

SERVER_DATABASES = ("sqlite",)  # the server's part; the verbs run on both (storage fixture)

HOSTILE_EMAILS = [
    "a@b.c\r\nBcc: x@y.z",
    "a@b.com\nBcc: x@y.z",
    "a@b.com%0d%0aBcc:x@y.z",
    "ä@example.fi",
    "a@exämple.fi",
    "<script>@x.fi",
    "a b@example.fi",
    "a@example",
    "@example.fi",
    "a@@example.fi",
    "x" * 65 + "@example.fi",
    "a@" + "b" * 300 + ".fi",
    "a@example.fi\x00",
    "",
]
BAD_PHONES = ["0600 12345", "112", "+358 40 12a", "٠٤٠١٢٣٤٥٦٧", "1" * 40, "+358\r\n401234567"]


def test_an_email_address_is_one_plain_mailbox():
    assert clean_email(" Anna.Virtanen+q@Example.FI ") == "Anna.Virtanen+q@example.fi"
    for typed in HOSTILE_EMAILS:
        with pytest.raises(NotifyRefused):
            clean_email(typed)


def test_opt_in_queue_once_claim_and_state_on_each_database(storage):
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    token, ticket_id = given["public_token"], given["id"]
    for typed in HOSTILE_EMAILS:
        with pytest.raises(NotifyRefused):
            storage.notify_opt_in(token, "email", typed)
    for typed in BAD_PHONES:
        with pytest.raises(PhoneRefused):
            storage.notify_opt_in(token, "sms", typed)
    with pytest.raises(NotifyRefused):
        storage.notify_opt_in(token, "fax", "a@example.fi")
    assert storage.notify_contact(token) is None, "nothing of a refusal is stored"

    assert storage.notify_opt_in(token, "sms", "040 123 4567")["address"] == "+358401234567"
    assert storage.notify_queue(ticket_id, "near", "s", "nearly") is True
    assert storage.notify_queue(ticket_id, "near", "s", "again") is False, "once per kind"
    claimed = storage.notify_claim()
    assert [(c["kind"], c["key"]) for c in claimed] == [("near", f"{ticket_id}:near")]
    assert storage.notify_claim() == [], "a claimed row is nobody else's"
    assert storage.notify_failed(claimed[0]["id"], "gateway 503", retry=True) == "queued"
    [listed] = storage.notify_messages("demo")
    assert (listed["state"], listed["tries"], listed["last_error"]) == ("queued", 1, "gateway 503")
    with storage.transaction() as db:  # the back-off has passed
        db.execute("UPDATE notify_outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
    [again] = storage.notify_claim()
    assert again["key"] == claimed[0]["key"] and again["tries"] == 2
    storage.notify_sent(again["id"])
    [listed] = storage.notify_messages("demo")
    assert listed["state"] == "sent"
    with storage.reading() as db:
        assert db.execute("SELECT address FROM notify_outbox").fetchone()[0] == "", "blanked"

    # "erase my data" takes the address, and a done ticket is told nothing more
    assert storage.erase_personal_data(token) is True
    assert storage.notify_contact(token) is None
    storage.notify_opt_in(token, "email", "anna@example.fi")
    storage.cancel(token)
    assert storage.notify_queue(ticket_id, "turn", "s", "your turn") is False
    assert storage.notify_prune() == 1 and storage.notify_contact(token) is None
    with pytest.raises(NotifyRefused):
        storage.notify_opt_in(token, "email", "anna@example.fi")


def test_a_message_failing_every_try_is_given_up_with_its_error(storage):
    given = storage.issue_at_counter("demo", "payments", staff_id=None)
    storage.notify_opt_in(given["public_token"], "sms", "+358 40 765 4321")
    storage.notify_queue(given["id"], "near", "s", "b")
    states = []
    for _ in range(notify_storage.MAX_TRIES):
        with storage.transaction() as db:  # each back-off has passed
            db.execute("UPDATE notify_outbox SET next_attempt_at = '2000-01-01T00:00:00+00:00'")
        [row] = storage.notify_claim()
        states.append(storage.notify_failed(row["id"], "SMTP 451\r\nmore", retry=True))
    assert states == ["queued"] * (notify_storage.MAX_TRIES - 1) + ["failed"]
    [listed] = storage.notify_messages("demo")
    assert (listed["state"], listed["tries"]) == ("failed", notify_storage.MAX_TRIES)
    assert listed["last_error"] == "SMTP 451 more", "one line"
    assert storage.notify_claim() == [], "given up: never tried again"


class Process:
    """A helper process of ours (the SMTP server, the SMS gateway)."""

    def __init__(self, module: str, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port, self.directory = free_port(), directory
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(self.port), str(directory)],
            stdin=subprocess.DEVNULL,
        )
        import socket

        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, what=f"{module} listening")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def notifying(server_database, tmp_path_factory):
    """A server told where to send (its environment, from its first start),
    with a real SMTP server and SMS gateway of its own."""
    base = tmp_path_factory.mktemp("providers")
    smtp = Process("tests.smtp_sink", base / "mail")
    sms = Process("tests.sms_gateway", base / "sms")
    env = {
        "VUORO_SMTP_HOST": "127.0.0.1",
        "VUORO_SMTP_PORT": str(smtp.port),
        "VUORO_SMTP_FROM": "vuoro@branch.example",
        "VUORO_SMTP_STARTTLS": "0",
        "VUORO_SMS_URL": f"http://127.0.0.1:{sms.port}/send",
        "VUORO_SMS_TOKEN": "gateway-secret",
        "VUORO_NOTIFY_POLL_S": "0.2",
        "VUORO_NOTIFY_BACKOFF_S": "0.5",  # retries come soon: 0.5 s, 1 s, ...
        # a hung gateway's try fails after 3 s (the test kills the server well
        # before), and a dead sender's claim runs out after 6 s
        "VUORO_NOTIFY_TIMEOUT_S": "3",
        "VUORO_NOTIFY_CLAIM_S": "6",
    }
    with unittest.mock.patch.dict(os.environ, env):
        server = server_database.server(base / "server")
    server.env = env  # and on each restart
    server.load_branch(DEMO_BRANCH)
    yield server, smtp, sms
    server.stop()
    smtp.stop()
    sms.stop()


def mails(smtp: Process) -> list[email.message.Message]:
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(smtp.directory.glob("*.eml"))]


def texts(sms: Process) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sms.directory.glob("request-*.json"))]


def opt_in(server, token: str, channel: str, address: str, lang: str = "en") -> requests.Response:
    return requests.post(
        f"{server.url}/t/{token}/notify?lang={lang}",
        data={"channel": channel, "address": address, "consent": "yes"},
        allow_redirects=False,
        timeout=10,
    )


def test_near_then_turn_once_each_by_email_and_text(notifying):
    server, smtp, sms = notifying
    store = server.storage
    ahead = [store.issue_at_counter("demo", "payments", staff_id=None) for _ in range(5)]
    anna = store.issue_at_counter("demo", "payments", staff_id=None)
    ben = store.issue_at_counter("demo", "payments", staff_id=None)
    server.sql("UPDATE tickets SET language = 'fi' WHERE id = ?", [ben["id"]])  # as a kiosk's
    page = requests.get(f"{server.url}/t/{anna['public_token']}?lang=en", timeout=10).text
    assert "Tell me when my turn nears" in page and 'value="sms"' in page
    assert opt_in(server, anna["public_token"], "email", "anna@example.fi").status_code == 303
    assert opt_in(server, ben["public_token"], "sms", "+358 40 123 4567", "fi").status_code == 303
    page = requests.get(f"{server.url}/t/{anna['public_token']}?lang=en", timeout=10).text
    assert "We will tell you at anna@example.fi" in page

    for _ in ahead[:3]:
        store.call_next("demo", "1", ["payments"], "served")
    wait_until(lambda: len(mails(smtp)) == 1 and len(texts(sms)) == 1, what="near messages")
    [mail] = mails(smtp)
    assert mail["To"] == "anna@example.fi" and mail["Subject"] == "Your turn is coming soon"
    assert mail["X-Idempotency-Key"] == f"{anna['id']}:near"
    [text] = texts(sms)
    body = json.loads(text["body"])
    assert body["to"] == "+358401234567" and body["key"] == f"{ben['id']}:near"
    assert text["headers"]["Authorization"] == "Bearer gateway-secret"
    assert text["headers"]["Idempotency-Key"] == body["key"]
    assert body["text"].startswith(f"Vuoronumero {ben['display']}: vuorosi on pian"), "Finnish"

    # the gateway fails twice, then takes it: one text, the same key each try
    (sms.directory / "fail").write_text("2")
    for _ in ahead[3:]:
        store.call_next("demo", "1", ["payments"], "served")
    store.call_next("demo", "2", ["payments"], "served")  # anna to counter 2
    wait_until(lambda: len(mails(smtp)) == 2, what="anna's turn")
    assert mails(smtp)[1]["Subject"] == "It's your turn!"
    assert "counter 2" in mails(smtp)[1].get_payload()
    store.call_next("demo", "3", ["payments"], "served")  # ben to counter 3

    def turns() -> list[dict]:
        return [t for t in texts(sms) if t["headers"]["Idempotency-Key"] == f"{ben['id']}:turn"]

    wait_until(lambda: [t["status"] for t in turns()][-1:] == [202], 60, "ben's turn")
    assert [t["status"] for t in turns()] == [503, 503, 202]

    def listed() -> dict:
        return {(m["ticket"], m["kind"]): m for m in store.notify_messages("demo")}

    # the gateway and the SMTP server record a message before they answer: the
    # sender writes "sent" after that
    wait_until(
        lambda: [m["state"] for m in listed().values()] == ["sent"] * 4, what="all four sent"
    )
    listed = listed()
    assert listed[(ben["display"], "turn")]["state"] == "sent"
    assert listed[(ben["display"], "turn")]["tries"] == 3
    sent = [(m["ticket"], m["kind"]) for m in listed.values() if m["state"] == "sent"]
    assert sorted(sent) == sorted(
        [(who["display"], kind) for who in (anna, ben) for kind in ("near", "turn")]
    )
    assert len(mails(smtp)) == 2 and len([t for t in texts(sms) if t["status"] == 202]) == 2

    # staff see each message's delivery state
    listing = server.cli("notifications", "--branch", "demo")
    assert listing.splitlines()[0].split()[:3] == ["queued", "at", "ticket"]
    ben_turn = [line for line in listing.splitlines() if ben["display"] in line and "turn" in line]
    assert ben_turn and ben_turn[0].split()[3:6] == ["sms", "sent", "3"]
    assert "gateway 503" not in listing, "a sent message has no error left"


def test_a_sender_killed_mid_send_sends_again_with_the_same_key(notifying):
    """The honest limit: the gateway took the text, the server died before it
    wrote "sent" (SIGKILL); its claim runs out, the restarted server sends
    again, with the same Idempotency-Key, so the gateway can drop the repeat."""
    server, _smtp, sms = notifying
    hang = sms.directory / "hang"
    hang.write_text("")
    given = server.storage.issue_at_counter("demo", "advice", staff_id=None)
    key = f"{given['id']}:near"
    assert opt_in(server, given["public_token"], "sms", "041 234 5678").status_code == 303

    def tries() -> list[dict]:
        return [t for t in texts(sms) if t["headers"]["Idempotency-Key"] == key]

    wait_until(lambda: len(tries()) == 1, what="the gateway holding the text")
    server.kill()  # mid-send: the gateway has it, we have not written "sent"
    hang.unlink()
    [row] = server.sql("SELECT state, tries FROM notify_outbox WHERE ticket_id = ?", [given["id"]])
    assert row == ("sending", 1)
    server.start()
    wait_until(
        lambda: (
            server.sql("SELECT state FROM notify_outbox WHERE ticket_id = ?", [given["id"]])
            == [("sent",)]
        ),
        what="sent after the restart",
    )
    assert [json.loads(t["body"])["key"] for t in tries()] == [key, key], "same key twice"
    assert [
        tuple(r)
        for r in server.sql(
            "SELECT state, tries FROM notify_outbox WHERE ticket_id = ?", [given["id"]]
        )
    ] == [("sent", 2)]


def test_a_refused_opt_in_says_why_and_stores_nothing(notifying):
    server, _smtp, _sms = notifying
    given = server.storage.issue_at_counter("demo", "payments", staff_id=None)
    token = given["public_token"]
    for channel, typed in [("email", t) for t in HOSTILE_EMAILS[:-1]] + [
        ("sms", t) for t in BAD_PHONES
    ]:
        answer = opt_in(server, token, channel, typed)
        assert answer.status_code == 400, typed
        assert 'role="alert"' in answer.text
    assert opt_in(server, token, "email", "x" * 5000).status_code == 400
    assert opt_in(server, token, "pigeon", "a@example.fi").status_code == 400
    no_consent = requests.post(
        f"{server.url}/t/{token}/notify",
        data={"channel": "email", "address": "a@example.fi"},
        timeout=10,
    )
    assert no_consent.status_code == 400
    other_site = requests.post(
        f"{server.url}/t/{token}/notify",
        data={"channel": "email", "address": "a@example.fi", "consent": "yes"},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=10,
    )
    assert other_site.status_code == 403
    assert server.storage.notify_contact(token) is None
    # then a good one, removed by its holder
    assert opt_in(server, token, "email", "ok@example.fi").status_code == 303
    assert server.storage.notify_contact(token) == {"channel": "email", "address": "ok@example.fi"}
    requests.post(f"{server.url}/t/{token}/notify/remove", timeout=10)
    assert server.storage.notify_contact(token) is None


def test_a_gateway_refusal_is_not_retried_and_staff_see_why(notifying):
    server, _smtp, sms = notifying
    answer = sms.directory / "answer"
    answer.write_text("400")
    try:
        given = server.storage.issue_at_counter("demo", "advice", staff_id=None)
        assert opt_in(server, given["public_token"], "sms", "044 987 6543").status_code == 303
        query = "SELECT state, tries, last_error FROM notify_outbox WHERE ticket_id = ?"
        wait_until(lambda: server.sql(query, [given["id"]]) == [("failed", 1, "gateway 400")])
    finally:
        answer.unlink()
    line = [m for m in server.storage.notify_messages("demo") if m["ticket"] == given["display"]]
    assert [(m["state"], m["last_error"]) for m in line] == [("failed", "gateway 400")]


def test_a_cancelled_ticket_is_told_nothing_more(notifying):
    server, smtp, _sms = notifying
    store = server.storage
    given = store.issue_at_counter("demo", "permits", staff_id=None)
    assert opt_in(server, given["public_token"], "email", "gone@example.fi").status_code == 303
    wait_until(
        lambda: any(m["To"] == "gone@example.fi" for m in mails(smtp)), what="its near message"
    )
    requests.post(
        f"{server.url}/api/v1/tickets/{given['public_token']}/cancel",
        json={},
        timeout=10,
    )
    wait_until(lambda: store.notify_contact(given["public_token"]) is None, what="address gone")
    assert store.notify_queue(given["id"], "turn", "s", "b") is False
    assert [m["To"] for m in mails(smtp)].count("gone@example.fi") == 1


def test_opt_in_from_the_ticket_page_in_chromium(notifying, browser, shots):
    """A phone at 360 px, in Finnish: the form, a refusal said at the form,
    then the address taken; axe-core clean, at 200 % text too."""
    from tests.test_accessibility import sticking_out, violations
    from tests.test_callbacks_page import double_text

    server, _smtp, _sms = notifying
    given = server.storage.issue_at_counter("demo", "advice", staff_id=None)
    phone = browser.new_context(viewport={"width": 360, "height": 740}).new_page()
    phone.goto(f"{server.url}/t/{given['public_token']}?lang=fi")
    form = phone.locator("form.notify")
    assert form.locator("legend").inner_text() == "Ilmoita, kun vuoroni lähestyy"
    assert violations(phone) == ""
    phone.screenshot(path=str(shots / "notify-fi.png"), full_page=True)
    double_text(phone)
    assert violations(phone) == ""
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360, sticking_out(phone)
    phone.screenshot(path=str(shots / "notify-fi-200.png"), full_page=True)

    phone.reload()
    phone.get_by_role("radio", name="Sähköposti").check()
    phone.get_by_label("Sähköpostiosoite tai puhelinnumero").fill("anna@example")
    phone.get_by_label("Hyväksyn").check()
    phone.get_by_role("button", name="Ilmoita minulle").click()
    assert "Tähän osoitteeseen emme voi" in phone.get_by_role("alert").inner_text()
    field = phone.get_by_label("Sähköpostiosoite tai puhelinnumero")
    assert field.get_attribute("aria-invalid") == "true" and field.input_value() == "anna@example"
    assert violations(phone) == "", "the refused form too"
    phone.screenshot(path=str(shots / "notify-refused-fi.png"), full_page=True)
    assert server.storage.notify_contact(given["public_token"]) is None

    field.fill("anna@example.fi")
    phone.get_by_label("Hyväksyn").check()
    phone.get_by_role("button", name="Ilmoita minulle").click()
    assert phone.locator("#notify-set").inner_text() == (
        "Ilmoitamme osoitteeseen anna@example.fi, kun vuorosi lähestyy."
    )
    assert violations(phone) == ""
    phone.screenshot(path=str(shots / "notify-set-fi.png"), full_page=True)
    phone.get_by_role("button", name="Poista osoitteeni").click()
    assert phone.locator("form.notify legend").is_visible()
    assert server.storage.notify_contact(given["public_token"]) is None


def test_two_senders_claim_disjoint_rows_on_each_database(storage):
    """Two server processes' senders on one database, claiming at once: each
    message is claimed by one of them, never both (a second Storage is a
    second engine and pool, as a second worker has)."""
    tickets = [storage.issue_at_counter("demo", "payments", staff_id=None) for _ in range(12)]
    for n, given in enumerate(tickets):
        storage.notify_opt_in(given["public_token"], "email", f"holder{n}@example.fi")
        assert storage.notify_queue(given["id"], "near", "s", "b")
    other = Storage(storage.target)
    try:
        claimed: list[list[dict]] = [[], []]
        start = threading.Barrier(2)

        def claim(into: list[dict], store: Storage) -> None:
            start.wait()
            while batch := store.notify_claim(limit=3):
                into.extend(batch)

        threads = [
            threading.Thread(target=claim, args=(claimed[i], s))
            for i, s in enumerate((storage, other))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        ids = [row["id"] for part in claimed for row in part]
        assert len(ids) == 12 and len(set(ids)) == 12, "each once, by one sender"
    finally:
        other.database.dispose()


def test_two_senders_queue_a_message_once_on_each_database(storage):
    """Two workers find one ticket near at the same instant: one message."""
    other = Storage(storage.target)
    try:
        for _ in range(5):
            given = storage.issue_at_counter("demo", "payments", staff_id=None)
            storage.notify_opt_in(given["public_token"], "sms", "040 123 4567")
            start, results = threading.Barrier(2), []

            def queue(
                store: Storage, ticket_id: str, start: threading.Barrier, results: list
            ) -> None:
                start.wait()
                results.append(store.notify_queue(ticket_id, "near", "s", "b"))

            threads = [
                threading.Thread(target=queue, args=(s, given["id"], start, results))
                for s in (storage, other)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
            assert sorted(results) == [False, True]
    finally:
        other.database.dispose()
