"""README: "Failures back off with full jitter, capped at a minute
(`--max-backoff`)". The draw itself (sync.daemon.Backoff, on a seeded random
source), the default cap the daemon runs with, and a real `vuoro-sync run`
against a server that is not there."""

from __future__ import annotations

import itertools
import random
import re
import statistics

from sync import cli
from sync.daemon import Backoff
from tests.server_process import BIN, Managed, run, wait_until

SERVER_DATABASES = ("sqlite",)  # the daemon's retries, with the server as a backdrop

DRAWS = 2000


def delays_at_failure(k: int, cap: float = 60.0) -> list[float]:
    """The k-th consecutive failure's wait, drawn by many seeded Backoffs."""
    draws = []
    for seed in range(DRAWS):
        backoff = Backoff(base=1.0, cap=cap, rng=random.Random(seed))
        for _ in range(k):
            delay = backoff.next_delay()
        draws.append(delay)
    return draws


def test_backoff_never_waits_longer_than_its_cap():
    """However many failures in a row, no wait exceeds the cap or goes below 0."""
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(7))
    waits = [backoff.next_delay() for _ in range(DRAWS)]
    assert max(waits) <= 60.0 and min(waits) >= 0.0
    assert max(waits) > 55.0, "the cap is reached, not some lower ceiling"


def test_backoff_at_the_cap_spreads_its_waits_over_the_whole_range():
    """Full jitter: once capped, a wait is uniform over [0, cap], so kiosks that
    lost the server together do not come back together. Not clustered at the
    cap (no jitter), nor in its upper half (equal jitter)."""
    waits = delays_at_failure(12)
    below_half = sum(w < 30.0 for w in waits) / len(waits)
    assert 0.45 < below_half < 0.55, below_half
    assert min(waits) < 3.0 and max(waits) > 57.0
    assert 27.0 < statistics.mean(waits) < 33.0
    assert len({round(w, 3) for w in waits}) > DRAWS * 0.9, "the waits are not spread"


def test_backoff_grows_with_each_failure_until_the_cap():
    """Before the cap, the range doubles with each failure in a row: the mean
    wait of the k-th failure is about 2**k / 2, then stays at cap / 2; a success
    (reset) starts again from the smallest range."""
    means = [statistics.mean(delays_at_failure(k)) for k in range(1, 8)]
    expected = [min(60.0, 2.0**k) / 2 for k in range(1, 8)]  # 1, 2, 4, 8, 16, 30, 30
    for mean, want in zip(means, expected, strict=True):
        assert want * 0.9 < mean < want * 1.1, (means, expected)
    assert all(a < b for a, b in itertools.pairwise(means[:6])), means
    assert max(delays_at_failure(1)) <= 2.0, "the first failure waits at most 2 base waits"

    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 2.0, "after a success the waits start small again"


def test_the_daemon_caps_its_waits_at_a_minute_by_default():
    """`vuoro-sync run` without `--max-backoff` runs with a cap of 60 s: what
    the CLI hands the daemon, and what its help says."""
    args = cli.parser().parse_args(["run"])
    assert args.max_backoff == 60.0
    assert Backoff().cap == 60.0
    assert "retries (default 60)" in " ".join(run("vuoro-sync", "run", "--help").split())


def test_a_daemon_without_its_server_retries_with_jittered_waits_within_max_backoff(branch):
    """A real `vuoro-sync run --max-backoff 0.8` whose server has stopped: it
    keeps trying, every logged wait ("next try in X s") is at most 0.8 s, and the waits are
    spread over the range rather than all the same."""
    server, kiosk_dir = branch
    server.stop()
    log = kiosk_dir / "sync-down.log"
    daemon = Managed(
        [str(BIN / "vuoro-sync"), "--state-dir", str(kiosk_dir), "run", "--max-backoff", "0.8"],
        log,
    )

    def waits() -> list[float]:
        return [float(w) for w in re.findall(r"next try in ([0-9.]+) s", log.read_text())]

    try:
        wait_until(
            lambda: len(waits()) >= 16 or max(waits(), default=0) > 0.8,
            timeout=60,
            what="16 retries",
        )
        assert daemon.process.poll() is None, "the daemon keeps running"
    finally:
        daemon.stop()
    logged = waits()
    assert all(0.0 <= w <= 0.8 for w in logged), logged
    # jittered, not a fixed wait: both halves of [0, 0.8] are drawn (each of
    # 16 uniform draws misses a half with odds 1 in 2**16)
    assert min(logged) < 0.4 < max(logged) and len(set(logged)) >= 3, logged
    assert "Connection refused" in log.read_text() or "ConnectionError" in log.read_text()
