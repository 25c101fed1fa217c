"""The server's storage verbs on a real SQLite file: pairing, leases, exactly-once."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta

import pytest

from server.storage import Rejected, Storage, Unauthorized, now
from sync import protocol
from tests.server_data import batch, paired, ticket, today


def test_a_pairing_code_works_once_and_the_token_is_stored_hashed(storage, tmp_path):
    code = storage.new_pairing_code("demo")
    reply = storage.pair(code, "door")
    assert storage.kiosk_for_token(reply.token)["id"] == reply.kiosk_id
    with pytest.raises(Unauthorized):
        storage.pair(code, "again")
    with storage.reading() as db:
        assert reply.token not in str(db.execute("SELECT * FROM kiosks").fetchall())
        assert code not in str(db.execute("SELECT * FROM pairing_codes").fetchall())


def test_an_expired_code_and_a_revoked_token_are_refused(storage):
    with pytest.raises(Unauthorized, match="expired"):
        storage.pair(storage.new_pairing_code("demo", ttl_s=-1), "late")
    reply = storage.pair(storage.new_pairing_code("demo"), "door")
    assert storage.revoke(reply.kiosk_id)
    with pytest.raises(Unauthorized, match="revoked"):
        storage.kiosk_for_token(reply.token)


def test_each_kiosk_gets_its_own_reserve_series(storage):
    tags = {storage.pair(storage.new_pairing_code("demo"), f"k{i}").reserve_tag for i in range(5)}
    assert tags == {"K1", "K2", "K3", "K4", "K5"}


def _lease_many(args) -> list[tuple[int, int]]:
    path, token, day = args
    store = Storage(path)
    kiosk = store.kiosk_for_token(token)
    request = protocol.LeaseRequest(service_id="payments", day=day, count=10)
    return [(r.first, r.last) for r in (store.lease(kiosk, request) for _ in range(20))]


def test_leases_never_overlap_even_when_kiosks_ask_at_once(storage):
    tokens = [storage.pair(storage.new_pairing_code("demo"), f"k{i}").token for i in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        blocks = pool.map(_lease_many, [(storage.target, t, today(storage)) for t in tokens])
    numbers = [n for chunk in blocks for first, last in chunk for n in range(first, last + 1)]
    assert sorted(numbers) == list(range(1, 801))


def test_a_ticket_is_applied_once_forever(storage):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    first = storage.ingest(kiosk, batch(ticket(1, day=day), ticket(2, day=day)))
    again = storage.ingest(kiosk, batch(ticket(1, day=day), ticket(2, day=day), ticket(3, day=day)))
    assert [r.result for r in first] == ["created", "created"]
    assert [r.result for r in again] == ["duplicate", "duplicate", "created"]
    assert storage.queue("demo")["payments"].waiting == 3


def _ingest_json(args) -> list[str]:
    target, token, body, start = args
    store = Storage(target)
    kiosk = store.kiosk_for_token(token)
    start.wait()  # both retries reach the server at the same instant
    return [r.result for r in store.ingest(kiosk, protocol.TicketBatch.model_validate_json(body))]


def test_the_same_batch_retried_on_two_workers_at_once_is_applied_once(storage):
    """A kiosk's request timed out and it sent the batch again, which a load
    balancer gave to another worker while the first still ran."""
    reply = storage.pair(storage.new_pairing_code("demo"), "door")
    kiosk = storage.kiosk_for_token(reply.token)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=200))
    body = batch(*(ticket(n, day=day) for n in range(1, 201))).model_dump_json()
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, context.Pool(2) as pool:
        start = manager.Barrier(2)
        outcomes = pool.map(_ingest_json, [(storage.target, reply.token, body, start)] * 2)
    assert sorted(outcomes[0] + outcomes[1]) == ["created"] * 200 + ["duplicate"] * 200
    assert storage.queue("demo")["payments"].waiting == 200
    with storage.reading() as db:
        assert db.execute("SELECT applied_seq FROM kiosks").fetchone()[0] == 200


def test_numbers_not_leased_to_the_kiosk_are_rejected_not_dropped(storage):
    kiosk, other = paired(storage), paired(storage, "other")
    day = today(storage)
    storage.lease(other, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    results = storage.ingest(
        kiosk,
        batch(
            ticket(1, day=day),
            ticket(2, day=day, series=kiosk["reserve_tag"]),
            ticket(3, day=day, series="Z9"),
            ticket(4, day=day, service="nope"),
        ),
    )
    assert [r.result for r in results] == [
        "rejected:number_not_leased",
        "created",
        "rejected:not_your_reserve_series",
        "rejected:unknown_service:nope",
    ]


def test_void_tickets_are_recorded_but_never_queued(storage):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    storage.ingest(kiosk, batch(ticket(1, day=day, state="void"), ticket(2, day=day)))
    assert storage.queue("demo")["payments"].waiting == 1


def test_a_late_ticket_keeps_its_place_by_the_kiosk_monotonic_clock(storage):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    storage.ingest(kiosk, batch(ticket(5, day=day, mono=10**9), mono=10**9))  # arrives now
    # issued 30 s of monotonic time before its batch was sent, whatever the wall clock said
    late = ticket(1, day=day, mono=0)
    late = late.model_copy(update={"issued_at": "2001-01-01T00:00:00+00:00"})
    storage.ingest(kiosk, batch(late, mono=30 * 10**9))
    with storage.reading() as db:
        queued = dict(db.execute("SELECT number, queued_at FROM tickets").fetchall())
    assert queued[1] < queued[5], "the offline ticket was issued first and stays first"
    assert datetime.fromisoformat(queued[1]) > now() - timedelta(seconds=40)


def test_a_fair_time_is_never_in_the_future_nor_before_the_day(storage):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    future = ticket(1, day=day).model_copy(
        update={"issued_at": "2999-01-01T00:00:00+00:00", "boot_id": "other"}
    )
    ancient = ticket(2, day=day).model_copy(
        update={"issued_at": "2001-01-01T00:00:00+00:00", "boot_id": "other"}
    )
    storage.ingest(kiosk, batch(future, ancient))
    with storage.reading() as db:
        queued = dict(db.execute("SELECT number, queued_at FROM tickets").fetchall())
        _, midnight = storage.branch_today(db, "demo")
    assert datetime.fromisoformat(queued[1]) <= now()
    assert datetime.fromisoformat(queued[2]) >= midnight.astimezone(UTC)


def test_leases_for_far_days_are_refused(storage):
    kiosk = paired(storage)
    with pytest.raises(Rejected, match="day_out_of_range"):
        storage.lease(
            kiosk, protocol.LeaseRequest(service_id="payments", day="2001-01-01", count=5)
        )


def test_a_gap_in_a_kiosks_sequence_is_taken_and_reported(storage, caplog):
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    storage.ingest(kiosk, batch(ticket(1, day=day)))
    results = storage.ingest(kiosk, batch(ticket(4, day=day)))  # 2 and 3 were lost
    assert [r.result for r in results] == ["created"]
    assert "tickets 2..3 never arrived" in caplog.text


def test_leases_continue_the_counter_per_service_and_day_and_are_recorded(storage):
    door, hall = paired(storage), paired(storage, "hall")
    day = today(storage)
    first = storage.lease(door, protocol.LeaseRequest(service_id="payments", day=day, count=10))
    second = storage.lease(hall, protocol.LeaseRequest(service_id="payments", day=day, count=5))
    other = storage.lease(door, protocol.LeaseRequest(service_id="permits", day=day, count=3))
    assert [(x.service_id, x.day, x.first, x.last) for x in (first, second, other)] == [
        ("payments", day, 1, 10),
        ("payments", day, 11, 15),
        ("permits", day, 1, 3),
    ]
    with storage.reading() as db:
        rows = db.execute(
            "SELECT kiosk_id, branch_id, service_id, day, first, last FROM leases ORDER BY id"
        ).fetchall()
    assert rows == [
        (door["id"], "demo", "payments", day, 1, 10),
        (hall["id"], "demo", "payments", day, 11, 15),
        (door["id"], "demo", "permits", day, 1, 3),
    ]
    with pytest.raises(Rejected, match="unknown_service:nope"):
        storage.lease(door, protocol.LeaseRequest(service_id="nope", day=day, count=1))


def test_a_full_batch_of_500_tickets_is_taken_in_one_go(storage):
    """The most a kiosk sends at once; on PostgreSQL its event is too long to
    notify whole (8,000 bytes): it is announced by id."""
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=500))
    results = storage.ingest(kiosk, batch(*(ticket(n, day=day) for n in range(1, 501))))
    assert {r.result for r in results} == {"created"}
    assert storage.queue("demo")["payments"].waiting == 500
