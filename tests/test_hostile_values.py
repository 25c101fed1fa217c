"""What the server takes from a kiosk token's holder: every value bounded, a bad
row refused alone with its reason, fair times within the ticket's day and
never after its arrival, leases capped and pruned, and every waiting ticket
its own place. Storage verbs and HTTP on a real server, on each database."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa

from server.storage import Rejected, Storage, iso, now, schema
from sync import exchange, protocol, tickets
from tests.server_data import batch, paired, ticket, today
from tests.server_process import demo_server
from tests.test_tickets import standalone_db

# -- the queue's order (fair times) ---------------------------------------------


def _other_boot(t: protocol.TicketIn, issued_at: str) -> protocol.TicketIn:
    """A ticket of an earlier boot: only its wall clock says when it was issued."""
    return t.model_copy(update={"issued_at": issued_at, "boot_id": "an-earlier-boot"})


def _queued(storage: Storage) -> dict[int, str]:
    with storage.reading() as db:
        return dict(db.execute("SELECT number, queued_at FROM tickets").fetchall())


def _midnight(storage: Storage) -> datetime:
    with storage.reading() as db:
        return storage.branch_today(db, "demo")[1]


def test_tickets_of_days_whose_queue_nobody_calls_are_refused_alone(storage):
    kiosk = paired(storage)
    tag = kiosk["reserve_tag"]
    this_day = date.fromisoformat(today(storage))
    near_midnight = _midnight(storage) + timedelta(days=1) - now() < timedelta(minutes=10)
    days = {
        "2000-01-01": "rejected:day_out_of_range:2000-01-01",
        "2099-06-01": "rejected:day_out_of_range:2099-06-01",
        str(this_day + timedelta(days=2)): f"rejected:day_out_of_range:{this_day + timedelta(2)}",
        str(this_day - timedelta(days=2)): f"rejected:day_out_of_range:{this_day - timedelta(2)}",
        str(this_day - timedelta(days=1)): "created",  # offline over midnight
        str(this_day): "created",
    }
    tomorrow = str(this_day + timedelta(days=1))
    rows = [
        _other_boot(ticket(n, day=day, series=tag), f"{day}T12:00:00+02:00")
        for n, day in enumerate([*days, tomorrow], start=1)
    ]
    results = [r.result for r in storage.ingest(kiosk, batch(*rows))]
    assert results[:-1] == list(days.values())
    # tomorrow only minutes before midnight (a kiosk a little fast), as for leases
    assert results[-1] == ("created" if near_midnight else f"rejected:day_out_of_range:{tomorrow}")
    arrived = now()
    for queued in _queued(storage).values():
        assert datetime.fromisoformat(queued) <= arrived, "never a place time in the future"


def test_a_ticket_of_yesterday_keeps_a_place_time_within_yesterday(storage):
    kiosk = paired(storage)
    yesterday = str(date.fromisoformat(today(storage)) - timedelta(days=1))
    late = _other_boot(
        ticket(1, day=yesterday, series=kiosk["reserve_tag"]), iso(now() + timedelta(hours=3))
    )
    assert storage.ingest(kiosk, batch(late))[0].result == "created"
    queued = datetime.fromisoformat(_queued(storage)[1])
    assert _midnight(storage) - timedelta(days=1) <= queued <= _midnight(storage)


@pytest.mark.parametrize("issued_at", ["2000-01-01T08:00:00+00:00", "yesterday"])
def test_an_old_issue_time_does_not_put_a_ticket_first_in_line(storage, issued_at):
    honest, liar = paired(storage, "honest"), paired(storage, "liar")
    day = today(storage)
    for kiosk in (honest, liar):
        storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    storage.ingest(honest, batch(ticket(1, day=day)))
    if issued_at == "yesterday":  # a believable time, but before the day began
        issued_at = iso(_midnight(storage) - timedelta(minutes=5))
    result = storage.ingest(liar, batch(_other_boot(ticket(11, day=day), issued_at)))
    assert result[0].result == "created", "the customer holds paper: it is queued"
    assert storage.call_next("demo", "1")["number"] == "A001", "the honest ticket came first"
    assert storage.call_next("demo", "1", finish="served")["number"] == "A011"


def test_one_wrong_clock_does_not_push_a_kiosks_later_tickets_back(storage):
    """An offline kiosk's ticket with a clock from the future, then three with
    true times: those three keep their places among another kiosk's tickets,
    and the kiosk's own order is kept."""
    offline, online = paired(storage, "offline"), paired(storage, "online")
    day = today(storage)
    for kiosk in (offline, online):
        storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    step = min(timedelta(minutes=10), (now() - _midnight(storage)) / 8)
    start = now() - 6 * step
    storage.ingest(  # issued between the offline kiosk's 2nd and 3rd ticket
        online, batch(_other_boot(ticket(11, day=day, seq=1), iso(start + 3 * step)))
    )
    rows = [
        _other_boot(ticket(1, day=day), "2999-01-01T00:00:00+00:00"),
        _other_boot(ticket(2, day=day), iso(start + 2 * step)),
        _other_boot(ticket(3, day=day), iso(start + 4 * step)),
        _other_boot(ticket(4, day=day), iso(start + 5 * step)),
    ]
    assert [r.result for r in storage.ingest(offline, batch(*rows))] == ["created"] * 4
    queued = _queued(storage)
    assert abs(datetime.fromisoformat(queued[2]) - (start + 2 * step)) < timedelta(seconds=5)
    called = [storage.call_next("demo", "1", finish="served")["number"] for _ in range(5)]
    assert called == ["A001", "A002", "A011", "A003", "A004"]


def test_same_boot_tickets_are_still_placed_by_the_monotonic_clock_and_unsure_ones_parked(
    storage,
):
    kiosk = paired(storage)
    sure = ticket(1, day="2020-01-01", series=kiosk["reserve_tag"], mono=10**9).model_copy(
        update={"issued_at": "2020-01-01T08:00:00+00:00", "time_source": "unsure"}
    )
    lost = ticket(2, day="2020-01-01", series=kiosk["reserve_tag"], mono=5).model_copy(
        update={"time_source": "unsure", "boot_id": "an-earlier-boot"}
    )
    results = storage.ingest(kiosk, batch(sure, lost, mono=2 * 10**9))
    assert [r.result for r in results] == ["created", "created"]
    with storage.reading() as db:
        rows = dict(db.execute("SELECT number, day || ' ' || status FROM tickets").fetchall())
    assert rows == {1: f"{today(storage)} waiting", 2: "2020-01-01 parked"}


# -- malformed values over HTTP ---------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    directory = tmp_path_factory.mktemp("hostile")
    yield from demo_server(directory, server_database.new(directory))


@pytest.fixture(scope="module")
def auth(server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.kiosk_token()}"}


@pytest.fixture(scope="module")
def leased(server, auth) -> dict:
    """A lease for the branch's today, and the next unused number of it."""
    day = requests.get(f"{server.url}/healthz", timeout=5).json()["server_time"]
    zone = server.sql("SELECT timezone FROM branches WHERE id = 'demo'")[0][0]
    day = datetime.fromisoformat(day).astimezone(ZoneInfo(zone)).date().isoformat()
    reply = requests.post(
        f"{server.url}{protocol.API}/kiosk/leases",
        json={"service_id": "payments", "day": day, "count": 100},
        headers=auth,
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    return {"day": day, "numbers": count(reply.json()["first"])}


def _row(leased: dict, **changes) -> dict:
    n = next(leased["numbers"])
    return {
        "id": f"{n:032x}",
        "public_token": f"hostile-{n:014d}",
        "kiosk_seq": n,
        "service_id": "payments",
        "day": leased["day"],
        "number": n,
        "display": f"A{n:03d}",
        "language": "fi",
        "issued_at": iso(now()),
        "state": "printed",
        "issued_mono_ns": 1,
    } | changes


def _push(server, auth, body: dict | bytes) -> requests.Response:
    return requests.post(
        f"{server.url}{protocol.API}/kiosk/tickets",
        **({"data": body} if isinstance(body, bytes) else {"json": body}),
        headers=auth | {"Content-Type": "application/json"},
        timeout=10,
    )


def _tickets(server) -> int:
    return server.sql("SELECT COUNT(*) FROM tickets")[0][0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kiosk_seq": 2**64}, "kiosk_seq"),
        ({"kiosk_seq": 2**63}, "kiosk_seq"),
        ({"kiosk_seq": 0}, "kiosk_seq"),
        ({"issued_mono_ns": -1e30}, "issued_mono_ns"),
        ({"issued_mono_ns": 2**64}, "issued_mono_ns"),
        ({"issued_at": "9999-12-31T23:59:59+00:00"}, "issued_at"),
        ({"issued_at": "2026-11-23T10:00:00"}, "issued_at"),  # no offset: no instant
        ({"issued_at": "tomorrow"}, "issued_at"),
        ({"day": "2026-02-30"}, "day"),
        ({"day": "0000-01-01"}, "day"),
        ({"number": 10**12}, "number"),
        ({"boot_id": "b" * 10_000}, "boot_id"),
        ({"display": "A\x1b[2J"}, "display"),
        ({"language": "fi\n"}, "language"),
    ],
)
def test_a_malformed_row_is_refused_alone_and_the_rest_of_the_batch_applies(
    server, auth, leased, change, field
):
    before = _tickets(server)
    good_before, bad, good_after = _row(leased), _row(leased, **change), _row(leased)
    reply = _push(
        server,
        auth,
        {"sent_at": iso(now()), "sent_mono_ns": 2, "tickets": [good_before, bad, good_after]},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"] == [
        {"id": good_before["id"], "result": "created"},
        {"id": bad["id"], "result": f"rejected:invalid:{field}"},
        {"id": good_after["id"], "result": "created"},
    ]
    assert _tickets(server) == before + 2


def test_a_row_that_is_not_even_an_object_is_answered_in_its_place(server, auth, leased):
    good = _row(leased)
    body = {"sent_at": iso(now()), "sent_mono_ns": 2, "tickets": [7, {"id": ["x"]}, good]}
    reply = _push(server, auth, body)
    assert reply.status_code == 200
    assert [(r["id"], r["result"]) for r in reply.json()["results"]] == [
        ("", "rejected:invalid:row"),
        (
            "",
            "rejected:invalid:id,public_token,kiosk_seq,service_id,day,number,display,"
            "language,issued_at,state,issued_mono_ns",
        ),
        (good["id"], "created"),
    ]


@pytest.mark.parametrize(
    "envelope",
    [
        {"sent_at": "0001-01-01T00:00:00+00:00"},
        {"sent_at": "2026-11-23T10:00:00"},
        {"sent_mono_ns": -1},
        {"sent_mono_ns": 2**64},
        {"boot_id": "\x00" * 100},
    ],
)
def test_a_malformed_envelope_is_refused_whole_with_422_and_changes_nothing(
    server, auth, leased, envelope
):
    before = _tickets(server)
    row = _row(leased, issued_at="9999-01-01T00:00:00+00:00")
    body = {"sent_at": iso(now()), "sent_mono_ns": 2, "tickets": [row]} | envelope
    reply = _push(server, auth, body)
    assert reply.status_code == 422
    assert _tickets(server) == before


@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "0000-01-01", "9999-12-31"])
def test_a_lease_for_a_day_that_does_not_exist_is_refused_not_a_500(server, auth, day):
    reply = requests.post(
        f"{server.url}{protocol.API}/kiosk/leases",
        json={"service_id": "payments", "day": day, "count": 10},
        headers=auth,
        timeout=5,
    )
    assert reply.status_code == 422


@pytest.mark.parametrize(
    "beat",
    [
        b'{"printer": "' + b"p" * 1000 + b'"}',
        b'{"version": "' + b"v" * 1000 + b'"}',
        b'{"printer": "ok\\u001b[2J"}',
        b'{"outbox": -1}',
        b'{"parked": -5}',
        b'{"outbox": 1' + b"0" * 400 + b"}",
        b'{"sent_at": "' + b"s" * 1000 + b'"}',
        b'{"sent_at": "2026-11-23T10:00:00"}',
        b'{"problems": ["' + b"x" * 600 + b'"]}',
    ],
)
def test_a_heartbeat_with_an_unbounded_value_is_refused_and_stores_nothing(server, auth, beat):
    stored = server.sql("SELECT last_heartbeat FROM kiosks")
    reply = requests.post(
        f"{server.url}{protocol.API}/kiosk/heartbeat",
        data=beat,
        headers=auth | {"Content-Type": "application/json"},
        timeout=5,
    )
    assert reply.status_code == 422
    assert server.sql("SELECT last_heartbeat FROM kiosks") == stored


def test_the_openapi_document_shows_a_ticket_row_as_ticketin(server):
    document = requests.get(f"{server.url}/openapi.json", timeout=5).json()
    schemas = document["components"]["schemas"]
    assert schemas["TicketBatch"]["properties"]["tickets"]["items"] == {
        "$ref": "#/components/schemas/TicketIn"
    }
    assert schemas["TicketIn"]["properties"]["kiosk_seq"]["maximum"] == 10**18
    assert schemas["TicketIn"]["properties"]["issued_at"]["format"] == "date-time"


def test_a_row_the_kiosk_cannot_send_is_parked_there_not_sent_for_ever(tmp_path):
    db = standalone_db(tmp_path / "state.db")
    issued = [tickets.issue_ticket(db, "payments", language="fi") for _ in range(3)]
    for each in issued:
        tickets.mark_printed(db, each.id)
    with db.conn:  # a damaged or hand-edited row
        db.execute("UPDATE tickets SET language = 'fi\x1b' WHERE id = ?", [issued[1].id])
    assert [t.id for t in exchange.pending(db, limit=10)] == [issued[0].id, issued[2].id]
    reason = db.execute(
        "SELECT parked_reason FROM outbox WHERE ticket_id = ?", [issued[1].id]
    ).fetchone()[0]
    assert reason == "rejected:invalid:language"
    assert exchange.counts(db) == {"outbox": 2, "parked": 1}, "shown in the heartbeat"


# -- growth ------------------------------------------------------------------------


LEASE_UNUSED_MAX = 2000  # as server.storage: two blocks of the most a kiosk may ask at once


def test_a_kiosks_unused_leased_numbers_are_capped_and_free_up_as_it_issues(storage):
    kiosk = paired(storage)
    day = today(storage)
    block = protocol.LeaseRequest(service_id="payments", day=day, count=1000)
    for _ in range(LEASE_UNUSED_MAX // 1000):
        storage.lease(kiosk, block)
    with pytest.raises(Rejected, match="lease_cap"):
        storage.lease(kiosk, block)
    with pytest.raises(Rejected, match="lease_cap"):
        storage.lease(kiosk, block.model_copy(update={"count": 1}))
    with storage.reading() as db:
        assert db.execute("SELECT next FROM counters").fetchone()[0] == LEASE_UNUSED_MAX + 1
    other = storage.lease(paired(storage, "other"), block)  # another kiosk is not held back
    assert other.first == LEASE_UNUSED_MAX + 1
    storage.ingest(kiosk, batch(*(ticket(n, day=day) for n in range(1, 11))))
    again = storage.lease(kiosk, block.model_copy(update={"count": 10}))
    assert (again.first, again.last) == (LEASE_UNUSED_MAX + 1001, LEASE_UNUSED_MAX + 1010)


def test_leases_of_days_before_yesterday_are_pruned(storage):
    kiosk = paired(storage)
    this_day = date.fromisoformat(today(storage))
    with storage.transaction() as db:
        for back in (1, 2, 30):
            db.insert(
                "leases",
                {
                    "kiosk_id": kiosk["id"],
                    "branch_id": "demo",
                    "service_id": "payments",
                    "day": str(this_day - timedelta(days=back)),
                    "first": 1,
                    "last": 100,
                    "created_at": iso(now()),
                },
            )
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=str(this_day), count=5))
    with storage.reading() as db:
        days = sorted(r[0] for r in db.execute("SELECT day FROM leases"))
    assert days == [str(this_day - timedelta(days=1)), str(this_day)]


def _ingest_steps(storage: Storage, kiosk: dict, n: int) -> int:
    """SQLite's virtual-machine steps (in thousands) to take one ticket: a count
    that does not depend on the machine's speed."""
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    def counting(dbapi_connection, _record, _proxy) -> None:
        dbapi_connection.set_progress_handler(tick, 1000)

    def done(dbapi_connection, _record) -> None:
        dbapi_connection.set_progress_handler(None, 0)

    engine = storage.database.engine
    sa.event.listen(engine, "checkout", counting)
    sa.event.listen(engine, "checkin", done)
    try:
        result = storage.ingest(kiosk, batch(ticket(n, day=today(storage))))
    finally:
        sa.event.remove(engine, "checkout", counting)
        sa.event.remove(engine, "checkin", done)
    assert result[0].result == "created"
    return steps[0]


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)  # counts SQLite's steps
def test_taking_a_ticket_costs_the_same_however_many_leases_the_kiosk_holds(storage):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    few = _ingest_steps(storage, kiosk, 1)
    with storage.transaction() as db:  # as many leases as the old unbounded protocol allowed
        db.conn.execute(
            schema.leases.insert(),
            [
                {
                    "kiosk_id": kiosk["id"],
                    "branch_id": "demo",
                    "service_id": "permits",
                    "day": day,
                    "first": 100 + 10 * i,
                    "last": 109 + 10 * i,
                    "created_at": iso(now()),
                }
                for i in range(20_000)
            ],
        )
    many = _ingest_steps(storage, kiosk, 2)
    assert many <= few + 2, (few, many)


# -- places in the queue -------------------------------------------------------------


def _positions(storage: Storage, tokens: list[str]) -> list[int]:
    fresh = Storage(storage.target)  # no cached places
    return [fresh.ticket_by_token(token)["position"] for token in tokens]


def test_tickets_of_one_millisecond_each_get_their_own_place_in_calling_order(storage):
    door, hall = paired(storage, "door"), paired(storage, "hall")
    day = today(storage)
    for kiosk in (door, hall):
        storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    # one batch, one monotonic instant: the same place time for all five
    same = [ticket(n, day=day, mono=10**9) for n in range(1, 6)]
    storage.ingest(door, batch(*same, mono=10**9))
    # and two tickets of another kiosk with the same time and the same sequence numbers
    storage.ingest(hall, batch(ticket(11, day=day, seq=1), ticket(12, day=day, seq=2)))
    with storage.transaction() as db:
        db.execute("UPDATE tickets SET queued_at = (SELECT MIN(queued_at) FROM tickets)")
        rows = db.execute("SELECT display, public_token FROM tickets").fetchall()
    token = dict(rows)
    positions = dict(zip(token, _positions(storage, list(token.values())), strict=True))
    assert sorted(positions.values()) == list(range(1, 8)), positions
    by_place = sorted(positions, key=positions.get)
    called = [storage.call_next("demo", "1", finish="served")["number"] for _ in range(7)]
    assert called == by_place
    assert by_place.index("A001") < by_place.index("A002") < by_place.index("A005")
