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
