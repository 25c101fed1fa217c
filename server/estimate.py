"""Wait estimates that learn from the branch's own history.

The method, in three parts:

1. *How long one customer takes* at a service: the median of the last
   ``SAMPLE`` service times (from call to finish) of that service, so one
   very long case does not swing it; with fewer than ``MIN_SAMPLES`` a new
   service starts from ``DEFAULT_SERVICE_S``, blended towards what it has
   seen as samples come in. Where the same hour of the week has enough
   samples of its own, those are used instead (Monday mornings differ);
   failing that, the same hour on any day (lunch hours differ everywhere).
2. *How many counters are serving it*: counters that called a ticket of the
   service in the last ``ACTIVE_WINDOW_S``, at least one.
3. *Who comes first*: counters call higher-priority services first, so
   someone waiting for a normal service also waits for the higher-priority
   customers already there, and for those still arriving while they wait:
   each service's *arrival rate* (tickets in the last ``ACTIVE_WINDOW_S``)
   times its service time is work that takes counters away. That load is
   capped at ``MAX_LOAD`` of the counters, so a burst never gives "forever".
4. *The wait*: the people ahead, times one service time, plus the
   higher-priority work, shared among the counters left after that load.
   (It assumes the counters serving a service also serve the higher-priority
   ones, as a counter handling both does.)

The ticket page, the kiosk's screen and the paper all get their estimate
from :func:`wait_s`, through the server's queue snapshot.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DEFAULT_SERVICE_S = 300.0
MIN_SAMPLES = 5
SAMPLE = 50
ACTIVE_WINDOW_S = 1800


def service_time(
    samples: Sequence[float],
    same_hour: Sequence[float] = (),
    same_hour_any_day: Sequence[float] = (),
) -> float:
    """Typical seconds per customer, from recent service times (newest last):
    the most specific time slot with enough samples wins."""
    for slot in (same_hour, same_hour_any_day):
        if len(slot) >= MIN_SAMPLES:
            return statistics.median(slot[-SAMPLE:])
    recent = [s for s in samples[-SAMPLE:] if s > 0]
    if not recent:
        return DEFAULT_SERVICE_S
    if len(recent) < MIN_SAMPLES:  # trust the data as it grows
        weight = len(recent) / MIN_SAMPLES
        return weight * statistics.median(recent) + (1 - weight) * DEFAULT_SERVICE_S
    return statistics.median(recent)


MAX_LOAD = 0.8


@dataclass(frozen=True)
class Rate:
    """What the branch's history says of one service now."""

    seconds_each: float = DEFAULT_SERVICE_S
    counters: int = 1
    arrivals_per_s: float = 0.0
    priority: int = 0


def wait_s(
    ahead: int, seconds_each: float, counters: int, before_s: float = 0.0, load: float = 0.0
) -> int:
    """Seconds until the customer with ``ahead`` people before them is called.

    ``before_s``: seconds of higher-priority work already waiting; ``load``:
    higher-priority work arriving per second (counters busy with it).
    """
    return round((max(ahead, 0) * seconds_each + before_s) / free_counters(counters, load))


def free_counters(counters: int, load: float = 0.0) -> float:
    """Counters left for a service after the higher-priority load (at least 20%)."""
    counters = max(counters, 1)
    return counters - min(max(load, 0.0), MAX_LOAD * counters)


def wait_in_branch(
    service: str, ahead: int, rates: Mapping[str, Rate], waiting: Mapping[str, int]
) -> int:
    """:func:`wait_s` for ``service``, with its branch's higher-priority queues."""
    own = rates.get(service, Rate())
    higher = {s: r for s, r in rates.items() if r.priority > own.priority and s != service}
    return wait_s(
        ahead,
        own.seconds_each,
        own.counters,
        before_s=sum(waiting.get(s, 0) * r.seconds_each for s, r in higher.items()),
        load=sum(r.arrivals_per_s * r.seconds_each for r in higher.values()),
    )


def per_person_s(service: str, rates: Mapping[str, Rate]) -> float:
    """What one more person ahead adds to a wait in ``service``: a kiosk that
    issued tickets since the last snapshot adds this for each of them."""
    own = rates.get(service, Rate())
    load = sum(
        r.arrivals_per_s * r.seconds_each
        for s, r in rates.items()
        if r.priority > own.priority and s != service
    )
    return own.seconds_each / free_counters(own.counters, load)


def naive_wait_s(ahead: int) -> int:
    """The baseline: everyone takes the default, one counter at a time."""
    return round(max(ahead, 0) * DEFAULT_SERVICE_S)
