"""Opening hours, date exceptions, last-ticket time and daily caps.

Part of the contract: the server validates a branch's schedule with these
functions and sends it in the kiosk config; the kiosk evaluates it at every
tap, so a kiosk offline since yesterday still stops issuing at closing time.

Shape (TOML in a branch file, JSON in the config)::

    hours = { "mon-fri" = ["08:00-12:00", "13:00-16:00"], sat = ["10:00-14:00"] }
    exceptions = { "2026-12-24" = ["08:00-12:00"], "2026-12-25" = [] }
    last_ticket = 15     # minutes before each period ends: no new tickets
    daily_cap = 200      # tickets per day for the service, all kiosks together

No ``hours`` means always open; a weekday not named is closed; an exception
replaces that date's weekday hours (``[]``: closed all day).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PERIODS = 6
MAX_EXCEPTIONS = 400
MAX_LAST_TICKET_MIN = 24 * 60
_PERIOD = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)\Z")


class ScheduleError(ValueError):
    """A schedule that cannot be meant as written; the message says where."""


def _minutes(period: str, where: str) -> tuple[int, int]:
    if not isinstance(period, str) or not (match := _PERIOD.match(period.strip())):
        raise ScheduleError(f'{where}: {period!r} is not a period like "08:00-16:30"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end > 24 * 60:
        raise ScheduleError(f"{where}: {period!r} ends after 24:00")
    if start >= end:
        raise ScheduleError(f"{where}: {period!r} ends before it starts")
    return start, end


def _periods(value: object, where: str) -> list[str]:
    """Validated, sorted, non-overlapping periods in canonical ``HH:MM-HH:MM`` form."""
    if not isinstance(value, list):
        raise ScheduleError(f'{where}: expected a list of periods like ["08:00-16:00"]')
    if len(value) > MAX_PERIODS:
        raise ScheduleError(f"{where}: at most {MAX_PERIODS} periods a day")
    spans = sorted(_minutes(p, where) for p in value)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise ScheduleError(f"{where}: periods overlap")
    return [f"{s // 60:02}:{s % 60:02}-{e // 60:02}:{e % 60:02}" for s, e in spans]


def _days(key: str, where: str) -> list[str]:
    """``mon``, or a range such as ``mon-fri`` (wrapping: ``sat-sun``)."""
    parts = key.strip().lower().split("-")
    if len(parts) > 2 or any(p not in DAYS for p in parts):
        raise ScheduleError(
            f"{where}: {key!r} is not a weekday ({', '.join(DAYS)}) or a range like mon-fri"
        )
    first, last = DAYS.index(parts[0]), DAYS.index(parts[-1])
    return [DAYS[(first + i) % 7] for i in range((last - first) % 7 + 1)]


def normalise_hours(raw: object, where: str = "hours") -> dict[str, list[str]] | None:
    """Weekday ranges expanded, periods checked; ``None`` stays always-open."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where}: expected a table of weekdays")
    hours: dict[str, list[str]] = {}
    for key, value in raw.items():
        for day in _days(str(key), where):
            if day in hours:
                raise ScheduleError(f"{where}: {day} is given twice")
            hours[day] = _periods(value, f"{where}.{key}")
    return {day: hours[day] for day in DAYS if day in hours}


def normalise_exceptions(raw: object, where: str = "exceptions") -> dict[str, list[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScheduleError(f"{where}: expected a table of dates")
    if len(raw) > MAX_EXCEPTIONS:
        raise ScheduleError(f"{where}: at most {MAX_EXCEPTIONS} dates")
    result = {}
    for key, value in raw.items():
        try:
            day = date.fromisoformat(str(key))
        except ValueError:
            raise ScheduleError(f"{where}: {key!r} is not a date like 2026-12-24") from None
        result[day.isoformat()] = _periods(value, f"{where}.{key}")
    return dict(sorted(result.items()))


def check_last_ticket(value: object, where: str = "last_ticket") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScheduleError(f"{where}: minutes before closing, a whole number")
    if not 0 <= value <= MAX_LAST_TICKET_MIN:
        raise ScheduleError(f"{where}: between 0 and {MAX_LAST_TICKET_MIN} minutes")
    return value


def check_daily_cap(value: object, where: str = "daily_cap") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ScheduleError(f"{where}: tickets per day, a whole number from 1 to 100000")
    return value


@dataclass(frozen=True)
class Availability:
    """Whether a service takes a ticket now, and if not, why and until when."""

    status: str  # open | closed | later | done_today | closed_today | full
    opens_at: str | None = None  # "13:00" with status "later"

    @property
    def is_open(self) -> bool:
        return self.status == "open"


OPEN = Availability("open")


@dataclass(frozen=True)
class Schedule:
    hours: dict[str, list[str]] | None = None
    exceptions: dict[str, list[str]] = field(default_factory=dict)
    last_ticket_min: int = 0

    @classmethod
    def from_json(cls, data: dict | None) -> Schedule:
        data = data or {}
        return cls(
            hours=data.get("hours"),
            exceptions=data.get("exceptions") or {},
            last_ticket_min=int(data.get("last_ticket_min") or 0),
        )

    def to_json(self) -> dict:
        return {
            "hours": self.hours,
            "exceptions": self.exceptions,
            "last_ticket_min": self.last_ticket_min,
        }

    @property
    def always_open(self) -> bool:
        return self.hours is None and not self.exceptions

    def periods_on(self, day: date) -> list[tuple[int, int]] | None:
        """Minutes-of-day periods for ``day``; ``None`` when open all day, every day."""
        if day.isoformat() in self.exceptions:
            chosen = self.exceptions[day.isoformat()]
        elif self.hours is None:
            return None
        else:
            chosen = self.hours.get(DAYS[day.weekday()], [])
        return [_minutes(p, "") for p in chosen]

    def at(self, local: datetime) -> Availability:
        """Availability at ``local``, a wall-clock time in the branch's zone."""
        periods = self.periods_on(local.date())
        if periods is None:
            return OPEN
        minute = local.hour * 60 + local.minute
        for start, end in periods:
            if start <= minute < end - self.last_ticket_min:
                return OPEN
        later = [start for start, _ in periods if start > minute]
        if later:
            return Availability("later", f"{later[0] // 60:02}:{later[0] % 60:02}")
        return Availability("done_today" if periods else "closed_today")

    def next_opening(self, local: datetime, days: int = 14) -> datetime | None:
        """When the service next opens after ``local`` (the branch's wall clock),
        within ``days``; None when always open, or not open in that time (what
        a page tells a customer who finds it closed)."""
        minute = local.hour * 60 + local.minute
        for ahead in range(days + 1):
            day = local.date() + timedelta(days=ahead)
            periods = self.periods_on(day)
            midnight = datetime.combine(day, time(0), local.tzinfo)
            if periods is None:  # open all day
                return None if ahead == 0 else midnight
            for start, end in periods:
                if (ahead or start > minute) and end - self.last_ticket_min > start:
                    return midnight + timedelta(minutes=start)
        return None


def availability(
    *,
    is_open: bool,
    schedule: Schedule,
    local: datetime,
    daily_cap: int | None,
    issued_today: int,
) -> Availability:
    """The one rule the kiosk applies at the tap (and the home screen shows)."""
    if not is_open:
        return Availability("closed")
    state = schedule.at(local)
    if state.is_open and daily_cap is not None and issued_today >= daily_cap:
        return Availability("full")
    return state
