"""Benchmarks run tiny under `make test` (to prove they work) and full under
`make bench`, which prints a table with each figure's target and verdict
(bench/targets.py) and writes both to var/bench/latest.json."""

from __future__ import annotations

import json
import os

import pytest

from bench import targets

FULL = os.environ.get("VUORO_BENCH") == "full"
RESULTS: dict[str, dict] = {}
WORKER_KEY = "vuoro_bench_results"


@pytest.fixture
def record():
    def put(name: str, **figures) -> None:
        RESULTS[name] = figures

    return put


@pytest.fixture
def scale() -> int:
    """How many repetitions: tiny in `make test`, real in `make bench`."""
    return 500 if FULL else 5


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """Under pytest-xdist the figures were taken in the workers: gather them here."""
    RESULTS.update(json.loads(node.workeroutput.get(WORKER_KEY, "{}")))


def pytest_sessionfinish(session, exitstatus):
    """Tiny figures prove nothing about speed: only a full run is judged."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: the controller prints
        workeroutput[WORKER_KEY] = json.dumps(RESULTS)
        return
    if not RESULTS:
        return
    print("\n\n" + targets.table(RESULTS, targets.judge(RESULTS) if FULL else None))
    if FULL:
        out = targets.LATEST
        out.parent.mkdir(parents=True, exist_ok=True)
        report = targets.report(RESULTS)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"written to {out}; `make bench-check` fails when a target is not met")
