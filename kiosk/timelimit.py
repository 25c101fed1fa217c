"""Time limits that warn before they run out and can be extended (EN 301 549
"timing adjustable"): the ticket screen's return home, the customer's idle
reset, the admin menu's idle close.

Pure logic with the clock passed in, so the Kivy app uses Kivy's Clock and a
test a clock of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Cancellable(Protocol):
    def cancel(self) -> None: ...


#: ``schedule(callback, delay_s)`` runs ``callback()`` once after ``delay_s``.
Schedule = Callable[[Callable[[], None], float], Cancellable]


def warn_lead(total_s: float, warn_before_s: float) -> float:
    """How long before a limit of ``total_s`` its warning shows: the configured
    lead, or a third of a short limit (a warning must leave time to act on it
    and still let the screen be seen first)."""
    return min(warn_before_s, total_s / 3)


class TimeLimit:
    """One limit: ``start`` it, it warns ``warn_lead`` before the end, then expires.

    ``extend`` starts it again with its full time (one tap or key), so a
    customer gets as long again as the first time, as often as they ask.
    """

    def __init__(
        self,
        name: str,
        on_expire: Callable[[], None],
        *,
        schedule: Schedule,
        now: Callable[[], float],
        warn_before_s: float = 10.0,
        on_warning: Callable[[TimeLimit], None] = lambda _limit: None,
        on_quiet: Callable[[TimeLimit], None] = lambda _limit: None,
    ) -> None:
        self.name = name
        self.warn_before_s = warn_before_s
        self._on_expire = on_expire
        self._on_warning = on_warning
        self._on_quiet = on_quiet
        self._schedule = schedule
        self._now = now
        self._events: list[Cancellable] = []
        self.total_s = 0.0
        self.deadline: float | None = None
        self.warning = False

    @property
    def running(self) -> bool:
        return self.deadline is not None

    def remaining_s(self) -> float:
        return 0.0 if self.deadline is None else max(0.0, self.deadline - self._now())

    def start(self, seconds: float) -> None:
        """(Re)start with ``seconds`` to go; a warning showing goes away."""
        self._stop()
        self.total_s = seconds
        self.deadline = self._now() + seconds
        lead = warn_lead(seconds, self.warn_before_s)
        self._events = [
            self._schedule(self._warn, seconds - lead),
            self._schedule(self._expire, seconds),
        ]

    def extend(self) -> bool:
        """The customer asked for more time: the full time again. False when idle."""
        if not self.running:
            return False
        self.start(self.total_s)
        return True

    def cancel(self) -> None:
        self._stop()

    def _stop(self) -> None:
        for event in self._events:
            event.cancel()
        self._events = []
        self.deadline = None
        if self.warning:
            self.warning = False
            self._on_quiet(self)

    def _warn(self) -> None:
        if self.running and not self.warning:
            self.warning = True
            self._on_warning(self)

    def _expire(self) -> None:
        if not self.running:
            return
        self._stop()
        self._on_expire()
