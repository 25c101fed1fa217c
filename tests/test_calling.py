"""Calling tickets to counters: fair order, and never one ticket to two counters."""

from __future__ import annotations

import multiprocessing

from server.storage import Storage
from sync import protocol
from tests.server_data import batch, paired, ticket, today


def fill(storage: Storage, count: int) -> None:
    kiosk = paired(storage)
    day = today(storage)
    storage.lease(kiosk, protocol.LeaseRequest(service_id="payments", day=day, count=count))
    for start in range(0, count, 500):
        storage.ingest(
            kiosk,
            batch(
                *(
                    ticket(n, day=day, mono=n)
                    for n in range(start + 1, min(start + 500, count) + 1)
                ),
                mono=count + 1,
            ),
        )


def _call_all(args) -> list[str]:
    path, counter = args
    store = Storage(path)
    called = []
    while (ticket_called := store.call_next("demo", counter)) is not None:
        called.append(ticket_called["number"])
    return called


def test_many_counters_calling_at_once_never_get_the_same_ticket(storage):
    fill(storage, 400)
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        per_counter = pool.map(_call_all, [(storage.path, str(c)) for c in range(1, 9)])
    everything = [n for called in per_counter for n in called]
    assert len(everything) == 400 and len(set(everything)) == 400
    assert sum(1 for called in per_counter if called) >= 2, "the counters really raced"


def test_the_longest_fair_wait_is_called_first(storage):
    fill(storage, 5)
    called = [storage.call_next("demo", "1")["number"] for _ in range(5)]
    assert called == ["A001", "A002", "A003", "A004", "A005"]
    assert storage.call_next("demo", "1") is None
