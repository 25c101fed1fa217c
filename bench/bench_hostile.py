"""The phone's ticket poll while a hostile client attacks the server, against
the same poll without the attack, in one run (tests/hostile.py: ~1,100 idle and
half-sent connections, a flood of wrong logins, 20 MB bodies).

Each poll opens a new connection, as a phone's does. The figures are the
quiet and the attacked p50 and p99, and their ratios (a ratio, because a slow
or busy machine slows both sides alike), the share of polls answered, and the
server's peak memory.
"""

from __future__ import annotations

from pathlib import Path

from tests.hostile import Attack, percentile, served_branch, timed


def polls(target, count: int) -> tuple[list[float], int]:
    """``count`` polls, one after the other: their times (s) and how many failed."""
    times, failed = [], 0
    for _ in range(count):
        try:
            seconds, reply = timed(target.poll)
        except OSError:  # requests' errors are OSErrors: a timeout, a refused connection
            failed += 1
            continue
        if reply.ok:
            times.append(seconds)
        else:
            failed += 1
    return times, failed


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory (Linux: VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])


def test_ticket_poll_under_attack(tmp_path, record, scale):
    count = max(20, scale)  # 20 in `make test`, 500 in `make bench`
    target = served_branch(tmp_path)
    try:
        polls(target, 5)  # warm up
        quiet, quiet_failed = polls(target, count)
        with Attack(target.server.port) as attack:
            attacked, attacked_failed = polls(target, count)
        peak_rss_mb = peak_rss_kib(target.server.process.pid) / 1024
    finally:
        target.server.stop()

    def ms(values: list[float], share: float) -> float:
        return round(percentile(values, share) * 1000, 2) if values else float("inf")

    figures = {
        "quiet_p50_ms": ms(quiet, 0.5),
        "quiet_p99_ms": ms(quiet, 0.99),
        "attacked_p50_ms": ms(attacked, 0.5),
        "attacked_p99_ms": ms(attacked, 0.99),
        "failed": quiet_failed + attacked_failed,
        "answered": round(1 - (quiet_failed + attacked_failed) / (2 * count), 3),
        "polls": count,
        "peak_rss_mb": round(peak_rss_mb),
    }
    figures["p50_ratio"] = round(figures["attacked_p50_ms"] / figures["quiet_p50_ms"], 1)
    figures["p99_ratio"] = round(figures["attacked_p99_ms"] / figures["quiet_p99_ms"], 1)
    record("ticket poll under attack", **figures)
    assert attack.done["idle sockets"] > 0
