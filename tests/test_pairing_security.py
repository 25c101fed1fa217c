"""Pairing codes against guessing and leaks, and the operator's listings
against kiosks that name themselves with terminal escape sequences."""

from __future__ import annotations

import hashlib
import http.client
import json
import time

import pytest

from server.storage import (
    MAX_LIVE_CODES,
    PAIR_ADDRESS,
    PAIR_SERVER,
    Rejected,
    Throttled,
    Unauthorized,
)
from tests.server_process import DEMO_BRANCH, Server, run

WRONG = "WRONG234"


@pytest.fixture
def one_instant(monkeypatch) -> None:
    """The guesses come in one instant, as an attacker's burst does: the buckets
    leak while the DB writes them, and on a busy machine the writes would take
    long enough to leak the bucket below full; the test would measure the disk."""
    burst = time.time()
    monkeypatch.setattr(time, "time", lambda: burst)


def test_wrong_codes_are_throttled_per_address_even_for_the_right_code(storage, one_instant):
    code = storage.new_pairing_code("demo")
    for _ in range(PAIR_ADDRESS.capacity):
        with pytest.raises(Unauthorized):
            storage.pair(WRONG, "guess", "10.0.0.1")
    with pytest.raises(Throttled) as throttled:
        storage.pair(code, "door", "10.0.0.1")
    assert 0 < throttled.value.seconds <= PAIR_ADDRESS.leak_s
    assert storage.pair(code, "door", "10.0.0.2").kiosk_id, "another address pairs"


def test_wrong_codes_from_everywhere_are_throttled_together(storage, one_instant):
    """A botnet, one guess per address: the server-wide bucket fills too."""
    for n in range(PAIR_SERVER.capacity):
        with pytest.raises(Unauthorized):
            storage.pair(WRONG, "guess", f"10.1.{n // 200}.{n % 200 + 1}")
    with pytest.raises(Throttled):
        storage.pair(WRONG, "guess", "10.2.0.1")


def test_an_ipv6_host_cannot_multiply_itself_within_its_64(storage, one_instant):
    for n in range(PAIR_ADDRESS.capacity):
        with pytest.raises(Unauthorized):
            storage.pair(WRONG, "guess", f"2001:db8:1:2::{n + 1:x}")
    with pytest.raises(Throttled):
        storage.pair(WRONG, "guess", "2001:db8:1:2:ffff::1")
    with pytest.raises(Unauthorized):
        storage.pair(WRONG, "guess", "2001:db8:1:3::1")  # another /64, another host


def test_codes_are_stored_salted_and_slow_to_guess(storage):
    """A leaked DB must not give an unused code away: not the SHA-256 of the
    code (40 bits: minutes on a GPU), but a salted Argon2 hash."""
    codes = [storage.new_pairing_code("demo") for _ in range(2)]
    with storage.reading() as db:
        stored = [r[0] for r in db.execute("SELECT code_hash FROM pairing_codes")]
    assert all(h.startswith("$argon2id$") for h in stored), stored
    assert not {hashlib.sha256(c.encode()).hexdigest() for c in codes} & set(stored)
    assert storage.pair(codes[1], "door", "10.0.0.1").branch_id == "demo"
    with pytest.raises(Unauthorized):
        storage.pair(codes[1], "again", "10.0.0.1")


def test_a_branch_holds_a_bounded_number_of_unused_codes(storage):
    """Every pairing checks the live codes; a manager cannot make that cost unbounded."""
    for _ in range(MAX_LIVE_CODES):
        storage.new_pairing_code("demo")
    with pytest.raises(Rejected, match="wait unused"):
        storage.new_pairing_code("demo")


def pair_from(server: Server, source: str, code: str) -> tuple[int, str | None]:
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=30, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/api/v1/pair",
            json.dumps({"code": code, "name": "door"}),
            {"Content-Type": "application/json"},
        )
        reply = connection.getresponse()
        reply.read()
        return reply.status, reply.getheader("Retry-After")
    finally:
        connection.close()


def test_guessing_codes_over_http_gets_429_with_retry_after(tmp_path, server_database):
    server = server_database.server(tmp_path)
    try:
        server.load_branch(DEMO_BRANCH)
        code = server.pair_code()
        guesses = [pair_from(server, "127.0.7.1", WRONG)[0] for _ in range(PAIR_ADDRESS.capacity)]
        assert guesses == [401] * PAIR_ADDRESS.capacity
        status, retry_after = pair_from(server, "127.0.7.1", code)
        assert status == 429 and 0 < int(retry_after) <= PAIR_ADDRESS.leak_s
        assert pair_from(server, "127.0.7.2", code)[0] == 200
    finally:
        server.stop()


def test_kiosk_listings_show_control_characters_escaped(storage):
    """A kiosk names itself (and reports a version and a printer state) with
    escape sequences that would clear the operator's screen, retitle the
    window, ring the bell or fake a line: the listing shows them escaped."""
    storage.pair(storage.new_pairing_code("demo"), "d\x1b[2J\x1b]0;x\x07")
    beat = {"printer": "ok\r\nk-fake  all fine", "version": "1.0\x1b[31m\u202e", "outbox": 0}
    with storage.transaction() as db:  # as stored, whatever let it in
        db.execute("UPDATE kiosks SET last_heartbeat = ?", [json.dumps(beat)])
    listing = run("vuoro-server", "--db", storage.target, "kiosks", "--branch", "demo")
    assert not any(ch in listing for ch in "\x1b\x07\r\u202e"), repr(listing)
    assert "d\\x1b[2J\\x1b]0;x\\x07" in listing
    assert "ok\\r\\nk-fake" in listing and "1.0\\x1b[31m\\u202e" in listing
    assert len(listing.splitlines()) == 2, "a header and one kiosk, no faked line"
