"""The service tree and where to go, on the kiosk's side: the standalone config
(checked as a tree, with clear errors), the levels the screens show (a
category says why when nothing under it takes a ticket), the state DB a
server's config fills, and the location on the paper."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk import config
from kiosk.paper import ticket_content
from printer.layout import render_ticket
from printer.render import render_bytes
from sync import clock, exchange, protocol, schedule, state, tickets, tree
from sync.schedule import Availability

TREE = """
[kiosk]
language = "fi"
languages = ["fi", "en"]

[branch]
name = "Kaupungin palvelupiste"
timezone = "Europe/Helsinki"

[ticket]
url_template = "https://jono.example.fi/t/{token}"

[[categories]]
id = "money"
name = { fi = "Raha-asiat", en = "Money matters" }

[[categories]]
id = "payments"
name = { fi = "Maksut", en = "Payments" }
parent = "money"

[[services]]
id = "bills"
prefix = "A"
name = { fi = "Laskut", en = "Bills" }
category = "payments"
location = { fi = "Huone 204, 2. kerros", en = "Room 204, 2nd floor" }
hours = { "mon-fri" = ["09:00-12:00"] }

[[services]]
id = "transfers"
prefix = "B"
name = { fi = "Siirrot", en = "Transfers" }
category = "payments"
hours = { "mon-fri" = ["08:30-12:00"] }

[[services]]
id = "cash"
prefix = "C"
name = { fi = "Käteinen", en = "Cash" }
category = "money"
location = "Kassa 1"

[[services]]
id = "permits"
prefix = "D"
name = { fi = "Luvat", en = "Permits" }
"""

HELSINKI = ZoneInfo("Europe/Helsinki")


def at(local: str) -> datetime:
    return datetime.fromisoformat(local).replace(tzinfo=HELSINKI).astimezone(UTC)


def standalone(path: Path, text: str = TREE) -> tickets.sqlite_utils.Database:
    settings = config.parse(text)
    db = state.connect(path)
    clock.set_policy(db, require_sync=False)
    tickets.apply_standalone_config(
        db,
        branch=settings.branch,
        ticket=settings.ticket,
        services=[s.as_state() for s in settings.services],
        categories=[c.as_state() for c in settings.categories],
    )
    return db


@pytest.fixture
def db(tmp_path):
    db = standalone(tmp_path / "state.db")
    yield db
    db.close()


def ids(items) -> list[tuple[str, str]]:
    return [(type(i).__name__, i.id) for i in items]


# -- the levels a screen shows -------------------------------------------------


def test_each_level_shows_its_categories_first_then_its_services(db):
    monday_morning = at("2026-11-23T10:00")
    assert ids(tickets.tree_level(db, None, monday_morning)) == [
        ("Category", "money"),
        ("Service", "permits"),
    ]
    assert ids(tickets.tree_level(db, "money", monday_morning)) == [
        ("Category", "payments"),
        ("Service", "cash"),
    ]
    assert ids(tickets.tree_level(db, "payments", monday_morning)) == [
        ("Service", "bills"),
        ("Service", "transfers"),
    ]
    assert tickets.tree_level(db, "no-such-category", monday_morning) == []
    assert [c.id for c in tickets.category_path(db, "payments")] == ["money", "payments"]
    assert tickets.category_path(db, None) == []
    # the flat list every service is in is unchanged (digit keys, older screens)
    assert [s.id for s in tickets.listed_services(db, monday_morning)] == [
        "bills",
        "transfers",
        "cash",
        "permits",
    ]


def test_a_category_with_nothing_open_says_the_reason_that_ends_soonest(db):
    early = at("2026-11-23T08:00")  # a Monday: transfers open 08:30, bills 09:00
    (payments,) = [i for i in tickets.tree_level(db, "money", early) if i.id == "payments"]
    assert payments.availability == Availability("later", "08:30")
    assert not payments.is_open
    assert tickets.tree_level(db, None, early)[0].availability == schedule.OPEN  # cash is open
    between = at("2026-11-23T08:45")
    assert tickets.tree_level(db, "money", between)[0].availability == schedule.OPEN
    sunday = at("2026-11-22T10:00")
    (payments,) = [i for i in tickets.tree_level(db, "money", sunday) if i.id == "payments"]
    assert payments.availability.status == "closed_today"


def test_summarise_prefers_the_soonest_opening_then_the_gentlest_reason():
    later = [Availability("later", "13:00"), Availability("later", "09:30")]
    assert tree.summarise([Availability("closed"), *later]) == Availability("later", "09:30")
    assert tree.summarise([Availability("closed"), Availability("full")]).status == "full"
    assert tree.summarise([Availability("closed_today"), schedule.OPEN]) == schedule.OPEN
    assert tree.summarise([]).status == "closed"


def test_a_service_says_where_to_go_in_the_language_asked_else_in_one_it_has(db):
    by_id = {s.id: s for s in tickets.listed_services(db, at("2026-11-23T10:00"))}
    assert by_id["bills"].location("en") == "Room 204, 2nd floor"
    assert by_id["bills"].location("sv") == "Huone 204, 2. kerros"  # none in Swedish
    assert by_id["cash"].location("en") == "Kassa 1"  # a plain text is the kiosk's language's
    assert by_id["permits"].location("fi") == ""
    assert tickets.get_service(db, "bills").category == "payments"


def test_a_config_without_the_tree_unlists_its_categories(tmp_path):
    db = standalone(tmp_path / "state.db")
    flat = TREE.split("[[categories]]")[0] + TREE.split('parent = "money"')[1]
    flat = "\n".join(line for line in flat.splitlines() if not line.startswith("category"))
    settings = config.parse(flat)
    tickets.apply_standalone_config(
        db,
        branch=settings.branch,
        ticket=settings.ticket,
        services=[s.as_state() for s in settings.services],
        categories=[c.as_state() for c in settings.categories],
    )
    assert tickets.listed_categories(db) == []
    assert [i.id for i in tickets.tree_level(db)] == ["bills", "transfers", "cash", "permits"]


def test_a_servers_tree_the_kiosk_did_not_check_never_hides_a_service(tmp_path):
    """A config from a server that is not Vuoro's: a circle, an unknown parent, a
    service in an unknown category. Every service stays reachable."""
    db = state.connect(tmp_path / "state.db")
    reply = protocol.KioskConfig.model_validate(
        {
            "branch": {"id": "b", "name": "B", "timezone": "UTC", "languages": ["en"]},
            "ticket_url_template": "https://q.example/t/{token}",
            "categories": [
                {"id": "a", "names": {"en": "A"}, "parent": "b"},
                {"id": "b", "names": {"en": "B"}, "parent": "a"},
                {"id": "orphan", "names": {"en": "O"}, "parent": "gone"},
            ],
            "services": [
                {"id": "s1", "prefix": "A", "names": {"en": "One"}, "category": "a"},
                {"id": "s2", "prefix": "B", "names": {"en": "Two"}, "category": "orphan"},
                {"id": "s3", "prefix": "C", "names": {"en": "Three"}, "category": "nowhere"},
                {
                    "id": "s4",
                    "prefix": "D",
                    "names": {"en": "Four"},
                    "location": {"en": "Room 1 ⛳ – Ääni"},
                },
            ],
        }
    )
    exchange.apply_server_config(db, reply, '"etag"')
    top = tickets.tree_level(db)
    assert ids(top) == [  # "b" has nothing under it once the circle is cut: not shown
        ("Category", "a"),
        ("Category", "orphan"),
        ("Service", "s3"),
        ("Service", "s4"),
    ]
    reachable = {s.id for c in top if isinstance(c, tickets.Category) for s in _all(db, c.id)}
    assert reachable | {"s3", "s4"} == {"s1", "s2", "s3", "s4"}
    assert tickets.get_service(db, "s4").location("fi") == "Room 1 ⛳ – Ääni"
    # an older reply (no tree, no places) leaves a flat list
    flat = reply.model_copy(
        update={
            "categories": [],
            "services": [s.model_copy(update={"category": None}) for s in reply.services],
        }
    )
    exchange.apply_server_config(db, flat, '"etag2"')
    assert [i.id for i in tickets.tree_level(db)] == ["s1", "s2", "s3", "s4"]


def _all(db, category: str) -> list[tickets.Service]:
    found = []
    for item in tickets.tree_level(db, category):
        found += _all(db, item.id) if isinstance(item, tickets.Category) else [item]
    return found


def test_a_protocol_location_is_one_printable_line_of_at_most_120_characters():
    base = {"id": "s", "prefix": "A", "names": {"en": "S"}}
    for bad in ("Room\n204", "x" * 121, "\x1b[31m"):
        with pytest.raises(protocol.ValidationError):
            protocol.Service.model_validate(base | {"location": {"en": bad}})
    with pytest.raises(protocol.ValidationError):
        protocol.Category.model_validate({"id": "Bad Id", "names": {"en": "x"}})


# -- the standalone config: a tree or a clear error ------------------------------


def test_the_tree_config_reads_back():
    settings = config.parse(TREE)
    assert [(c.id, c.parent, c.position) for c in settings.categories] == [
        ("money", None, 0),
        ("payments", "money", 0),
    ]
    bills = settings.services[0]
    assert bills.category == "payments"
    assert bills.locations == {"fi": "Huone 204, 2. kerros", "en": "Room 204, 2nd floor"}
    assert settings.services[2].locations == {"fi": "Kassa 1"}


def _with(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("change", "message", "line_of"),
    [
        (
            ('category = "payments"', 'category = "paymnets"'),
            "service 'bills' is in category 'paymnets', which no [[categories]] table defines "
            "(did you mean 'payments'?)",
            'category = "paymnets"',
        ),
        (
            ('id = "money"', 'id = "money"\nparent = "payments"'),
            "go round in a circle",
            "[[categories]]",
        ),
        (
            ('parent = "money"', 'parent = "payments"'),
            "category 'payments' cannot be its own parent",
            "[[categories]]",
        ),
        (
            ('parent = "money"', 'parent = "nowhere"'),
            "unknown parent category 'nowhere'",
            "[[categories]]",
        ),
        (
            ("[[services]]", '[[categories]]\nid = "empty"\nname = "Tyhjä"\n\n[[services]]'),
            "category 'empty' has no service under it",
            'id = "empty"',
        ),
        (
            ("[[services]]", '[[categories]]\nid = "money"\nname = "Again"\n\n[[services]]'),
            "category id 'money' is used twice",
            'id = "money"\nname = "Again"',
        ),
        (
            ('name = { fi = "Raha-asiat", en = "Money matters" }', 'name = ""'),
            "[[categories]] #1 needs a 'name'",
            "[[categories]]",
        ),
        (
            ('name = { fi = "Raha-asiat", en = "Money matters" }', f'name = "{"x" * 501}"'),
            "'name'.fi is 501 characters; the limit is 500",
            'name = "xxx',
        ),
        (
            ('location = "Kassa 1"', f'location = "{"k" * 121}"'),
            "'location'.fi is 121 characters; the limit is 120",
            'location = "kkk',
        ),
        (
            ('location = "Kassa 1"', 'location = "Kassa\\n1"'),
            "'location'.fi must be one line",
            'location = "Kassa',
        ),
        (
            ('location = "Kassa 1"', 'location = { ru = "Касса" }'),
            "'location' has unknown language 'ru'",
            "location = { ru",
        ),
        (
            ('id = "money"', 'id = "Money!"'),
            "must be lower-case letters, digits, - or _",
            'id = "Money!"',
        ),
        (
            ('parent = "money"', 'parent = "money"\nposition = -1'),
            "'position' in [[categories]] #2 must be from 0 to 999",
            "position = -1",
        ),
        (
            ('parent = "money"', 'parent = "money"\nicon = "💰"'),
            "unknown key 'icon' in [[categories]] #2",
            'icon = "',
        ),
    ],
)
def test_a_bad_tree_is_refused_with_the_line_and_why(change, message, line_of):
    text = textwrap.dedent(_with(TREE, *change))
    with pytest.raises(config.ConfigError) as caught:
        config.parse(text, "kiosk.toml")
    assert message in caught.value.message
    first = line_of.split("\n")[0]
    expected = next(
        n
        for n, line in enumerate(text.splitlines(), 1)
        if line.startswith(first) and "\n".join(text.splitlines()[n - 1 :]).startswith(line_of)
    )
    lines = text.splitlines()
    if line_of == "[[categories]]":  # the category at fault, or the first one
        assert lines[caught.value.line - 1].startswith("[[categories]]")
    else:  # the key's line, or the header of its table
        header = max(n for n in range(1, expected + 1) if lines[n - 1].startswith("[["))
        assert caught.value.line in (expected, header), str(caught.value)


def test_a_tree_four_levels_deep_is_refused():
    deeper = TREE.replace(
        "[[services]]",
        '[[categories]]\nid = "bills-old"\nname = "Old"\nparent = "payments"\n\n'
        '[[categories]]\nid = "bills-older"\nname = "Older"\nparent = "bills-old"\n\n'
        "[[services]]",
        1,
    ).replace('category = "payments"', 'category = "bills-older"', 1)
    with pytest.raises(config.ConfigError, match="4 levels deep; at most 3"):
        config.parse(deeper)


def test_unicode_names_and_locations_are_kept_as_written():
    text = _with(TREE, 'name = { fi = "Maksut", en = "Payments" }', 'name = "Maksut 💳 – ÅÄÖ õšž"')
    settings = config.parse(text)
    assert settings.categories[1].names == {"fi": "Maksut 💳 – ÅÄÖ õšž"}


def test_the_shipped_configs_still_read():
    assert config.parse(config.embedded_default_text()).categories == ()


# -- the paper ----------------------------------------------------------------------


def test_the_paper_says_where_to_go_under_the_service_and_stays_small(db, tmp_path):
    settings = config.parse(TREE)
    ticket = tickets.issue_ticket(db, "bills", language="en", moment=at("2026-11-23T10:00"))
    service = tickets.service_for_ticket(db, ticket)
    content = ticket_content(settings, ticket, service)
    assert content.location == "Room 204, 2nd floor"
    raw = render_ticket(content)
    (paper,) = render_bytes(raw)
    lines = paper.lines
    assert lines.index("Room 204, 2nd floor") == lines.index("Bills") + 1
    assert len(raw) < 500
    paper.save_png(tmp_path / "ticket.png")
    print(f"ticket with a location: {len(raw)} bytes, {tmp_path / 'ticket.png'}")
    # a service without a place prints no empty line for it
    plain = tickets.service_for_ticket(
        db, tickets.issue_ticket(db, "permits", language="fi", moment=at("2026-11-23T10:00"))
    )
    without = render_ticket(ticket_content(settings, ticket, plain))
    assert all("Room 204" not in line for line in render_bytes(without)[0].lines)
    assert len(without) < len(raw)


def test_a_trailing_newline_never_passes_as_part_of_an_id_or_prefix():
    """``$`` matches before a final newline: "demo\\n" once passed the id check."""
    from server import branch_file
    from server.storage import Rejected

    branch = {"id": "demo\n", "name": "D", "ticket_url_template": "https://q.example/t/{token}"}
    with pytest.raises(Rejected, match="id must be"):
        branch_file.check_branch(branch)
    for bad in ({"id": "pay\n", "prefix": "A", "name": "Pay"}, {"id": "pay", "prefix": "A\n"}):
        with pytest.raises(Rejected):
            branch_file.check_service(bad)
    with pytest.raises(Rejected):
        branch_file.check_category({"id": "top\n", "name": "Top"})
