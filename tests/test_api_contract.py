"""What the OpenAPI document promises and the errors the API really gives:
refusals that never echo the request, a busy database answered with 503 and
Retry-After (kiosks retry), and a document without the staff's HTML pages."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
import requests
import uvicorn

from server.app import create_app
from server.branch_file import load as load_branch
from server.storage import Storage
from server.storage import database as storage_module
from sync import protocol
from sync.client import Refused, ServerClient
from tests.server_process import DEMO_BRANCH, demo_server, free_port

#: what any operation may answer (a body unreadable, too slow, too large; busy)
ANY_OPERATION = {"400", "408", "413", "503"}
#: and each operation's own error statuses
ERRORS_BY_OPERATION = {
    ("get", "/healthz"): set(),
    ("get", "/api/v1/tickets/{token}"): {"404"},
    ("get", "/api/v1/tickets/{token}/events"): {"404"},
    ("post", "/api/v1/pair"): {"401", "422", "429"},
    ("get", "/api/v1/kiosk/config"): {"304", "401", "422"},
    ("post", "/api/v1/kiosk/leases"): {"401", "422"},
    ("post", "/api/v1/kiosk/tickets"): {"401", "422"},
    ("post", "/api/v1/kiosk/heartbeat"): {"401", "422"},
    ("post", "/api/v1/tickets/{token}/cancel"): {"404", "415", "422"},
    ("get", "/api/v1/branches/{branch_id}/queue"): {"401", "404", "422"},
    ("get", "/api/v1/branches/{branch_id}/stats"): {"401", "404", "422"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    directory = tmp_path_factory.mktemp("contract")
    yield from demo_server(directory, server_database.new(directory))


@pytest.fixture(scope="module")
def token(server) -> str:
    return server.kiosk_token()


@pytest.fixture(scope="module")
def document(server) -> dict:
    return requests.get(f"{server.url}/openapi.json", timeout=5).json()


def test_the_document_lists_no_html_pages(document):
    html = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path.startswith(("/t/", "/console"))
        or any("text/html" in r.get("content", {}) for r in operation["responses"].values())
    ]
    assert html == []


def test_each_operation_declares_the_errors_it_can_give(document):
    declared = {
        (method, path): {status for status in operation["responses"] if status != "200"}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    for operation, statuses in ERRORS_BY_OPERATION.items():
        assert statuses | ANY_OPERATION <= declared.pop(operation), operation
    assert declared == {}, "an operation nobody checked"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status not in ("200", "304"):
                    assert "application/json" in response["content"], (method, path, status)


def test_kiosk_operations_declare_bearer_and_headers(document):
    assert document["components"]["securitySchemes"]["kiosk"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for operation in operations.values():
            kiosk_call = path.startswith(f"{protocol.API}/kiosk/")
            assert (operation.get("security") == [{"kiosk": []}]) == kiosk_call, path
            if kiosk_call:
                assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
            if "503" in operation["responses"]:
                assert "Retry-After" in operation["responses"]["503"]["headers"]
    config = document["paths"][f"{protocol.API}/kiosk/config"]["get"]["responses"]
    assert "ETag" in config["200"]["headers"] and "ETag" in config["304"]["headers"]


def _assert_bounded_issues(reply: requests.Response, echoed: str) -> None:
    assert reply.status_code == 422
    assert len(reply.content) < 6000, f"{len(reply.content)} bytes of refusal"
    assert echoed not in reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, list) and 1 <= len(detail) <= 20
    for issue in detail:
        assert set(issue) == {"loc", "msg", "type"}


def test_a_malformed_request_is_refused_without_echoing_it(server, token):
    long_text = "Z" * 4000  # 100 rows of it: 400 KB, within what a batch may carry
    ticket = {"id": "a" * 32, "display": long_text, "kiosk_seq": "many"}
    reply = requests.post(
        f"{server.url}/api/v1/kiosk/tickets",
        json={"sent_at": long_text, "sent_mono_ns": "x", "tickets": [ticket] * 100},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    _assert_bounded_issues(reply, "Z" * 100)


def test_a_wrong_shape_of_body_is_refused_without_echoing_it(server):
    reply = requests.post(f"{server.url}/api/v1/pair", json=[{"code": "Q" * 200}] * 10, timeout=10)
    _assert_bounded_issues(reply, "Q" * 100)


def test_a_refused_request_is_a_sentence_the_kiosk_shows(server, token):
    """A well-formed request refused as sent: 422 with a sentence, as protocol v1
    has always said (the kiosk parks the tickets with it)."""
    reply = requests.post(
        f"{server.url}/api/v1/kiosk/leases",
        json={"service_id": "nope", "day": "2026-01-01", "count": 10},
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert reply.status_code == 422
    assert isinstance(reply.json()["detail"], str) and reply.json()["detail"]


@pytest.fixture
def quick_server(tmp_path, monkeypatch):
    """The app on a loopback socket in a thread, with a short SQLite busy
    timeout (the process's own is 10 s) so a held lock shows in a moment."""
    monkeypatch.setattr(storage_module, "BUSY_TIMEOUT_MS", 300)
    db = tmp_path / "server.db"
    storage = Storage(db)
    branch, services = load_branch(DEMO_BRANCH)
    storage.put_branch(branch, services)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(storage), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", storage, db
    server.should_exit = True
    thread.join(timeout=10)


def test_a_busy_database_is_503_with_retry_after_not_500(quick_server):
    url, storage, db = quick_server
    code = storage.new_pairing_code("demo")
    token = requests.post(
        f"{url}/api/v1/pair", json={"code": code, "name": "door"}, timeout=5
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        busy = requests.post(f"{url}/api/v1/kiosk/heartbeat", json={}, headers=auth, timeout=10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.status_code == 503
    assert int(busy.headers["Retry-After"]) > 0
    assert busy.json() == {"detail": "the server is busy; try again shortly"}
    again = requests.post(f"{url}/api/v1/kiosk/heartbeat", json={}, headers=auth, timeout=10)
    assert again.status_code == 200


def test_a_forged_csrf_field_of_any_characters_is_refused_not_a_500(server):
    server.cli(
        "staff",
        "--branch",
        "demo",
        "--username",
        "clerk",
        "--counter",
        "3",
        stdin="counter three secret\n",
    )
    with requests.Session() as browser:
        page = browser.post(
            f"{server.url}/console/login",
            data={"username": "clerk", "password": "counter three secret"},
            timeout=10,
        )
        assert page.status_code == 200 and 'name="csrf"' in page.text
        for csrf in ("é", "\u00ff" * 40, "ä" + "x" * 50):
            forged = browser.post(
                f"{server.url}/console/act",
                data={"csrf": csrf, "action": "call"},
                allow_redirects=False,
                timeout=10,
            )
            assert forged.status_code == 403, csrf


def test_the_kiosk_reads_a_malformed_request_s_reason_as_where_and_what(server, token):
    """The sync client turns a 422's list into a line a parked ticket can carry."""
    client = ServerClient(server.url, token)
    odd = protocol.LeaseRequest.model_construct(service_id="payments", day="2026-01-01", count=0)
    with pytest.raises(Refused) as refused:
        client.lease(odd)
    assert "HTTP 422: body.count: Input should be greater than or equal to 1" in str(refused.value)
    client.close()


@pytest.mark.parametrize("day", ["2026-13-01", "2026-02-30", "0000-01-01", "monday"])
def test_stats_for_a_day_the_calendar_lacks_are_refused(server, day):
    reply = requests.get(
        f"{server.url}/api/v1/branches/demo/stats",
        params={"day": day},
        headers={"Authorization": f"Bearer {server.display_token()}"},
        timeout=5,
    )
    assert reply.status_code == 422 and isinstance(reply.json()["detail"], str)
