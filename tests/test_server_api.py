"""The server's HTTP API on a real uvicorn process: the protocol, and bad input
of every shape getting a clear refusal while nothing changes."""

from __future__ import annotations

import pytest
import requests

from sync import protocol
from tests.server_process import demo_server


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    directory = tmp_path_factory.mktemp("api")
    yield from demo_server(directory, server_database.new(directory))


@pytest.fixture(scope="module")
def token(server) -> str:
    return server.kiosk_token()


def ticket_json(**changes) -> dict:
    return {
        "id": "a" * 32,
        "public_token": "t" * 22,
        "kiosk_seq": 1,
        "service_id": "payments",
        "day": "2026-11-23",
        "number": 1,
        "display": "A001",
        "language": "fi",
        "issued_at": "2026-11-23T10:00:00+00:00",
        "state": "printed",
        "issued_mono_ns": 1,
    } | changes


def api(server, path: str) -> str:
    return f"{server.url}{protocol.API}{path}"


def count(server, table: str) -> int:
    return server.sql(f"SELECT COUNT(*) FROM {table}")[0][0]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 422),
        (b'{"code": "ABCD2345"}', 422),
        (b'{"code": "abc", "name": "x"}', 422),
        (b'{"code": "ABCD2345", "name": "' + b"x" * 200 + b'"}', 422),
        ('{"code": "ÄÄÄÄ1234", "name": "ovi"}'.encode(), 422),
        (b'{"code": "ZZZZ9999", "name": "door"}', 401),
    ],
)
def test_bad_pairing_requests_are_refused_and_pair_nothing(server, token, body, status):
    kiosks = count(server, "kiosks")
    reply = requests.post(
        api(server, "/pair"), data=body, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert reply.status_code == status
    assert "detail" in reply.json()
    assert count(server, "kiosks") == kiosks


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer " + "x" * 5000]
)
def test_kiosk_calls_need_a_valid_token(server, header):
    headers = {"Authorization": header} if header else {}
    reply = requests.get(api(server, "/kiosk/config"), headers=headers, timeout=5)
    assert reply.status_code == 401


def test_config_has_an_etag_and_answers_304_when_unchanged(server, token):
    auth = {"Authorization": f"Bearer {token}"}
    first = requests.get(api(server, "/kiosk/config"), headers=auth, timeout=5)
    assert first.status_code == 200 and first.json()["branch"]["id"] == "demo"
    again = requests.get(
        api(server, "/kiosk/config"),
        headers=auth | {"If-None-Match": first.headers["ETag"]},
        timeout=5,
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "NOT-HEX"}, "id"),
        ({"public_token": "<script>"}, "public_token"),
        ({"service_id": "../../etc"}, "service_id"),
        ({"number": 0}, "number"),
        ({"state": "committed"}, "state"),
        ({"display": "A" * 100}, "display"),
        ({"day": "yesterday"}, "day"),
    ],
)
def test_a_malformed_ticket_is_refused_alone_with_its_field_and_changes_nothing(
    server, token, change, field
):
    body = {
        "sent_at": "2026-11-23T10:00:01+00:00",
        "sent_mono_ns": 2,
        "tickets": [ticket_json(**change)],
    }
    before = count(server, "tickets")
    reply = requests.post(
        api(server, "/kiosk/tickets"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert reply.status_code == 200
    assert [r["result"] for r in reply.json()["results"]] == [f"rejected:invalid:{field}"]
    assert count(server, "tickets") == before


def test_an_oversized_batch_is_refused(server, token):
    body = {
        "sent_at": "x",
        "sent_mono_ns": 2,
        "tickets": [ticket_json()] * (protocol.MAX_BATCH + 1),
    }
    reply = requests.post(
        api(server, "/kiosk/tickets"),
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert reply.status_code == 422


@pytest.mark.parametrize("token", ["x", "a" * 200, "../../../etc/passwd", "%00", "<b>hi</b>"])
def test_wrongly_shaped_public_tokens_get_a_404_that_reveals_nothing(server, token):
    reply = requests.get(f"{server.url}/api/v1/tickets/{token}", timeout=5)
    assert reply.status_code == 404
    page = requests.get(f"{server.url}/t/{token}", timeout=5)
    assert page.status_code == 404 and "<b>hi</b>" not in page.text


def test_a_ticket_not_yet_synced_gets_a_polite_page_that_refreshes(server):
    page = requests.get(f"{server.url}/t/{'Q' * 22}", timeout=5)
    assert page.status_code == 200
    assert "on its way" in page.text and 'http-equiv="refresh"' in page.text


def test_the_protocol_is_published_as_openapi(server):
    paths = requests.get(f"{server.url}/openapi.json", timeout=5).json()["paths"]
    for path in ("/pair", "/kiosk/config", "/kiosk/leases", "/kiosk/tickets", "/kiosk/heartbeat"):
        assert f"{protocol.API}{path}" in paths


@pytest.mark.parametrize("branch", ["nope", "DEMO", "../etc", "x" * 70])
def test_unknown_branches_have_no_queue_and_no_stats(server, branch):
    """Refused like a branch without a reader: nobody learns which branches exist."""
    for what in ("queue", "stats"):
        url = f"{server.url}/api/v1/branches/{branch}/{what}"
        assert requests.get(url, timeout=5).status_code in (401, 404)


def test_the_branch_queue_and_stats_are_json_for_its_displays(server):
    display = {"Authorization": f"Bearer {server.display_token()}"}
    queue = requests.get(f"{server.url}/api/v1/branches/demo/queue", headers=display, timeout=5)
    assert set(queue.json()) == {"payments", "permits", "advice"}
    stats = requests.get(
        f"{server.url}/api/v1/branches/demo/stats", headers=display, timeout=5
    ).json()
    assert stats["payments"]["issued"] >= 0
    bad_day = requests.get(
        f"{server.url}/api/v1/branches/demo/stats?day=monday", headers=display, timeout=5
    )
    assert bad_day.status_code == 422
