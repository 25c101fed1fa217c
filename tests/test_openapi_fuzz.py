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
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import schemathesis
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

from tests.server_process import DEMO_BRANCH, Server

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
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("fuzz") / "server.db")
    srv.cli("branch", str(DEMO_BRANCH))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kiosk_token(server) -> str:
    code = server.cli("pair-code", "--branch", "demo")
    reply = requests.post(
        f"{server.url}/api/v1/pair", json={"code": code, "name": "fuzzed"}, timeout=5
    )
    assert reply.status_code == 200
    return reply.json()["token"]


def issue_a_ticket(server, kiosk_token: str) -> str:
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
    token = "fuzzTicketToken0000001"
    ticket = {
        "id": "f" * 32,
        "public_token": token,
        "kiosk_seq": 1,
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
    operation, mode, base_url: str, headers: dict[str, str], known: dict[str, list[str]]
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
            base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=20
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
