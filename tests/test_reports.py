"""The manager's reports: a simulated day built from raw events (tickets with
chosen times and statuses, feedback, counters opened and paused), its figures
computed here in plain Python, and compared with what storage, the real
server's page and its CSV say; on SQLite and PostgreSQL. Also who may read
which branch's reports, and what hostile query strings get."""

from __future__ import annotations

import csv
import io
import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
import requests

from server.storage import Storage, iso
from tests.web import PASSWORD, add_staff

ZONE = ZoneInfo("Europe/Helsinki")
SERVICES = ("payments", "permits", "advice")
HOSTILE_COMMENTS = (
    "=cmd|' /C calc'!A0",
    '+SUM(1,2) "quoted" and, comma',
    "-2 minus first",
    "@import",
    "line one\nline two\r\nline three",
    "Kiitos! Hyvä palvelu 😀👍🏽",
    "שלום, עברית",
    "\tTab first",
)


def p90(values: list[float]) -> float | None:
    """The nearest-rank 90th percentile: the smallest value that at least 90 %
    of the values do not exceed."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * 0.9) - 1]


def clock(seconds: float | None) -> str:
    """As the page writes a time: m:ss, or h:mm:ss from an hour."""
    if seconds is None:
        return "–"
    s = round(seconds)
    return (
        f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


@dataclass
class Day:
    """The raw events of one simulated branch day, as inserted."""

    branch: str
    day: date
    tickets: list[dict] = field(default_factory=list)
    feedback: list[dict] = field(default_factory=list)
    counters: list[tuple[str, str, datetime]] = field(default_factory=list)
    staff: dict[int, str] = field(default_factory=dict)


def local(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=ZONE)


def simulate_day(
    storage: Storage,
    branch: str,
    day: date,
    *,
    seed: int = 1,
    count: int = 160,
    comments: tuple[str, ...] = (),
    overnight: bool = True,
) -> Day:
    """A busy day: tickets from 8 to 16, most served, some no-shows, cancelled,
    void, transferred or given at a counter; ratings and comments; four
    counters opening, pausing and closing, and a fifth left open since the
    evening before (``overnight``) or opened early in the morning."""
    rng = random.Random(seed)
    sim = Day(branch, day)
    with storage.transaction() as db:
        for name in ("anna", "ben", "cecilia"):
            username = f"{name}.{branch}"
            found = db.execute("SELECT id FROM staff WHERE username = ?", [username]).fetchone()
            if found is None:
                db.insert(
                    "staff",
                    {
                        "branch_id": branch,
                        "username": username,
                        "password_hash": "not a hash",
                        "counter": "1",
                        "services": "[]",
                        "created_at": iso(datetime.now(UTC)),
                        "role": "staff",
                    },
                )
                found = db.execute("SELECT id FROM staff WHERE username = ?", [username]).fetchone()
            sim.staff[found[0]] = username
        staff_ids = sorted(sim.staff)
        schedule = [
            ("5", "open", local(day - timedelta(days=1), 20) if overnight else local(day, 7, 45)),
            ("1", "open", local(day, 8)),
            ("2", "open", local(day, 8)),
            ("5", "closed", local(day, 9, 30)),
            ("3", "open", local(day, 10)),
            ("1", "paused", local(day, 11, 30)),
            ("1", "open", local(day, 12)),
            ("4", "open", local(day, 12, 15)),
            ("4", "paused", local(day, 13)),
            ("3", "closed", local(day, 14, 30)),
            ("4", "closed", local(day, 15, 45)),
            ("1", "closed", local(day, 16)),
            ("2", "closed", local(day, 16, 10)),
        ]
        for counter, state, at in schedule:
            db.insert(
                "counter_log",
                {
                    "branch_id": branch,
                    "counter": counter,
                    "staff_id": None,
                    "state": state,
                    "services": "[]",
                    "at": iso(at),
                },
            )
        sim.counters = schedule
        statuses = ["served"] * 70 + ["no_show"] * 10 + ["cancelled"] * 8 + ["void"] * 5
        statuses += ["called"] * 4 + ["waiting"] * 3
        for n in range(1, count + 1):
            service = rng.choice(SERVICES)
            status = rng.choice(statuses)
            queued = local(day, 8) + timedelta(seconds=rng.uniform(0, 8 * 3600))
            called = started = finished = None
            staff_id = None
            if status in ("served", "no_show", "called"):
                called = queued + timedelta(seconds=rng.uniform(0, 2400))
                staff_id = rng.choice(staff_ids)
            if status == "served":
                if rng.random() < 0.5:
                    started = called + timedelta(seconds=rng.uniform(5, 60))
                finished = (started or called) + timedelta(seconds=rng.uniform(90, 900))
            elif status in ("no_show", "cancelled"):
                finished = (called or queued) + timedelta(seconds=rng.uniform(30, 300))
            ticket = {
                "id": f"{branch}-{day}-{n}",
                "branch_id": branch,
                "service_id": service,
                "queue_id": service,
                "public_token": f"tok-{branch}-{day}-{n}",
                "day": day.isoformat(),
                "number": n,
                "display": f"X{n:03d}",
                "language": "fi",
                "queued_at": iso(queued),
                "received_at": iso(queued),
                "status": status,
                "called_at": iso(called) if called else None,
                "started_at": iso(started) if started else None,
                "finished_at": iso(finished) if finished else None,
                "staff_id": staff_id,
                "transfers": 1 if rng.random() < 0.1 else 0,
                "origin": "counter" if rng.random() < 0.1 else "kiosk",
            }
            db.insert("tickets", ticket)
            sim.tickets.append(ticket)
        served = [t for t in sim.tickets if t["status"] == "served"]
        texts = list(comments) or ["Quick and friendly", "Too long a wait", "", ""]
        for i, ticket in enumerate(rng.sample(served, min(40, len(served)))):
            given = datetime.fromisoformat(ticket["finished_at"]) + timedelta(minutes=5, seconds=i)
            row = {
                "ticket_id": ticket["id"],
                "rating": rng.randint(1, 5),
                "comment": texts[i % len(texts)],
                "created_at": iso(given),
            }
            db.insert("feedback", row)
            sim.feedback.append(row | {"service_id": ticket["service_id"]})
    return sim


# -- the same figures, from the raw events, by hand ---------------------------------------


def seconds_between(start: str | None, end: str | None) -> float:
    return max((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 0)


def expected_row(tickets: list[dict], feedback: list[dict]) -> dict:
    counted = [t for t in tickets if t["status"] != "void"]
    ids = {t["id"] for t in counted}
    waits = [seconds_between(t["queued_at"], t["called_at"]) for t in counted if t["called_at"]]
    service = [
        seconds_between(t["started_at"] or t["called_at"], t["finished_at"])
        for t in counted
        if t["status"] == "served"
    ]
    ratings = [f["rating"] for f in feedback if f["ticket_id"] in ids]
    return {
        "issued": len(counted),
        "called": sum(1 for t in counted if t["called_at"]),
        "served": sum(1 for t in counted if t["status"] == "served"),
        "no_show": sum(1 for t in counted if t["status"] == "no_show"),
        "cancelled": sum(1 for t in counted if t["status"] == "cancelled"),
        "transfers": sum(t["transfers"] for t in counted),
        "counter_given": sum(1 for t in counted if t["origin"] == "counter"),
        "wait_median": statistics.median(waits) if waits else None,
        "wait_p90": p90(waits),
        "wait_longest": max(waits) if waits else None,
        "service_median": statistics.median(service) if service else None,
        "service_p90": p90(service),
        "ratings": len(ratings),
        "rating_average": statistics.mean(ratings) if ratings else None,
        "distribution": Counter(ratings),
    }


def expected_hourly(sim: Day) -> dict[int, tuple[int, float]]:
    """Arrivals by local hour, and staffed counters by sampling every minute's
    middle against the counters' schedule (it changes on whole minutes)."""
    arrivals = Counter(
        datetime.fromisoformat(t["queued_at"]).astimezone(ZONE).hour
        for t in sim.tickets
        if t["status"] != "void"
    )
    result = {}
    for hour in range(24):
        open_minutes = 0
        for minute in range(60):
            moment = local(sim.day, hour, minute, 30)
            states: dict[str, str] = {}
            for counter, state, at in sim.counters:
                if at <= moment:
                    states[counter] = state
            open_minutes += sum(1 for s in states.values() if s == "open")
        result[hour] = (arrivals.get(hour, 0), open_minutes / 60)
    return result


def past_day(days_back: int = 3) -> date:
    return datetime.now(ZONE).date() - timedelta(days=days_back)


# -- storage ---------------------------------------------------------------------------


def test_storage_figures_equal_the_raw_events_counted_by_hand(storage):
    day = past_day()
    sim = simulate_day(storage, "demo", day)
    report = storage.report("demo", day, day)
    by_service = {s["id"]: s for s in report["services"]}
    assert set(by_service) == set(SERVICES)
    for service in (*SERVICES, None):
        got = report["total"] if service is None else by_service[service]
        want = expected_row(
            [t for t in sim.tickets if service in (None, t["service_id"])], sim.feedback
        )
        assert got["issued"] == want["issued"]
        assert got["served"] == want["served"]
        assert got["no_show"] == want["no_show"]
        assert got["cancelled"] == want["cancelled"]
        assert got["transfers"] == want["transfers"]
        assert got["counter_given"] == want["counter_given"]
        assert got["wait"]["median_s"] == pytest.approx(want["wait_median"], abs=0.01)
        assert got["wait"]["p90_s"] == pytest.approx(want["wait_p90"], abs=0.01)
        assert got["wait"]["longest_s"] == pytest.approx(want["wait_longest"], abs=0.01)
        assert got["service_time"]["median_s"] == pytest.approx(want["service_median"], abs=0.01)
        assert got["service_time"]["p90_s"] == pytest.approx(want["service_p90"], abs=0.01)
        assert got["feedback"]["count"] == want["ratings"]
        assert got["feedback"]["average"] == pytest.approx(want["rating_average"])
        assert got["feedback"]["distribution"] == {n: want["distribution"][n] for n in range(1, 6)}
    for staff_id, name in sim.staff.items():
        (row,) = [s for s in report["staff"] if s["id"] == staff_id]
        want = expected_row([t for t in sim.tickets if t["staff_id"] == staff_id], sim.feedback)
        assert row["name"] == name
        assert (row["called"], row["served"], row["no_show"]) == (
            want["called"],
            want["served"],
            want["no_show"],
        )
        assert row["service_time"]["median_s"] == pytest.approx(want["service_median"], abs=0.01)
    hourly = expected_hourly(sim)
    for h in report["hourly"]:
        assert h["arrivals"] == hourly[h["hour"]][0], h
        assert h["staffed"] == pytest.approx(hourly[h["hour"]][1], abs=1e-6), h
    assert len(report["feedback"]) == len(sim.feedback)
    # a period around the day: the same tickets, averaged over the one day that had any
    week = storage.report("demo", day - timedelta(days=3), day + timedelta(days=1))
    assert week["total"]["issued"] == report["total"]["issued"]
    assert week["days"] == 5 and week["days_with_tickets"] == 1


def test_one_weekday_of_a_period_counts_only_those_days(storage):
    earlier, later = past_day(11), past_day(10)
    simulate_day(storage, "demo", earlier, count=70, seed=21)
    simulate_day(storage, "demo", later, count=90, seed=22, overnight=False)
    alone = storage.report("demo", later, later)
    both = storage.report("demo", earlier, later)
    first = storage.report("demo", earlier, earlier)
    assert both["total"]["issued"] == first["total"]["issued"] + alone["total"]["issued"]
    picked = storage.report("demo", earlier, later, weekday=later.weekday())
    assert picked["days"] == 1 and picked["days_with_tickets"] == 1
    assert picked["total"] == alone["total"]
    assert picked["hourly"] == alone["hourly"]
    assert picked["services"] == alone["services"]
    other = storage.report("demo", earlier, later, weekday=(later.weekday() + 3) % 7)
    assert other["total"]["issued"] == 0 and other["days"] == 0


def test_an_erased_comment_leaves_its_rating(storage):
    day = past_day(2)
    sim = simulate_day(storage, "demo", day, count=60, comments=("Please call me back",))
    token = next(t["public_token"] for t in sim.tickets if t["id"] == sim.feedback[0]["ticket_id"])
    assert storage.erase_personal_data(token)
    report = storage.report("demo", day, day)
    assert report["total"]["feedback"]["count"] == len(sim.feedback)
    assert sum(1 for f in report["feedback"] if not f["comment"]) == 1


@pytest.mark.parametrize(
    ("first", "last", "reason"),
    [
        (date(2026, 5, 2), date(2026, 5, 1), "starts"),
        (date(2024, 1, 1), date(2025, 12, 31), "at most 366 days"),
    ],
)
def test_storage_refuses_a_period_backwards_or_too_long(storage, first, last, reason):
    from server.storage import Rejected

    with pytest.raises(Rejected, match=reason):
        storage.report("demo", first, last)


# -- the page and the CSV of a real server ---------------------------------------------------


class Page(HTMLParser):
    """A report page's figures: each table (by id) as rows of cell texts, the
    headline figures (by data-figure), the comments."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, str] = {}
        self.comments: list[str] = []
        self._table = self._cell = self._figure = None
        self._comment = False
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell, self._text = tag, []
        elif tag == "dd" and "data-figure" in a:
            self._figure, self._text = a["data-figure"], []
        elif tag == "p" and a.get("class") == "comment":
            self._comment, self._text = True, []

    def handle_endtag(self, tag):
        text = "".join(self._text).strip()
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell:
            self.tables[self._table][-1].append(" ".join(text.split()))
            self._cell = None
        elif tag == "dd" and self._figure:
            self.figures[self._figure] = " ".join(text.split())
            self._figure = None
        elif tag == "p" and self._comment:
            self.comments.append("".join(self._text))
            self._comment = False

    def handle_data(self, data):
        self._text.append(data)


def log_in(server, username: str) -> requests.Session:
    session = requests.Session()
    reply = session.post(
        f"{server.url}/console/login",
        data={"username": username, "password": PASSWORD},
        allow_redirects=False,
        timeout=30,
    )
    assert reply.status_code == 303, reply.text
    return session


def csv_rows(reply: requests.Response) -> list[dict[str, str]]:
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/csv")
    text = reply.content.decode("utf-8")
    assert "\r\n" in text
    return list(csv.DictReader(io.StringIO(text, newline="")))


def secs(value: float | None) -> str:
    return "" if value is None else str(round(value))


def test_the_page_and_the_csv_show_the_simulated_days_figures(own_branch):
    server = own_branch.server
    day = past_day()
    sim = simulate_day(server.storage, own_branch.id, day)
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    query = {"from": day.isoformat(), "to": day.isoformat()}
    reply = session.get(f"{server.url}/console/reports", params=query, timeout=30)
    assert reply.status_code == 200, reply.text
    page = Page(reply.text)

    total = expected_row(sim.tickets, sim.feedback)
    assert page.figures["issued"] == str(total["issued"])
    assert page.figures["served"] == str(total["served"])
    assert page.figures["no_show"] == str(total["no_show"])
    assert page.figures["wait_median"] == clock(total["wait_median"])
    assert page.figures["wait_p90"] == clock(total["wait_p90"])
    assert page.figures["wait_longest"] == clock(total["wait_longest"])
    assert page.figures["service_median"] == clock(total["service_median"])
    assert page.figures["rating"].startswith(f"{total['rating_average']:.1f} / 5")

    names = {"payments": "Payments", "permits": "Permits and licences", "advice": "Advice"}
    head, *rows = page.tables["services-table"]
    assert head[:4] == ["Service", "Issued", "Served", "No-shows"]
    shown = {row[0]: row for row in rows}
    csv_services = {
        r["service_id"] or "all": r
        for r in csv_rows(
            session.get(f"{server.url}/console/reports.csv", params={**query, "table": "services"})
        )
    }
    for service in (*SERVICES, None):
        want = expected_row(
            [t for t in sim.tickets if service in (None, t["service_id"])], sim.feedback
        )
        row = shown[names[service] if service else "All services"]
        average = want["rating_average"]
        assert row[1:] == [
            str(want["issued"]),
            str(want["served"]),
            str(want["no_show"]),
            clock(want["wait_median"]),
            clock(want["wait_p90"]),
            clock(want["wait_longest"]),
            clock(want["service_median"]),
            clock(want["service_p90"]),
            str(want["transfers"]),
            str(want["counter_given"]),
            str(want["ratings"]),
            "–" if average is None else f"{average:.1f}",
        ]
        exported = csv_services[service or "all"]
        assert exported["issued"] == str(want["issued"])
        assert exported["no_show"] == str(want["no_show"])
        assert exported["cancelled"] == str(want["cancelled"])
        assert exported["wait_median_s"] == secs(want["wait_median"])
        assert exported["wait_p90_s"] == secs(want["wait_p90"])
        assert exported["wait_longest_s"] == secs(want["wait_longest"])
        assert exported["service_median_s"] == secs(want["service_median"])
        assert exported["service_p90_s"] == secs(want["service_p90"])
        assert exported["feedback_count"] == str(want["ratings"])
        for n in range(1, 6):
            assert exported[f"rating_{n}"] == str(want["distribution"][n])

    _, *staff_rows = page.tables["staff-table"]
    shown_staff = {row[0]: row for row in staff_rows}
    csv_staff = {
        r["staff"]: r
        for r in csv_rows(
            session.get(f"{server.url}/console/reports.csv", params={**query, "table": "staff"})
        )
    }
    for staff_id, name in sim.staff.items():
        want = expected_row([t for t in sim.tickets if t["staff_id"] == staff_id], sim.feedback)
        row = shown_staff[name]
        assert row[1:6] == [
            str(want["called"]),
            str(want["served"]),
            str(want["no_show"]),
            clock(want["service_median"]),
            clock(want["service_p90"]),
        ]
        assert csv_staff[name]["served"] == str(want["served"])
        assert csv_staff[name]["service_median_s"] == secs(want["service_median"])

    hourly = expected_hourly(sim)
    busy = {h: v for h, v in hourly.items() if v[0] or v[1] > 0.005}
    _, *hour_rows = page.tables["hourly-table"]
    assert {int(r[0][:2]): (r[1], r[2]) for r in hour_rows} == {
        h: (str(a), f"{s:.1f}") for h, (a, s) in busy.items()
    }
    csv_hours = csv_rows(
        session.get(f"{server.url}/console/reports.csv", params={**query, "table": "hourly"})
    )
    assert len(csv_hours) == 24
    for r in csv_hours:
        arrivals, staffed = hourly[int(r["hour"][:2])]
        assert float(r["arrivals"]) == arrivals
        assert float(r["staffed_counters"]) == pytest.approx(staffed, abs=0.01)

    written = [f for f in sim.feedback if f["comment"]]
    assert sorted(page.comments) == sorted(f["comment"] for f in written)
    (_, counts) = page.tables["ratings-table"]
    assert counts == [str(total["distribution"][n]) for n in (5, 4, 3, 2, 1)]
    exported = csv_rows(
        session.get(f"{server.url}/console/reports.csv", params={**query, "table": "feedback"})
    )
    assert sorted((r["rating"], r["comment"]) for r in exported) == sorted(
        (str(f["rating"]), f["comment"]) for f in sim.feedback
    )


def test_csv_round_trips_hostile_and_unicode_comments_without_running_formulas(own_branch):
    server = own_branch.server
    day = past_day(4)
    sim = simulate_day(
        server.storage, own_branch.id, day, count=80, comments=HOSTILE_COMMENTS, seed=7
    )
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    query = {"from": day.isoformat(), "to": day.isoformat(), "table": "feedback"}
    reply = session.get(f"{server.url}/console/reports.csv", params=query, timeout=30)
    assert reply.headers["content-disposition"].startswith("attachment; filename=")
    rows = list(csv.reader(io.StringIO(reply.content.decode("utf-8"), newline="")))
    assert rows[0] == ["time", "service", "rating", "comment", "staff"]
    comments = sorted(r[3] for r in rows[1:])

    def neutralised(text: str) -> str:
        return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text

    assert comments == sorted(neutralised(f["comment"]) for f in sim.feedback)
    assert all(not c.startswith(("=", "+", "-", "@")) for c in comments)
    # and the page shows each as written, escaped
    page = session.get(f"{server.url}/console/reports", params=query, timeout=30)
    assert "<script" not in page.text.split("</header>")[1]
    assert sorted(Page(page.text).comments) == sorted(f["comment"] for f in sim.feedback)


# -- who may read what ---------------------------------------------------------------------


def test_reports_need_a_manager_of_the_branch(own_branch, tmp_path):
    server = own_branch.server
    url = f"{server.url}/console/reports"
    for path in ("", ".csv?table=services"):
        anonymous = requests.get(url + path, allow_redirects=False, timeout=30)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/console/login"
    worker = own_branch.name("worker")
    add_staff(server, worker, "1", branch=own_branch.id)
    staff = log_in(server, worker)
    assert staff.get(url, timeout=30).status_code == 403
    assert staff.get(url + ".csv?table=services", timeout=30).status_code == 403

    other = tmp_path / "other.toml"
    other.write_text(
        own_branch.toml.read_text(encoding="utf-8").replace(
            f'id = "{own_branch.id}"', f'id = "{own_branch.id}x"', 1
        ),
        encoding="utf-8",
    )
    server.load_branch(other)
    third = tmp_path / "third.toml"
    third.write_text(
        own_branch.toml.read_text(encoding="utf-8").replace(
            f'id = "{own_branch.id}"', f'id = "{own_branch.id}y"', 1
        ),
        encoding="utf-8",
    )
    server.load_branch(third)

    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    assert session.get(url, timeout=30).status_code == 200
    assert session.get(url, params={"branch": own_branch.id}, timeout=30).status_code == 200
    for path in ("", ".csv"):
        refused = session.get(
            url + path, params={"branch": f"{own_branch.id}x", "table": "services"}, timeout=30
        )
        assert refused.status_code == 403
    assert "Branches side by side" not in session.get(url, timeout=30).text

    boss = own_branch.name("boss")
    add_staff(server, boss, "9", role="organisation", branch=own_branch.id)
    server.sql(
        "INSERT INTO staff_branches (staff_id, branch_id) "
        "SELECT id, ? FROM staff WHERE username = ?",
        [f"{own_branch.id}x", boss],
    )
    organisation = log_in(server, boss)
    mine = organisation.get(url, params={"branch": f"{own_branch.id}x"}, timeout=30)
    assert mine.status_code == 200
    assert f'<option value="{own_branch.id}x" selected>' in mine.text
    csv_reply = organisation.get(
        url + ".csv", params={"branch": f"{own_branch.id}x", "table": "hourly"}, timeout=30
    )
    assert csv_reply.status_code == 200
    assert (
        organisation.get(url, params={"branch": f"{own_branch.id}y"}, timeout=30).status_code == 403
    )
    side = organisation.get(url, params={"view": "branches", "preset": "7d"}, timeout=30)
    assert side.status_code == 200
    branches = [row[0] for row in Page(side.text).tables["branches-table"][1:]]
    assert len(branches) == 2 and f"{own_branch.id}y" not in side.text


HOSTILE_QUERIES = (
    ({"from": "2026-13-01"}, 400, "is not a date"),
    ({"from": "yesterday"}, 400, "is not a date"),
    ({"from": "２０２６-０１-０１"}, 400, "is not a date"),
    ({"from": "2026-02-30", "to": "2026-03-01"}, 400, "is not a date"),
    ({"from": "2026-05-02", "to": "2026-05-01"}, 400, "starts"),
    ({"from": "1900-01-01", "to": "2026-01-01"}, 400, "at most 366 days"),
    ({"from": "0001-01-01", "to": "9999-12-31"}, 400, "at most 366 days"),
    ({"preset": "forever"}, 400, "Unknown period"),
    ({"weekday": "7"}, 400, "Unknown weekday"),
    ({"weekday": "monday", "preset": "30d"}, 400, "Unknown weekday"),
    ({"weekday": "-1"}, 400, "Unknown weekday"),
    ({"from": "2026-01-01" * 50}, 400, "is not a date"),
    ({"from": "'; DROP TABLE tickets; --"}, 400, "is not a date"),
    ({"branch": "ünïcödé 😀"}, 403, "not one of yours"),
    ({"branch": "x" * 5000}, 403, "not one of yours"),
    ({"table": "../../etc/passwd"}, 400, "table must be one of"),
    ({"table": ""}, 400, "table must be one of"),
)


def test_hostile_query_strings_get_a_clear_answer(own_branch):
    """Each refused with a status and words a person understands, never a 500."""
    server = own_branch.server
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    for query, status, says in HOSTILE_QUERIES:
        csv_query = {"table": "services", **query}
        for path, params in (("", query), (".csv", csv_query)):
            if path == "" and "table" in query:
                continue
            reply = session.get(f"{server.url}/console/reports{path}", params=params, timeout=30)
            assert reply.status_code == status, (query, path, reply.text[:300])
            assert says in reply.text, (query, path)
    assert server.sql("SELECT COUNT(*) FROM tickets")[0][0] >= 0  # still there


def test_a_period_with_nothing_in_it_reads_as_empty(own_branch):
    server = own_branch.server
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    reply = session.get(f"{server.url}/console/reports", params={"preset": "30d"}, timeout=30)
    assert reply.status_code == 200
    page = Page(reply.text)
    assert page.figures["issued"] == "0" and page.figures["wait_median"] == "–"
    assert "No feedback in this period." in reply.text
    rows = csv_rows(
        session.get(
            f"{server.url}/console/reports.csv", params={"preset": "30d", "table": "feedback"}
        )
    )
    assert rows == []
    mondays = session.get(
        f"{server.url}/console/reports", params={"preset": "30d", "weekday": "0"}, timeout=30
    )
    assert mondays.status_code == 200
    assert '<option value="0" selected>Mondays</option>' in mondays.text
    assert "Mondays, " in mondays.text.split("<h1>")[1].split("</h1>")[0]
    assert "weekday=0" in mondays.text  # the presets and CSV links keep the choice


def test_the_page_speaks_the_browsers_language(own_branch):
    server = own_branch.server
    day = past_day(5)
    simulate_day(server.storage, own_branch.id, day, count=40, seed=11)
    manager = own_branch.name("manager")
    add_staff(server, manager, "9", role="manager", branch=own_branch.id)
    session = log_in(server, manager)
    query = {"from": day.isoformat(), "to": day.isoformat()}
    finnish = session.get(
        f"{server.url}/console/reports",
        params=query,
        headers={"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.5"},
        timeout=30,
    )
    assert '<html lang="fi">' in finnish.text
    assert "Odotuksen mediaani" in finnish.text and "Lataa CSV-tiedostona" in finnish.text
    assert "Median wait" not in finnish.text
    average = Page(finnish.text).figures["rating"]
    assert "," in average.split("/")[0]  # a decimal comma
    swedish = session.get(
        f"{server.url}/console/reports",
        params={"from": "2026-13-01"},
        headers={"Accept-Language": "sv"},
        timeout=30,
    )
    assert swedish.status_code == 400 and "är inte ett datum" in swedish.text
    assert "Välj en period" in swedish.text


def test_the_report_templates_say_every_word_through_the_catalogue():
    from pathlib import Path

    from tests.test_catalogue import _literals_in_template

    templates = Path(__file__).resolve().parent.parent / "server" / "templates"
    for name in ("reports_base.html", "reports.html", "reports_branches.html"):
        assert _literals_in_template((templates / name).read_text()) == [], name
