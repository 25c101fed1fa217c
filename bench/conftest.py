"""Benchmarks run tiny under `make test` (to prove they work) and full under
`make bench`, which prints a table and writes var/bench/latest.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FULL = os.environ.get("VUORO_BENCH") == "full"
RESULTS: dict[str, dict] = {}


@pytest.fixture
def record():
    def put(name: str, **figures) -> None:
        RESULTS[name] = figures

    return put


@pytest.fixture
def scale() -> int:
    """How many repetitions: tiny in `make test`, real in `make bench`."""
    return 500 if FULL else 5


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    width = max(len(k) for k in RESULTS) + 2
    print("\n\nbenchmark" + " " * (width - 9) + "figures")
    for name, figures in RESULTS.items():
        shown = ", ".join(f"{k}={v}" for k, v in figures.items())
        print(f"{name:<{width}}{shown}")
    if FULL:
        out = Path(session.config.rootpath) / "var" / "bench" / "latest.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False) + "\n")
        print(f"written to {out}")
