"""Seeded fault injection through real processes (a fast subset; `make soak` runs 200)."""

from __future__ import annotations

import pytest

from tests.chaos import ChaosProxy, run_scenario


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_nothing_lost_nothing_doubled_under_faults_and_kills(seed, tmp_path):
    outcome = run_scenario(seed, tmp_path, steps=10)
    assert outcome.issued == outcome.on_server > 0
    injected = {fault for fault, count in outcome.faults.items() if count and fault != "pass"}
    assert len(injected) >= 2, f"faults really injected: {outcome.faults}"
    assert sum(outcome.kills.values()) >= 2, f"processes really killed: {outcome.kills}"


@pytest.mark.parametrize("seed", [11, 15])  # seeds whose draws kill workers and the database
def test_on_postgresql_with_workers_nothing_lost_nothing_doubled(
    seed, tmp_path, postgres_url, postgres_cluster
):
    """Three workers on PostgreSQL: the same faults, plus a worker killed alone
    (perhaps mid-transaction) and PostgreSQL crashing and coming back, while
    two counters call: nothing lost, nothing twice, no number twice, each
    ticket called once to one counter."""
    outcome = run_scenario(
        seed, tmp_path, steps=10, database=postgres_url, workers=3, cluster=postgres_cluster
    )
    assert outcome.issued == outcome.on_server > 0
    assert outcome.kills.get("worker", 0) >= 1 and outcome.kills.get("postgres", 0) >= 1
    assert outcome.called > 0, "the counters really called"


def test_the_proxy_really_injects_every_fault(tmp_path):
    """Every fault kind, through the proxy, against a real server."""
    import requests

    from tests.server_process import Server

    server = Server(tmp_path / "server.db")
    try:
        for fault in ("drop", "reset", "truncate", "lost_reply"):
            proxy = ChaosProxy(server.port, seed=0)
            proxy.set_faults(**{fault: 1.0})
            with pytest.raises(requests.RequestException):
                requests.get(f"{proxy.url}/healthz", timeout=2)
            proxy.close()
        proxy = ChaosProxy(server.port, seed=0)
        proxy.set_faults(blackhole=1.0)
        with pytest.raises(requests.Timeout):
            requests.get(f"{proxy.url}/healthz", timeout=0.5)
        proxy.close()
        proxy = ChaosProxy(server.port, seed=0)
        proxy.set_faults(duplicate=1.0)
        assert requests.get(f"{proxy.url}/healthz", timeout=2).json()["ok"]
        proxy.close()
    finally:
        server.stop()
