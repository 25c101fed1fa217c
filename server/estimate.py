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
3. *The wait*: the people ahead, times one service time, shared among the
   counters.

The ticket page, the kiosk's screen and the paper all get their estimate
from :func:`wait_s`, through the server's queue snapshot.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

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


def wait_s(ahead: int, seconds_each: float, counters: int) -> int:
    """Seconds until the customer with ``ahead`` people before them is called."""
    return round(max(ahead, 0) * seconds_each / max(counters, 1))


def naive_wait_s(ahead: int) -> int:
    """The baseline: everyone takes the default, one counter at a time."""
    return round(max(ahead, 0) * DEFAULT_SERVICE_S)
