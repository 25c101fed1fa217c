"""An independent property-based fuzzer (Schemathesis) driven by the server's
own ``/openapi.json``, against the real server process over loopback: every
operation, with well-formed and malformed requests, a paired kiosk's token
for the kiosk calls, must answer without a 5xx and exactly as documented
(status, content type, body schema, headers).

``make test`` runs a few examples per operation with a fixed seed;
``make soak`` runs many more (``VUORO_FUZZ_EXAMPLES``, ``VUORO_FUZZ_SEED``).
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import _render as render
from server.app import create_app
from server.console import COOKIE, console_router
from server.manage import manage_router
from server.storage import Storage
from tests.server_process import demo_server

EXAMPLES = int(os.environ.get("VUORO_FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("VUORO_FUZZ_SEED", "20261201"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
SERVICES = ("payments", "permits", "advice")  # the demo branch's


def known_values(ticket_token: str) -> dict[str, list[str]]:
    """Values the server knows, so that generated requests get past "no such
    service/branch/ticket" into the code behind it some of the time."""
    today = datetime.now(ZoneInfo("Europe/Helsinki")).date()
    return {
        "service_id": list(SERVICES),
        "branch_id": ["demo"],
        "day": [today.isoformat(), (today - timedelta(days=1)).isoformat()],
        "token": [ticket_token],
    }


def steer(case, choice: int | None, known: dict[str, list[str]]):
    """Put known values in place of generated ones where the names say so (a
    third of the examples are left as generated)."""
    if choice is None:
        return case

    def replace(value):
        if isinstance(value, dict):
            return {
                key: known[key][choice % len(known[key])]
                if key in known and isinstance(item, str)
                else replace(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [replace(item) for item in value]
        return value

    case.path_parameters.update(replace(case.path_parameters))
    if isinstance(case.body, dict | list):
        object.__setattr__(case, "body", replace(case.body))
    return case


@pytest.fixture(scope="module")
def server(tmp_path_factory, server_database):
    directory = tmp_path_factory.mktemp("fuzz")
    yield from demo_server(directory, server_database.new(directory))


@pytest.fixture(scope="module")
def kiosk_token(server) -> str:
    return server.kiosk_token("fuzzed")


def issue_a_ticket(
    server, kiosk_token: str, token: str = "fuzzTicketToken0000001", seq: int = 1
) -> str:
    """A ticket as a kiosk pushes one (on a leased number); its public token."""
    auth = {"Authorization": f"Bearer {kiosk_token}"}
    day = known_values("")["day"][0]
    lease = requests.post(
        f"{server.url}/api/v1/kiosk/leases",
        json={"service_id": "payments", "day": day, "count": 5},
        headers=auth,
        timeout=5,
    )
    assert lease.status_code == 200, lease.text
    now = datetime.now(ZoneInfo("Europe/Helsinki")).isoformat()
    ticket = {
        "id": f"{seq:032x}",
        "public_token": token,
        "kiosk_seq": seq,
        "service_id": "payments",
        "day": day,
        "number": lease.json()["first"],
        "display": f"A{lease.json()['first']:03d}",
        "language": "en",
        "issued_at": now,
        "state": "printed",
        "issued_mono_ns": 1,
    }
    pushed = requests.post(
        f"{server.url}/api/v1/kiosk/tickets",
        json={"sent_at": now, "sent_mono_ns": 2, "tickets": [ticket]},
        headers=auth,
        timeout=5,
    )
    assert pushed.json()["results"][0]["result"] == "created", pushed.text
    return token


def fuzz(
    operation,
    mode,
    base_url: str,
    headers: dict[str, str],
    known: dict[str, list[str]],
    checks: list = CHECKS,
    **call: object,
) -> list[str]:
    """Run one operation's examples; its first failure with a reproducer."""
    session = requests.Session()

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=st.tuples(operation.as_strategy(mode), st.sampled_from([None, 0, 1])).map(
            lambda drawn: steer(*drawn, known)
        )
    )
    def example(case) -> None:
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers=headers,
            checks=checks,
            timeout=20,
            allow_redirects=False,
            **call,
        )

    try:
        example()  # the first failure, shrunk to a small reproducer
    except Unsatisfiable:  # nothing in it to make malformed (GET /healthz)
        assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    except (Exception, FailureGroup) as exc:
        return [f"{mode.value} {operation.label}: {exc}"[:3000]]
    finally:
        session.close()
    return []


def test_every_operation_answers_as_documented(server, kiosk_token):
    known = known_values(issue_a_ticket(server, kiosk_token))
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json", timeout=10)
    failures, operations = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        needs_kiosk = bool(operation.definition.raw.get("security"))
        headers = {"Authorization": f"Bearer {kiosk_token}"} if needs_kiosk else {}
        for mode in MODES:
            failures += fuzz(operation, mode, server.url, headers, known)
    assert operations >= 10
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures[:15])


def staff_document() -> dict:
    """The staff's pages and forms, and the ticket page, as operations: not in
    the published document (they are HTML for people), but a clerk's or a
    manager's requests must never make a 5xx either, so the fuzzer gets them
    from a document of their own."""
    storage = Storage(Path(tempfile.mkdtemp(prefix="vuoro-doc-")) / "server.db")
    app = create_app(storage)
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path.startswith("/t/"):
            route.include_in_schema = True
    staff = FastAPI()
    staff.include_router(console_router(storage, render))
    staff.include_router(manage_router(storage, render))
    document, pages = staff.openapi(), app.openapi()
    document["paths"] |= {p: ops for p, ops in pages["paths"].items() if p.startswith("/t/")}
    document["components"]["schemas"] |= pages["components"]["schemas"]
    return document


@pytest.fixture(scope="module")
def manager(server) -> dict[str, str]:
    """A manager logged in: the session cookie and the forms' CSRF token."""
    server.cli(
        "staff",
        "--branch",
        "demo",
        "--username",
        "fuzzboss",
        "--counter",
        "9",
        "--role",
        "manager",
        stdin="fuzzing manager password\n",
    )
    with requests.Session() as browser:
        page = browser.post(
            f"{server.url}/console/login",
            data={"username": "fuzzboss", "password": "fuzzing manager password"},
            timeout=10,
        )
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf, page.text[:500]
        return {"session": browser.cookies[COOKIE], "csrf": csrf.group(1)}


def test_no_staff_request_is_a_server_error(server, kiosk_token, manager):
    """After the API's own run (a manager may revoke the fuzzed kiosk here)."""
    known = known_values(issue_a_ticket(server, kiosk_token, "fuzzTicketToken0000002", 2))
    known |= {
        "csrf": [manager["csrf"]],
        "service": list(SERVICES),
        "action": ["call", "start", "transfer", "served", "recall", "no_show"],
    }
    schema = schemathesis.openapi.from_dict(staff_document())
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda operation: operation.path == "/console/logout",  # the session's end last
    )
    failures = []
    for operation in operations:
        extra = (
            {"data": {"csrf": manager["csrf"]}}
            if "requestBody" not in operation.definition.raw
            else {}
        )
        # well-formed only: a malformed form is refused by the same code for every
        # page, and making path parameters malformed costs seconds per page
        for mode in MODES[:1]:
            failures += fuzz(
                operation,
                mode,
                server.url,
                {},
                known,
                checks=[not_a_server_error],
                cookies={COOKIE: manager["session"]},
                **extra,
            )
    assert len(operations) >= 15
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures[:15])
