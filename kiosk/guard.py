"""One ticket per deliberate tap, and a cap that protects the paper roll."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class TapGuard:
    """Refuses taps closer than ``min_interval_s`` and beyond ``per_minute``."""

    def __init__(
        self,
        min_interval_s: float,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.per_minute = per_minute
        self.clock = clock
        self._recent: deque[float] = deque()

    def allow(self) -> bool:
        """True (and counted) if a ticket may be issued now."""
        now = self.clock()
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        if self._recent and now - self._recent[-1] < self.min_interval_s:
            return False
        if len(self._recent) >= self.per_minute:
            return False
        self._recent.append(now)
        return True
