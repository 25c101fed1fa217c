"""The waiting-room display on a real server (SQLite and PostgreSQL): pairing
with a single-use code, its token in a cookie or as a bearer, what it is
shown and told, its sound, revocation; branch data closed to anyone else;
hostile input to every form and parameter."""

from __future__ import annotations

import html
import io
import json
import wave

import requests

from server.speech import phrase
from sync import state, tickets
from tests.server_process import DEMO_BRANCH, sync_once
from tests.web import PASSWORD, add_staff

HOSTILE_CODES = ["", " ", "A" * 41, "ÄÖÅÄÖÅÄÖ", "ABCD\x00EFG", "<script>", "' OR 1=1 --", "🙂" * 8]


def pair_display(
    server, name: str = "Waiting room", branch: str = "demo"
) -> tuple[requests.Session, str]:
    """A display paired as its browser does: the form, then the cookie."""
    code = server.pair_code(branch)
    session = requests.Session()
    reply = session.post(
        f"{server.url}/display/pair",
        data={"code": code, "name": name},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 303, reply.text
    assert reply.headers["location"] == "/display"
    cookie = next(c for c in session.cookies if c.name == "vuoro_display")
    assert cookie.path == "/display" and cookie.has_nonstandard_attr("HttpOnly")
    return session, cookie.value


def display_id(server, token: str) -> str:
    state = requests.get(
        f"{server.url}/display/state", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return state.json()["display"]["id"]


def call_next(
    server, counter: str = "3", *services: str, branch: str = "demo", cli: bool = False
) -> str:
    """A counter calls its next ticket: through ``vuoro-server call-next`` (a
    process of its own) when the test is about the CLI, else the same call in
    this process (what the CLI prints either way)."""
    if not cli:
        return server.call_next(counter, *services, branch=branch)
    flags = [arg for service in services for arg in ("--service", service)]
    return server.cli("call-next", "--branch", branch, "--counter", counter, *flags)


def logged_in(server, username: str, counter: str, role: str = "staff", branch: str = "demo"):
    """A staff member's browser session on the console, and its CSRF token."""
    add_staff(server, username, counter, role=role, branch=branch)
    session = requests.Session()
    session.post(
        f"{server.url}/console/login",
        data={"username": username, "password": PASSWORD},
        timeout=30,
    )
    page = session.get(f"{server.url}/console", timeout=10).text
    return session, page.split('name="csrf" value="')[1].split('"')[0]


def issue(kiosk_dir, count: int = 1, service: str = "permits") -> None:
    """Tickets printed at the kiosk and sent to the server."""
    db = state.connect(kiosk_dir / "state.db")
    for _ in range(count):
        tickets.mark_printed(db, tickets.issue_ticket(db, service, language="fi").id)
    db.close()
    sync_once(kiosk_dir)


def test_a_display_pairs_with_a_code_once_and_sees_its_branch(own_branch):
    server, branch = own_branch.server, own_branch.id
    session, _ = pair_display(server, "Lobby TV", branch)
    page = session.get(f"{server.url}/display", timeout=10)
    assert page.status_code == 200 and 'src="/static/display.js"' in page.text
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    assert state["display"]["name"] == "Lobby TV"
    assert state["branch"] and state["services"] and state["calls"] == []
    assert state["languages"]  # the branch's, until a manager chooses
    # the code was spent: a second browser cannot use it
    listed = server.cli("displays", "--branch", branch)
    assert "Lobby TV" in listed
    stranger = requests.get(f"{server.url}/display/state", timeout=10)
    assert stranger.status_code == 401
    assert stranger.headers["WWW-Authenticate"] == "Bearer"


def test_the_pairing_form_speaks_the_browsers_language_errors_too(branch):
    """A display has no language before it is paired: the TV's browser says which.
    (A server of its own: a wrong code counts against the loopback address.)"""
    server, _ = branch
    finnish = {"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.8"}
    page = requests.get(f"{server.url}/display", headers=finnish, timeout=10)
    assert page.status_code == 200 and '<html lang="fi">' in page.text
    assert "Yhdistä tämä näyttö" in page.text and "Pair this display" not in page.text
    swedish = {"Accept-Language": "sv-SE"}
    wrong = requests.post(
        f"{server.url}/display/pair", data={"code": "ABCD2345"}, headers=swedish, timeout=10
    )
    assert wrong.status_code == 401 and '<html lang="sv">' in wrong.text
    assert "Koden är okänd, redan använd eller har gått ut." in wrong.text
    odd = requests.post(
        f"{server.url}/display/pair",
        data={"code": "ÄÖ"},
        headers={"Accept-Language": "et"},
        timeout=10,
    )
    assert odd.status_code == 400 and "Sidumiskood koosneb 8 tähest ja numbrist." in odd.text
    for header in ("", "*", "de-DE,de", "fi;q=abc", "x" * 5000, "en;q=0.1,fi;q=0", "<script>"):
        page = requests.get(
            f"{server.url}/display", headers={"Accept-Language": header}, timeout=10
        )
        assert page.status_code == 200 and "<script>" not in page.text.split("</title>")[0]
        assert '<html lang="en">' in page.text, header


def test_a_call_from_the_cli_reaches_the_display_with_its_words(own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    session, _ = pair_display(server, branch=branch)
    issue(kiosk_dir, 2)
    said = call_next(server, "3", branch=branch, cli=True)
    number = said.split()[0]
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    newest = state["calls"][0]
    assert (newest["number"], newest["counter"], newest["recall"]) == (number, "3", False)
    for language in state["languages"]:
        assert newest["say"][language] == phrase(number, "3", language)
    waiting = {s["id"]: s["waiting"] for s in state["services"]}
    assert waiting["permits"] == 1


def test_the_sound_of_a_call_is_the_chime_and_each_language_spoken(own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    session, _ = pair_display(server, branch=branch)
    issue(kiosk_dir)
    call_next(server, "12", branch=branch)
    call = session.get(f"{server.url}/display/state", timeout=10).json()["calls"][0]
    reply = session.get(f"{server.url}{call['sound']}", timeout=60)
    assert reply.status_code == 200 and reply.headers["content-type"] == "audio/wav"
    assert json.loads(reply.headers["X-Vuoro-Said"]) == call["say"]
    with wave.open(io.BytesIO(reply.content)) as recording:
        seconds = recording.getnframes() / recording.getframerate()
        assert recording.getnchannels() == 1 and recording.getsampwidth() == 2
    # a chime (about a second) and a phrase of a second or more per language
    assert 1.0 + 1.0 * len(call["say"]) < seconds < 1.5 + 6.0 * len(call["say"])
    # not another branch's or a made-up call; not without the display's token
    for bad in ("/display/sound/999999.wav", "/display/sound/0.wav", "/display/sound/x.wav"):
        assert session.get(f"{server.url}{bad}", timeout=10).status_code in (404, 422)
    assert requests.get(f"{server.url}{call['sound']}", timeout=10).status_code == 401


def test_a_call_says_where_to_go_the_counters_place_before_the_services(own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    session, _ = pair_display(server, branch=branch)
    _, services = server.storage.branch_settings(branch)
    permits = next(s for s in services if s["id"] == "permits")
    permits["locations"] = {"fi": "Huone 204, 2. kerros", "en": "Room 204, 2nd floor"}
    server.storage.put_service(branch, permits)
    server.storage.set_counter_location(branch, "7", {"en": "Desk 7"})
    issue(kiosk_dir, 2)
    first = call_next(server, "3", branch=branch).split()[
        0
    ]  # counter 3 has no place: the service's
    second = call_next(server, "7", branch=branch).split()[0]  # counter 7 has one: it wins
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    by_number = {call["number"]: call for call in state["calls"]}
    languages = state["languages"]
    assert "fi" in languages and "en" in languages, languages
    service_call, counter_call = by_number[first], by_number[second]
    assert service_call["location"]["fi"] == "Huone 204, 2. kerros"
    assert service_call["location"]["en"] == "Room 204, 2nd floor"
    assert {counter_call["location"][code] for code in languages} == {"Desk 7"}
    for language in languages:  # said after the counter, in each language
        place = service_call["location"][language]
        assert service_call["say"][language] == phrase(first, "3", language, place)
    assert (
        service_call["say"]["en"]
        == f"Number {first[0]}{int(first[1:])}, counter 3. Room 204, 2nd floor."
    )
    reply = session.get(f"{server.url}{service_call['sound']}", timeout=60)
    assert reply.status_code == 200
    assert json.loads(reply.headers["X-Vuoro-Said"]) == service_call["say"]
    issue(kiosk_dir, 1, service="advice")  # no place anywhere: the call alone
    plain_number = call_next(server, "4", "advice", branch=branch).split()[0]
    calls = session.get(f"{server.url}/display/state", timeout=10).json()["calls"]
    plain = next(call for call in calls if call["number"] == plain_number)
    assert plain["location"] == {} and plain["say"]["en"].endswith("counter 4.")
    heard = session.get(f"{server.url}{plain['sound']}", timeout=60)
    assert len(reply.content) > len(heard.content) + 44100  # the place is heard: a second more


def test_a_manager_points_a_display_at_services_counters_and_languages(own_branch):
    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    session, token = pair_display(server, branch=branch)
    manager, csrf = logged_in(server, own_branch.name("maria"), "1", "manager", branch)
    ident = display_id(server, token)
    saved = manager.post(
        f"{server.url}/console/manage/displays/{ident}/settings",
        data={
            "csrf": csrf,
            "name": "Permits TV",
            "service_permits": "on",
            "counters": "3, 4",
            "lang_sv": "on",
            "lang_en": "on",
            "volume": "55",
        },
        timeout=10,
    )
    assert saved.status_code == 200 and "Display saved." in saved.text
    issue(kiosk_dir, 1, "permits")
    issue(kiosk_dir, 1, "advice")
    call_next(server, "9", "permits", branch=branch)  # another counter: not this display's
    issue(kiosk_dir, 1, "permits")
    call_next(server, "3", "advice", branch=branch)  # another service: not this display's
    call_next(server, "4", "permits", branch=branch)
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    assert state["display"]["name"] == "Permits TV" and state["volume"] == 55
    assert state["languages"] == ["sv", "en"]  # in the order the form lists them
    assert [s["id"] for s in state["services"]] == ["permits"]
    assert [c["counter"] for c in state["calls"]] == ["4"]
    for bad, why in [
        ({"volume": "101"}, "0 to 100"),
        ({"volume": "loud"}, "whole number"),
        ({"lang_xx": "on", "volume": "5"}, "not 'xx'"),
        ({"service_nope": "on", "volume": "5"}, "no service 'nope'"),
        ({"name": "x" * 101, "volume": "5"}, "1 to 100"),
        ({"name": "TV\n line\t", "volume": "55"}, ""),  # one line: spaces collapsed
        ({"counters": ",".join(str(n) for n in range(60)), "volume": "5"}, "at most 50"),
    ]:
        refused = manager.post(
            f"{server.url}/console/manage/displays/{ident}/settings",
            data={"csrf": csrf, **bad},
            timeout=10,
        )
        assert refused.status_code in (200, 400), (bad, refused.status_code)
        if refused.status_code == 400:
            assert why in html.unescape(refused.text), bad
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    assert (state["volume"], state["display"]["name"]) == (55, "TV line")
    message = manager.post(
        f"{server.url}/console/manage/display-message",
        data={"csrf": csrf, "message": "Kassa suljettu 14–15 · Closed 2–3 pm"},
        timeout=10,
    )
    assert message.status_code == 200
    state = session.get(f"{server.url}/display/state", timeout=10).json()
    assert state["message"] == "Kassa suljettu 14–15 · Closed 2–3 pm"
    forged = manager.post(
        f"{server.url}/console/manage/displays/{ident}/revoke",
        data={"csrf": "forged"},
        timeout=10,
    )
    assert forged.status_code == 403


def test_a_revoked_display_is_refused_and_its_stream_ends(own_branch):
    server = own_branch.server
    session, token = pair_display(server, branch=own_branch.id)
    stream = session.get(
        f"{server.url}/display/events",
        headers={"Accept": "text/event-stream"},
        stream=True,
        timeout=30,
    )
    assert stream.status_code == 200
    lines = stream.iter_lines()
    first = next(line for line in lines if line.startswith(b"data: "))
    assert json.loads(first[6:])["display"]["id"]
    assert server.cli("display-revoke", display_id(server, token)).startswith("revoked")
    rest = list(lines)  # ends: the revocation's event ended the stream
    assert not any(line.startswith(b"data: ") for line in rest), rest
    assert session.get(f"{server.url}/display/state", timeout=10).status_code == 401
    page = session.get(f"{server.url}/display", timeout=10)
    assert page.status_code == 401 and "Pair this display" in page.text


def test_branch_data_needs_a_display_token_or_a_staff_session(own_branch):
    server, branch = own_branch.server, own_branch.id
    queue = f"{server.url}/api/v1/branches/{branch}/queue"
    stats = f"{server.url}/api/v1/branches/{branch}/stats"
    kiosk_token = server.kiosk_token(branch=branch)
    for url in (queue, stats):
        anonymous = requests.get(url, timeout=10)
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
        kiosk = requests.get(url, headers={"Authorization": f"Bearer {kiosk_token}"}, timeout=10)
        assert kiosk.status_code == 401, "a kiosk's token is not a display's"
    _, token = pair_display(server, branch=branch)
    as_display = requests.get(queue, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert as_display.status_code == 200 and "permits" in as_display.json()
    staff, _ = logged_in(server, own_branch.name("pekka"), "2", branch=branch)
    session = next(c.value for c in staff.cookies if c.name == "vuoro_session")
    as_staff = requests.get(stats, cookies={"vuoro_session": session}, timeout=10)
    assert as_staff.status_code == 200
    for header in ("Bearer", "Bearer ", "Bearer " + "x" * 5000, "Basic Zm9vOmJhcg==", "Bearer ä"):
        assert requests.get(queue, headers={"Authorization": header}, timeout=10).status_code in (
            400,
            401,
        ), header


def test_hostile_pairing_codes_and_names_are_refused_plainly(branch):
    """(A server of its own: the refused pairings count against the loopback
    address, which every other test's display pairs from.)"""
    server, _ = branch
    for code in HOSTILE_CODES:
        reply = requests.post(f"{server.url}/display/pair", data={"code": code}, timeout=30)
        assert reply.status_code in (400, 401, 422), (code, reply.status_code)
        assert "vuoro_display" not in reply.cookies
        by_link = requests.get(f"{server.url}/display", params={"pair": code}, timeout=30)
        assert by_link.status_code in (200, 400, 401), (code, by_link.status_code)
        assert "Pair this display" in by_link.text
    code = server.pair_code()
    for name in ("x" * 101, "\x00\x01"):
        refused = requests.post(
            f"{server.url}/display/pair", data={"code": code, "name": name}, timeout=30
        )
        assert refused.status_code == 400 and "printable" in refused.text, name
    _, token = pair_display_with(server, code)
    assert token, "a refused name did not spend the code"


def test_a_pairing_from_another_site_is_refused(own_branch):
    server = own_branch.server
    code = server.pair_code(own_branch.id)
    reply = requests.post(
        f"{server.url}/display/pair",
        data={"code": code},
        headers={"Sec-Fetch-Site": "cross-site"},
        timeout=30,
    )
    assert reply.status_code == 403 and "vuoro_display" not in reply.cookies
    _, token = pair_display_with(server, code)
    assert token, "the refused attempt did not spend the code"


def pair_display_with(server, code: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    session.get(f"{server.url}/display", params={"pair": code}, timeout=30)
    return session, session.cookies.get("vuoro_display", "")


def test_with_two_workers_every_call_reaches_the_display_live(tmp_path, server_database):
    """The stream is held by one worker; calls come from the CLI (another
    process) and from the console (either worker): each arrives, in order."""
    server = server_database.server(tmp_path / "server", workers=2)
    try:
        server.load_branch(DEMO_BRANCH)
        kiosk_dir = tmp_path / "kiosk"
        server.pair(kiosk_dir, "door")
        issue(kiosk_dir, 6)
        console, csrf = logged_in(server, "aino", "8")
        session, _ = pair_display(server)
        stream = session.get(
            f"{server.url}/display/events",
            headers={"Accept": "text/event-stream"},
            stream=True,
            timeout=60,
        )
        frames = (
            json.loads(line[6:]) for line in stream.iter_lines() if line.startswith(b"data: ")
        )
        assert next(frames)["calls"] == []
        expected = []
        for round_ in range(3):
            said = call_next(server, str(round_ + 1), cli=True)
            expected.append((said.split()[0], str(round_ + 1)))
            console.post(
                f"{server.url}/console/act", data={"csrf": csrf, "action": "call"}, timeout=30
            )
            expected.append((console.get(f"{server.url}/console", timeout=10).text, "8"))
            console.post(
                f"{server.url}/console/act", data={"csrf": csrf, "action": "served"}, timeout=30
            )
        seen: list = []
        for frame in frames:
            seen = [(c["number"], c["counter"]) for c in reversed(frame["calls"])]
            if len(seen) >= 6:
                break
        assert [counter for _, counter in seen] == ["1", "8", "2", "8", "3", "8"]
        for (number, counter), (page_or_number, wanted) in zip(seen, expected, strict=True):
            assert counter == wanted and number in page_or_number
        stream.close()
    finally:
        server.stop()


def test_a_call_back_request_wakes_the_counter_screens_not_the_displays(own_branch):
    """A call-back request is staff's business: the counter screen gets it live,
    the branch's displays are not sent their state again for it (a hundred
    displays would each be sent a state that did not change)."""
    from tests.test_live import Stream

    server, kiosk_dir, branch = own_branch.server, own_branch.kiosk_dir, own_branch.id
    session, _ = pair_display(server, branch=branch)
    staff, _ = logged_in(server, "cecilia", "3", branch=branch)
    counter = Stream(f"{server.url}/console/events?view=screen", session=staff)
    issue(kiosk_dir, 1)
    # the ticket on the counter screen: the server has dealt out the events so far
    counter.until(lambda s: s["waiting_mine"] + s["waiting_others"], "the ticket")
    display = Stream(f"{server.url}/display/events", session=session)
    server.storage.request_callback(branch, "+358 40 1234567", "my permit", address="test")
    # the counter screen's message for the request: the server has dealt out its event
    counter.until(lambda s: s["callbacks"], "the request on the counter screen")
    number = call_next(server, "3", branch=branch).split()[0]
    assert display.next()["calls"][0]["number"] == number, "the call is the next message"
    for stream in (display, counter):
        stream.close()
