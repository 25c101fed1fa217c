"""Opening hours, exceptions, last-ticket time and daily caps: the rule, and
the kiosk applying it at the tap from its own state DB (offline included)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kiosk import config
from sync import protocol, schedule, state, tickets
from sync.schedule import Availability, Schedule, ScheduleError

HELSINKI = ZoneInfo("Europe/Helsinki")
WEEK = schedule.normalise_hours({"mon-fri": ["08:00-12:00", "13:00-16:00"], "sat": ["10:00-14:00"]})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HELSINKI)


def test_weekday_ranges_expand_and_periods_are_sorted():
    assert WEEK["mon"] == WEEK["fri"] == ["08:00-12:00", "13:00-16:00"]
    assert "sun" not in WEEK
    assert schedule.normalise_hours({"sat-mon": ["13:00-14:00", "09:00-10:00"]}) == {
        "mon": ["09:00-10:00", "13:00-14:00"],
        "sat": ["09:00-10:00", "13:00-14:00"],
        "sun": ["09:00-10:00", "13:00-14:00"],
    }
    assert schedule.normalise_hours({"sun": ["00:00-24:00"]}) == {"sun": ["00:00-24:00"]}


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ({"mon": ["12:00-08:00"]}, "ends before it starts"),
        ({"mon": ["08:00-12:00", "11:00-13:00"]}, "overlap"),
        ({"mon": ["8-12"]}, "not a period"),
        ({"mon": ["08:00-24:30"]}, "after 24:00"),
        ({"mon": ["25:00-26:00"]}, "not a period"),
        ({"mon": "08:00-12:00"}, "list of periods"),
        ({"mon": [8]}, "not a period"),
        ({"monday": ["08:00-12:00"]}, "not a weekday"),
        ({"mon-fri": ["08:00-12:00"], "wed": []}, "wed is given twice"),
        ({"mon": ["08:00-09:00"] * 7}, "at most 6"),
        ({"<script>": []}, "not a weekday"),
        ({"ma": ["08:00-12:00"]}, "not a weekday"),
        (["mon"], "table of weekdays"),
    ],
)
def test_bad_hours_say_what_is_wrong(hours, message):
    with pytest.raises(ScheduleError, match=message):
        schedule.normalise_hours(hours)


@pytest.mark.parametrize(
    ("exceptions", "message"),
    [
        ({"2026-02-30": []}, "not a date"),
        ({"24.12.2026": []}, "not a date"),
        ({"2026-12-24": ["09:00-08:00"]}, "ends before"),
        ({f"2027-01-{d:02}": [] for d in range(1, 32)} | {"x": []}, "not a date"),
    ],
)
def test_bad_exceptions_say_what_is_wrong(exceptions, message):
    with pytest.raises(ScheduleError, match=message):
        schedule.normalise_exceptions(exceptions)


def test_caps_and_last_ticket_are_bounded():
    for bad in (0, -1, 100_001, True, "5", 2.5):
        with pytest.raises(ScheduleError):
            schedule.check_daily_cap(bad)
    for bad in (-1, 24 * 60 + 1, True, "15"):
        with pytest.raises(ScheduleError):
            schedule.check_last_ticket(bad)
    assert schedule.check_daily_cap(None) is None


def test_availability_through_a_week():
    week = Schedule(
        WEEK,
        schedule.normalise_exceptions({"2026-12-24": ["08:00-11:00"], "2026-12-25": []}),
        last_ticket_min=15,
    )
    # 2026-11-23 is a Monday
    assert week.at(at("2026-11-23T07:59")) == Availability("later", "08:00")
    assert week.at(at("2026-11-23T08:00")).is_open
    assert week.at(at("2026-11-23T11:44")).is_open
    assert week.at(at("2026-11-23T11:45")) == Availability("later", "13:00"), "last ticket"
    assert week.at(at("2026-11-23T12:30")) == Availability("later", "13:00")
    assert week.at(at("2026-11-23T15:50")) == Availability("done_today")
    assert week.at(at("2026-11-28T10:00")).is_open, "Saturday"
    assert week.at(at("2026-11-29T10:00")) == Availability("closed_today"), "Sunday"
    assert week.at(at("2026-12-24T10:30")).is_open, "Christmas Eve: morning only"
    assert week.at(at("2026-12-24T10:50")) == Availability("done_today")
    assert week.at(at("2026-12-25T10:00")) == Availability("closed_today"), "Christmas Day"
    assert Schedule().at(at("2026-11-29T03:00")).is_open, "no hours: always open"


def test_the_manual_switch_and_the_cap_come_first():
    always = Schedule()
    now = at("2026-11-23T10:00")
    assert schedule.availability(
        is_open=False, schedule=always, local=now, daily_cap=None, issued_today=0
    ) == Availability("closed")
    assert schedule.availability(
        is_open=True, schedule=always, local=now, daily_cap=3, issued_today=3
    ) == Availability("full")
    assert schedule.availability(
        is_open=True, schedule=always, local=now, daily_cap=3, issued_today=2
    ).is_open


def test_the_protocol_refuses_a_config_with_bad_hours():
    with pytest.raises(ValueError, match="ends before it starts"):
        protocol.Service(id="a", prefix="A", names={"en": "A"}, hours={"mon": ["10:00-09:00"]})
    good = protocol.Service(id="a", prefix="A", names={"en": "A"}, hours={"mon-tue": []})
    assert good.hours == {"mon": [], "tue": []}


STANDALONE = """
[branch]
timezone = "Europe/Helsinki"

[[services]]
id = "payments"
prefix = "A"
name = "Payments"
hours = { "mon-fri" = ["08:00-12:00", "13:00-16:00"] }
exceptions = { "2026-12-24" = [] }
last_ticket = 15
daily_cap = 2

[[services]]
id = "advice"
prefix = "C"
name = "Advice"
"""


@pytest.fixture
def standalone(tmp_path):
    settings = config.parse(STANDALONE)
    db = state.connect(tmp_path / "state.db")
    tickets.apply_standalone_config(
        db,
        branch=settings.branch,
        ticket=settings.ticket,
        services=[s.as_state() for s in settings.services],
    )
    yield db
    db.close()


def utc(local: str) -> datetime:
    return at(local).astimezone(UTC)


def test_the_kiosk_refuses_a_tap_outside_hours_and_past_the_cap(standalone):
    db = standalone
    closed = utc("2026-11-23T07:30")
    shown = {s.id: s.availability for s in tickets.listed_services(db, closed)}
    assert shown == {"payments": Availability("later", "08:00"), "advice": schedule.OPEN}
    with pytest.raises(tickets.ServiceClosed) as refused:
        tickets.issue_ticket(db, "payments", language="en", moment=closed)
    assert refused.value.availability == Availability("later", "08:00")
    assert tickets.issue_ticket(db, "advice", language="en", moment=closed).display == "C001"
    assert db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 1, "nothing else stored"

    morning = utc("2026-11-23T09:00")
    first = tickets.issue_ticket(db, "payments", language="en", moment=morning)
    tickets.issue_ticket(db, "payments", language="en", moment=morning)
    with pytest.raises(tickets.ServiceClosed) as full:
        tickets.issue_ticket(db, "payments", language="en", moment=morning)
    assert full.value.availability == Availability("full")
    tickets.void_unprinted(db)  # both never printed: void, reached nobody
    assert first.display == "A001"
    assert tickets.issue_ticket(db, "payments", language="en", moment=morning).display == "A003", (
        "void tickets free the cap, never their numbers"
    )
    assert tickets.listed_services(db, utc("2026-11-24T09:00"))[0].is_open, "a new day"
    assert tickets.listed_services(db, utc("2026-12-24T09:00"))[0].availability == Availability(
        "closed_today"
    )


def test_a_paired_kiosk_counts_the_servers_tickets_and_its_own_undelivered(standalone):
    db = standalone
    state_moment = utc("2026-11-23T09:00")
    tickets.set_config(db, "mode", "paired")
    db.execute(
        "INSERT INTO queue_snapshot (service_id, waiting, estimated_wait_s, updated_at, issued) "
        "VALUES ('payments', 0, 0, ?, 1)",
        [tickets.iso(state_moment)],
    )
    db.execute(
        "INSERT INTO leases (service_id, day, first, last, next, source) "
        "VALUES ('payments', '2026-11-23', 1, 100, 1, 'server')"
    )
    assert tickets.issued_today(db, "payments", "2026-11-23") == 1
    tickets.issue_ticket(db, "payments", language="en", moment=state_moment)
    assert tickets.issued_today(db, "payments", "2026-11-23") == 2
    assert tickets.listed_services(db, state_moment)[0].availability == Availability("full")
    assert tickets.issued_today(db, "payments", "2026-11-24") == 0, "yesterday's snapshot"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('hours = { mon = ["16:00-08:00"] }', "hours.mon: .*ends before it starts"),
        ('hours = { funday = ["08:00-16:00"] }', "not a weekday"),
        ('exceptions = { "2026-13-01" = [] }', "not a date"),
        ("last_ticket = -5", "between 0 and"),
        ("daily_cap = 0", "from 1 to 100000"),
        ('daily_cap = "lots"', "whole number"),
    ],
)
def test_a_bad_schedule_in_the_kiosk_config_names_the_line(line, message):
    text = f'[[services]]\nid = "a"\nprefix = "A"\nname = "A"\n{line}\n'
    with pytest.raises(config.ConfigError, match=message) as error:
        config.parse(text, "kiosk.toml")
    assert "kiosk.toml:5" in str(error.value)
