"""The service tree and where to go, on the server: storage on SQLite and
PostgreSQL (categories, a service's category and place, a counter's place,
the migration that adds them), and a real server process: the CLI, the
management page's forms, the kiosk's config through the real sync daemon
into a real state DB, and the place a called ticket's holder is sent to on
the ticket page and the displays."""

from __future__ import annotations

import re

import pytest
import requests
from alembic import command

from server import branch_file
from server.storage import Rejected, Storage, migrate
from server.storage.database import Database
from sync import protocol, state, tickets
from tests.server_data import DEMO, batch, paired, ticket, today
from tests.server_process import DEMO_BRANCH, cli_in_process, sync_once
from tests.web import PASSWORD, add_staff

TREE_FILE = """
[branch]
id = "demo"
name = "Vuoro demo branch"
timezone = "Europe/Helsinki"
languages = ["en", "fi"]
ticket_url_template = "https://q.example/t/{token}"

[[categories]]
id = "money"
name = { en = "Money matters", fi = "Raha-asiat" }

[[categories]]
id = "cards"
name = { en = "Cards", fi = "Kortit" }
parent = "money"
position = 2

[[counters]]
id = "3"
location = { en = "Counter 3, ground floor", fi = "Palvelupiste 3, katutaso" }

[[services]]
id = "payments"
prefix = "A"
name = { en = "Payments", fi = "Maksut" }
category = "money"
location = { en = "Room 204, 2nd floor", fi = "Huone 204, 2. kerros" }

[[services]]
id = "lost-cards"
prefix = "L"
name = { en = "Lost cards", fi = "Kadonneet kortit" }
category = "cards"

[[services]]
id = "advice"
prefix = "C"
name = "Advice"
"""


def load_tree(text: str = TREE_FILE) -> tuple[dict, list[dict]]:
    import tomllib

    return branch_file.parse(tomllib.loads(text))


# -- storage, on both databases ------------------------------------------------------


def test_a_branch_file_with_a_tree_reaches_the_kiosk_config_and_exports_again(storage):
    storage.put_branch(*load_tree())
    config = storage.kiosk_config("demo")
    assert [(c.id, c.parent, c.position) for c in config.categories] == [
        ("money", None, 0),
        ("cards", "money", 2),
    ]
    by_id = {s.id: s for s in config.services}
    assert by_id["payments"].category == "money"
    assert by_id["payments"].location == {"en": "Room 204, 2nd floor", "fi": "Huone 204, 2. kerros"}
    assert by_id["advice"].category is None and by_id["advice"].location == {}
    exported = branch_file.dump(*storage.branch_settings("demo"))
    assert load_tree(exported) == load_tree()
    assert storage.counter_locations("demo") == {
        "3": {"en": "Counter 3, ground floor", "fi": "Palvelupiste 3, katutaso"}
    }
    # applying the file without the tree takes it away again (the file is declarative)
    storage.put_branch(*branch_file.load(DEMO))
    assert storage.kiosk_config("demo").categories == []
    assert storage.counter_locations("demo") == {}


def test_a_category_that_would_break_the_tree_is_refused_and_nothing_changes(storage):
    storage.put_branch(*load_tree())
    before = storage.categories("demo")
    with pytest.raises(Rejected, match="unknown parent category 'nowhere'"):
        storage.put_category(
            "demo", {"id": "x", "names": {"en": "X"}, "position": 0, "parent": "nowhere"}
        )
    with pytest.raises(Rejected, match="circle"):
        storage.put_category(
            "demo", {"id": "money", "names": {"en": "M"}, "position": 0, "parent": "cards"}
        )
    storage.put_category("demo", {"id": "l3", "names": {"en": "3"}, "parent": "cards"})
    with pytest.raises(Rejected, match="4 levels deep; at most 3"):
        storage.put_category("demo", {"id": "l4", "names": {"en": "4"}, "parent": "l3"})
    assert {c["id"] for c in storage.categories("demo")} == {c["id"] for c in before} | {"l3"}
    _, services = storage.branch_settings("demo")
    advice = next(s for s in services if s["id"] == "advice") | {"category": "gone"}
    with pytest.raises(Rejected, match="unknown category 'gone'"):
        storage.put_service("demo", advice)
    # removing a category moves what was in it up a level: nothing leaves the kiosks
    assert storage.remove_category("demo", "cards")
    assert not storage.remove_category("demo", "cards")
    _, services = storage.branch_settings("demo")
    assert {s["id"]: s["category"] for s in services}["lost-cards"] == "money"
    assert {c["id"]: c["parent"] for c in storage.categories("demo")}["l3"] == "money"


def test_the_ticket_says_where_to_go_the_counters_place_before_the_services(storage):
    storage.put_branch(*load_tree())
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=5))
    storage.ingest(kiosk, batch(ticket(1, day=day), ticket(2, day=day)))
    first, second = "token-" + f"{1:016d}", "token-" + f"{2:016d}"
    assert storage.ticket_by_token(first)["locations"]["en"] == "Room 204, 2nd floor"
    storage.call_next("demo", "3")
    assert storage.ticket_by_token(first)["locations"]["fi"] == "Palvelupiste 3, katutaso"
    storage.call_next("demo", "7")  # a counter without a place: the service's
    assert storage.ticket_by_token(second)["locations"]["en"] == "Room 204, 2nd floor"
    storage.set_counter_location("demo", "7", {"en": "Room 12"})
    assert storage.ticket_by_token(second)["locations"] == {"en": "Room 12"}
    storage.set_counter_location("demo", "7", {})
    assert "7" not in storage.counter_locations("demo")


def test_a_database_at_the_revision_before_gains_the_tree_and_keeps_its_services(database):
    db = Database(database)
    with db.engine.connect() as conn, conn.begin():
        command.upgrade(migrate._config(conn), "0003")
    with db.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(
            "INSERT INTO branches VALUES ('demo', 'Demo', 'Europe/Helsinki', '[\"fi\"]', "
            "'https://q.example/t/{token}', '2026-01-01T00:00:00.000+00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO services (branch_id, id, prefix, names, position) "
            "VALUES ('demo', 'payments', 'A', '{\"fi\": \"Maksut\"}', 0)"
        )
    db.dispose()
    storage = Storage(database)
    assert migrate.revision(storage.database) == migrate.head()
    _, services = storage.branch_settings("demo")
    assert [(s["id"], s["names"], s["category"], s["locations"]) for s in services] == [
        ("payments", {"fi": "Maksut"}, None, {})
    ]
    with storage.database.engine.connect() as conn, conn.begin():
        command.downgrade(migrate._config(conn), "0003")
    with storage.database.engine.connect() as conn, conn.begin():
        command.upgrade(migrate._config(conn), "head")
    assert storage.branch_settings("demo")[1][0]["prefix"] == "A"
    storage.database.dispose()


# -- the branch file's refusals -----------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ('category = "money"', 'category = "monye"', "unknown category 'monye'"),
        ('parent = "money"', 'parent = "cards"', "cannot be its own parent"),
        ("position = 2", "position = 1000", "position must be a whole number from 0 to 999"),
        ("position = 2", 'position = "2"', "position must be a whole number from 0 to 999"),
        ('id = "money"', 'id = "Money"', "id must be lower-case letters"),
        ('id = "3"', 'id = ""', "a counter is named by 1 to 20 printable characters"),
        ('id = "3"', 'id = "3"\nroom = "x"', "unknown key 'room'"),
        ('en = "Room 204, 2nd floor"', 'en = "' + "r" * 121 + '"', "at most 120 characters"),
        ('en = "Room 204, 2nd floor"', 'en = "Room\\u0007 204"', "no control characters"),
        ('name = "Advice"', 'name = "Advice"\nlocation = { ru = "x" }', "unknown language 'ru'"),
        ("[[counters]]", '[[counters]]\nid = "3"\n\n[[counters]]', "counter '3' is given twice"),
    ],
)
def test_a_bad_tree_in_a_branch_file_is_refused_with_the_reason(old, new, why):
    assert old in TREE_FILE
    with pytest.raises(Rejected, match=re.escape(why)):
        load_tree(TREE_FILE.replace(old, new, 1))


def test_names_and_places_in_any_script_are_kept():
    text = TREE_FILE.replace('"Money matters"', '"Raha 💶 – ÅÄÖ õšž ‏مال"')
    branch, _ = load_tree(text)
    assert branch["categories"][0]["names"]["en"] == "Raha 💶 – ÅÄÖ õšž ‏مال"


# -- a real server: CLI, management page, sync, ticket page, display ----------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    directory = tmp_path_factory.mktemp("tree")
    srv = server_database.server(directory / "server")
    demo = directory / "branch.toml"
    demo.write_text(
        DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", srv.url),
        encoding="utf-8",
    )
    srv.cli("branch", str(demo))
    add_staff(srv, "maria", "1", role="manager")
    yield srv
    srv.stop()


def operator(server, *args: str) -> tuple[int | str | None, str, str]:
    """``vuoro-server --db DB ARGS`` in this process (tests/server_process.py
    cli_in_process): its exit status, output and errors."""
    return cli_in_process("--db", str(server.db), *args)


def said_by(server, *args: str) -> str:
    """What a command that succeeded printed (as Server.cli)."""
    status, out, err = operator(server, *args)
    assert status == 0, f"{args}: {err}"
    return out.strip()


def refused(server, *args: str) -> str:
    status, out, err = operator(server, *args)
    assert status == 2, out
    return err


def test_the_cli_builds_the_tree_and_the_kiosk_gets_it_through_sync(server, tmp_path):
    said = said_by(server, "category", "--branch", "demo", "money", "--name", "en=Money matters")
    assert said == "category money saved"
    said_by(
        server,
        "service-place",
        "--branch",
        "demo",
        "payments",
        "--category",
        "money",
        "--location",
        "en=Room 204, 2nd floor",
        "--location",
        "fi=Huone 204, 2. kerros",
    )
    said_by(server, "service-place", "--branch", "demo", "permits", "--category", "money")
    assert "unknown parent category 'nowhere'" in refused(
        server, "category", "--branch", "demo", "x", "--name", "en=X", "--parent", "nowhere"
    )
    assert "is not LANG=TEXT" in refused(
        server, "category", "--branch", "demo", "x", "--name", "Money"
    )
    assert "unknown category 'nope'" in refused(
        server, "service-place", "--branch", "demo", "advice", "--category", "nope"
    )
    assert "no control characters" in refused(
        server, "counter-location", "--branch", "demo", "3", "en=Room\x1b[2J"
    )
    listing = said_by(server, "categories", "--branch", "demo")
    assert re.search(r"money\s+-\s+0\s+2\s+en=Money matters", listing), listing

    kiosk = tmp_path / "kiosk"
    server.pair(kiosk, "door")
    db = state.connect(kiosk / "state.db")
    try:
        top = tickets.tree_level(db)
        assert [(type(i).__name__, i.id) for i in top] == [
            ("Category", "money"),
            ("Service", "advice"),
        ]
        inside = tickets.tree_level(db, "money")
        assert [i.id for i in inside] == ["payments", "permits"]
        assert inside[0].location("fi") == "Huone 204, 2. kerros"
        # taken out of the category on the server: the kiosk follows at its next sync
        said_by(server, "service-place", "--branch", "demo", "permits", "--category", "")
        said_by(server, "service-place", "--branch", "demo", "payments", "--category", "")
        sync_once(kiosk)
        assert [i.id for i in tickets.tree_level(db)] == ["payments", "permits", "advice"]
        assert tickets.get_service(db, "payments").location("en") == "Room 204, 2nd floor"
    finally:
        db.close()
    said_by(server, "category-remove", "--branch", "demo", "money")


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_a_manager_makes_a_category_puts_a_service_in_it_and_sets_a_counters_place(server):
    with requests.Session() as web:
        web.post(
            f"{server.url}/console/login",
            data={"username": "maria", "password": PASSWORD},
            timeout=10,
        )
        page = web.get(f"{server.url}/console/manage/categories/new", timeout=10)
        assert page.status_code == 200 and "New category" in page.text
        csrf = csrf_of(page.text)
        saved = web.post(
            f"{server.url}/console/manage/categories",
            data={"csrf": csrf, "id": "permits-all", "name_en": "Permits", "name_fi": "Luvat"},
            timeout=10,
        )
        assert "Category permits-all saved" in saved.text
        assert "Permits" in saved.text and "not shown until" in saved.text
        again = web.post(
            f"{server.url}/console/manage/categories",
            data={"csrf": csrf, "id": "permits-all", "name_en": "Twice"},
            timeout=10,
        )
        assert again.status_code == 400 and "exists already" in again.text
        assert 'value="Twice"' in again.text  # what was typed comes back
        for fields, why in [
            ({"id": "x", "name_en": "X", "parent": "nowhere"}, "unknown parent"),
            ({"id": "x", "name_en": "X", "position": "-3"}, "position"),
            ({"id": "X Y", "name_en": "X"}, "id must be"),
            ({"id": "x"}, "needs a name"),
            ({"id": "x", "name_en": "<script>alert(1)</script>"}, None),
        ]:
            reply = web.post(
                f"{server.url}/console/manage/categories",
                data={"csrf": csrf, **fields},
                timeout=10,
            )
            if why is None:  # a hostile name is kept as text, shown escaped
                assert reply.status_code == 200
                assert "<script>alert(1)</script>" not in reply.text
                assert "&lt;script&gt;" in reply.text
            else:
                assert reply.status_code == 400 and why in reply.text, reply.text[:300]
        forged = web.post(
            f"{server.url}/console/manage/categories",
            data={"csrf": "0" * 32, "id": "evil", "name_en": "Evil"},
            timeout=10,
        )
        assert forged.status_code == 403

        form = web.get(f"{server.url}/console/manage/services/permits", timeout=10)
        assert 'name="category"' in form.text and "location_en" in form.text
        fields = dict(
            re.findall(r'<input id="[^"]*" name="([a-z_]+)"[^>]*value="([^"]*)"', form.text)
        )
        fields |= {
            "csrf": csrf,
            "id": "permits",
            "existing": "1",
            "always_open": "on",
            "open": "on",
        }
        fields |= {"category": "permits-all", "location_en": "Room 3", "location_fi": "Huone 3"}
        saved = web.post(f"{server.url}/console/manage/services", data=fields, timeout=10)
        assert "Service permits saved" in saved.text, saved.text[:500]
        assert "in permits-all" in saved.text and "Room 3" in saved.text
        bad = web.post(
            f"{server.url}/console/manage/services",
            data=fields | {"location_en": "Room\r\n3" + "x" * 200},
            timeout=10,
        )
        assert bad.status_code == 400 and "location" in bad.text

        counter = web.post(
            f"{server.url}/console/manage/counters",
            data={"csrf": csrf, "place_counter": "3", "location_en": "Counter 3, ground floor"},
            timeout=10,
        )
        assert "Counter 3: place saved" in counter.text
        assert "Counter 3, ground floor" in counter.text
        bad = web.post(
            f"{server.url}/console/manage/counters",
            data={"csrf": csrf, "place_counter": "", "location_en": "x"},
            timeout=10,
        )
        assert bad.status_code == 400 and "a counter is named by" in bad.text
    config = server.storage.kiosk_config("demo")
    assert {s.id: s.category for s in config.services}["permits"] == "permits-all"
    assert server.storage.counter_locations("demo")["3"] == {"en": "Counter 3, ground floor"}


def test_a_called_customer_is_told_where_to_go_on_the_ticket_page_and_the_display(server, tmp_path):
    said_by(server, "counter-location", "--branch", "demo", "3", "en=Counter 3, ground floor")
    said_by(server, "service-place", "--branch", "demo", "advice", "--location", "en=Room 204")
    kiosk = tmp_path / "kiosk"
    server.pair(kiosk, "door")
    db = state.connect(kiosk / "state.db")
    try:
        issued = [tickets.issue_ticket(db, "advice", language="en") for _ in range(2)]
        for each in issued:
            tickets.mark_printed(db, each.id)
    finally:
        db.close()
    sync_once(kiosk)
    display = server.display_token()

    def public(token: str) -> dict:
        reply = requests.get(f"{server.url}/api/v1/tickets/{token}?lang=fi", timeout=10)
        assert reply.status_code == 200
        return reply.json()

    waiting = public(issued[0].public_token)
    assert waiting["status"] == "waiting" and waiting["location"] == "Room 204"
    server.call_next("3", "advice")
    called = public(issued[0].public_token)
    assert (called["counter"], called["location"]) == ("3", "Counter 3, ground floor")
    page = requests.get(f"{server.url}/t/{issued[0].public_token}", timeout=10).text
    assert '<p id="location" class="location" >Counter 3, ground floor</p>' in page
    server.call_next("9", "advice")
    assert public(issued[1].public_token)["location"] == "Room 204"
    shown = requests.get(
        f"{server.url}/display/state", cookies={"vuoro_display": display}, timeout=10
    ).json()
    places = {c["counter"]: c["location"] for c in shown["calls"]}
    assert places["3"]["en"] == "Counter 3, ground floor"
    assert places["9"]["en"] == "Room 204"
    assert set(places["9"]) == set(shown["languages"])
    schema = requests.get(f"{server.url}/openapi.json", timeout=10).json()["components"]
    assert "location" in schema["schemas"]["PublicTicket"]["properties"]
    assert "categories" in schema["schemas"]["KioskConfig"]["properties"]
    assert "Category" in schema["schemas"]
