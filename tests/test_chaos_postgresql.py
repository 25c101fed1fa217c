"""The fault-injection scenario on PostgreSQL with several workers (a module of
its own, so it runs beside the SQLite runs of tests/test_chaos.py)."""

from __future__ import annotations

import pytest

from tests.chaos import run_scenario


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
