"""Wait estimates on a simulated day: arrivals and service times from a seeded
distribution, three counters. The learned estimate must beat the naive one."""

from __future__ import annotations

import heapq
import random
import statistics

from server import estimate

COUNTERS = 3
OPEN_S = 8 * 3600


def simulate(seed: int) -> dict[str, float]:
    """A FIFO queue served by COUNTERS counters; each arrival gets both estimates."""
    rng = random.Random(seed)
    mean_service = 240.0
    t, arrivals = 0.0, []
    while (t := t + rng.expovariate(1 / 85)) < OPEN_S:  # about 340 customers a day
        arrivals.append(t)
    free_at = [0.0] * COUNTERS  # when each counter is next free
    heapq.heapify(free_at)
    finished: list[tuple[float, float]] = []  # (finish time, service seconds)
    starts: list[float] = []
    errors_learned, errors_naive = [], []
    for arrival in arrivals:
        ahead = sum(1 for s in starts if s > arrival)  # called after this customer arrived
        seen = [seconds for end, seconds in finished if end <= arrival]
        predicted = estimate.wait_s(ahead, estimate.service_time(seen), COUNTERS)
        naive = estimate.naive_wait_s(ahead)
        start = max(arrival, heapq.heappop(free_at))
        seconds = rng.lognormvariate(0, 0.5) * mean_service / 1.133  # mean ≈ 240 s
        heapq.heappush(free_at, start + seconds)
        starts.append(start)
        finished.append((start + seconds, seconds))
        actual = start - arrival
        errors_learned.append(abs(predicted - actual))
        errors_naive.append(abs(naive - actual))
    return {
        "customers": len(arrivals),
        "mae_learned_s": statistics.mean(errors_learned),
        "mae_naive_s": statistics.mean(errors_naive),
    }


def test_the_learned_estimate_beats_the_naive_one_on_a_simulated_day():
    days = [simulate(seed) for seed in range(5)]
    learned = statistics.mean(d["mae_learned_s"] for d in days)
    naive = statistics.mean(d["mae_naive_s"] for d in days)
    print(
        f"\nsimulated days: {len(days)}, customers/day ≈ {days[0]['customers']}, "
        f"MAE learned {learned:.0f} s vs naive {naive:.0f} s"
    )
    assert learned < naive * 0.75
    assert all(d["mae_learned_s"] < d["mae_naive_s"] for d in days)


def test_a_new_service_starts_from_the_default_and_learns():
    assert estimate.service_time([]) == estimate.DEFAULT_SERVICE_S
    assert estimate.DEFAULT_SERVICE_S > estimate.service_time([60, 60]) > 60
    assert estimate.service_time([60] * 10) == 60
    assert estimate.service_time([60] * 10, same_hour=[600] * 5) == 600
    assert estimate.service_time([60] * 10, [600] * 4, [300] * 5) == 300, "same hour, any day"
    assert estimate.service_time([60] * 10, [600] * 5, [300] * 5) == 600, "the weekday wins"
    assert estimate.service_time([60] * 9 + [5000]) == 60, "one long case does not swing it"
    assert estimate.wait_s(6, 120, 3) == 240 and estimate.wait_s(0, 120, 3) == 0


def test_the_server_learns_from_its_own_served_tickets(storage):
    from datetime import timedelta

    from server.storage import iso, now
    from tests.test_calling import fill

    fill(storage, 12)
    with storage.transaction() as db:  # yesterday's-style history: six served, 60 s each
        for n in range(1, 7):
            called = now() - timedelta(minutes=20 - n)
            db.execute(
                "UPDATE tickets SET status = 'served', counter = ?, called_at = ?, "
                "finished_at = ? WHERE number = ?",
                [str(n % 2), iso(called), iso(called + timedelta(seconds=60)), n],
            )
    queue = storage.queue("demo")["payments"]
    assert queue.waiting == 6
    assert queue.estimated_wait_s == 6 * 60 / 2, "six ahead, a minute each, two counters"


def simulate_priorities(seed: int) -> dict[str, float]:
    """Priority and normal customers share three counters, priority called first.
    For each normal customer: the estimate that knows the priority queue and its
    arrivals, against the one that counts only the customer's own queue."""
    rng = random.Random(seed)
    seconds_each, rate = 240.0, 1 / 200  # each service: one arrival per 200 s
    arrivals = []
    for service in ("priority", "normal"):
        t = 0.0
        while (t := t + rng.expovariate(rate)) < OPEN_S:
            arrivals.append((t, service))
    arrivals.sort()
    rates = {
        "priority": estimate.Rate(seconds_each, COUNTERS, rate, priority=1),
        "normal": estimate.Rate(seconds_each, COUNTERS, rate, priority=0),
    }
    queues: dict[str, list[float]] = {"priority": [], "normal": []}
    free_at = [0.0] * COUNTERS
    predictions: dict[float, tuple[int, int]] = {}
    actual: dict[float, float] = {}
    for arrival, service in arrivals:
        # counters that came free before this arrival call priority first
        while queues["priority"] or queues["normal"]:
            counter = min(range(COUNTERS), key=free_at.__getitem__)
            first = min(
                (q for q in ("priority", "normal") if queues[q]),
                key=lambda q: (q != "priority", queues[q][0]),
            )
            start = max(free_at[counter], queues[first][0])
            if start > arrival:
                break
            queued = queues[first].pop(0)
            if first == "normal":
                actual[queued] = start - queued
            free_at[counter] = start + rng.lognormvariate(0, 0.5) * seconds_each / 1.133
        if service == "normal":
            waiting = {q: len(v) for q, v in queues.items()}
            ahead = waiting["normal"]
            predictions[arrival] = (
                estimate.wait_in_branch("normal", ahead, rates, waiting),
                estimate.wait_s(ahead, seconds_each, COUNTERS),
            )
        queues[service].append(arrival)
    done = [t for t in predictions if t in actual]
    return {
        "customers": len(done),
        "mae_priorities_s": statistics.mean(abs(predictions[t][0] - actual[t]) for t in done),
        "mae_own_queue_s": statistics.mean(abs(predictions[t][1] - actual[t]) for t in done),
    }


def test_priority_queues_and_their_arrivals_make_the_estimate_better():
    days = [simulate_priorities(seed) for seed in range(5)]
    with_priorities = statistics.mean(d["mae_priorities_s"] for d in days)
    own_queue = statistics.mean(d["mae_own_queue_s"] for d in days)
    print(
        f"\npriority day: normal customers/day ≈ {days[0]['customers']}, MAE with priorities "
        f"{with_priorities:.0f} s vs own queue only {own_queue:.0f} s"
    )
    assert with_priorities < own_queue


def test_the_load_of_higher_priorities_is_capped():
    rates = {
        "vip": estimate.Rate(300, 2, arrivals_per_s=1.0, priority=5),  # an absurd burst
        "normal": estimate.Rate(300, 2),
    }
    assert estimate.wait_in_branch("normal", 4, rates, {"vip": 0}) == round(4 * 300 / 0.4)
    assert estimate.wait_in_branch("vip", 4, rates, {"normal": 99}) == 600, "lower ones wait"


def test_one_more_person_ahead_adds_the_per_person_seconds():
    """What the kiosk adds for each of its own tickets since the server's snapshot."""
    rates = {
        "vip": estimate.Rate(120, 1, arrivals_per_s=1 / 600, priority=5),
        "normal": estimate.Rate(300, 2),
    }
    waiting = {"vip": 3}
    per_person = estimate.per_person_s("normal", rates)
    assert per_person == 300 / (2 - 120 / 600)
    for ahead in (0, 4, 11):
        now = estimate.wait_in_branch("normal", ahead, rates, waiting)
        later = estimate.wait_in_branch("normal", ahead + 5, rates, waiting)
        assert abs(later - (now + 5 * per_person)) <= 1, "only rounding apart"
    assert estimate.per_person_s("unknown", {}) == estimate.DEFAULT_SERVICE_S
