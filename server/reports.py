"""Reports for a branch's managers: a day's or a period's figures per service,
per staff member and per hour, the customers' feedback, charts drawn here as
SVG (no script, no library from elsewhere), and each table as CSV.

Under ``/console`` so the console's session cookie covers it; managers read
their own branch, organisation managers also the branches given to them
(:meth:`server.staff.Staff.branches`), staff nothing. Figures come from
:meth:`server.storage.reports.Reports.report`; what is counted how is said
there and in README ("Reports").
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Cookie, Header, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup, escape

from catalogue import translator
from server.i18n import LANGUAGES, accepted_language
from server.staff import Staff, StaffMember
from server.storage import Rejected, Storage, branch_today
from server.storage.reports import MAX_DAYS, RATINGS, check_period, parse_day

COOKIE = "vuoro_session"
PRESETS = ("today", "yesterday", "7d", "30d")
TABLES = ("services", "staff", "hourly", "feedback", "callbacks")
#: what a spreadsheet would run as a formula when a cell starts with it
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BAR, LINE, INK, GRID, MUTED = "#0d4a8f", "#b04a00", "#0b1f33", "#c9d3dd", "#3d4f61"


# -- words and numbers ---------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """Seconds as m:ss (h:mm:ss from an hour), rounded to the second; "–" for none."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def decimal(value: float | None, lang: str, places: int = 1) -> str:
    """A number with ``places`` decimals, with the language's decimal mark."""
    if value is None:
        return "–"
    text = f"{value:.{places}f}"
    return text.replace(".", ",") if lang in ("fi", "sv", "et") else text


def service_name(names: dict[str, str], lang: str, fallback: str) -> str:
    return names.get(lang) or names.get("en") or next(iter(names.values()), "") or fallback


def csv_cell(value: object) -> object:
    """A cell no spreadsheet runs as a formula: text starting with = + - @ (or a
    tab or carriage return) gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180: CRLF line ends, fields quoted where they must be, a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


def seconds_or_blank(value: float | None) -> int | str:
    return "" if value is None else round(value)


def csv_table(report: dict, table: str, lang: str) -> str:
    """One of the report's tables as CSV (English column names, seconds as numbers)."""
    if table == "services":
        header = [
            "service_id",
            "service",
            "issued",
            "served",
            "no_show",
            "cancelled",
            "wait_median_s",
            "wait_p90_s",
            "wait_longest_s",
            "service_median_s",
            "service_p90_s",
            "transfers",
            "counter_given",
            "feedback_count",
            "rating_average",
            *(f"rating_{n}" for n in RATINGS),
        ]
        rows = [
            [
                s["id"],
                service_name(s["names"], lang, s["id"]),
                *_figures(s),
            ]
            for s in report["services"]
        ]
        rows.append(["", "all", *_figures(report["total"])])
        return csv_text(header, rows)
    if table == "staff":
        header = [
            "staff_id",
            "staff",
            "called",
            "served",
            "no_show",
            "wait_median_s",
            "service_median_s",
            "service_p90_s",
            "transfers",
            "counter_given",
            "feedback_count",
            "rating_average",
        ]
        rows = [
            [
                s["id"],
                s["name"] or "",
                s["called"],
                s["served"],
                s["no_show"],
                seconds_or_blank(s["wait"]["median_s"]),
                seconds_or_blank(s["service_time"]["median_s"]),
                seconds_or_blank(s["service_time"]["p90_s"]),
                s["transfers"],
                s["counter_given"],
                s["feedback"]["count"],
                _average(s["feedback"]["average"]),
            ]
            for s in report["staff"]
        ]
        return csv_text(header, rows)
    if table == "hourly":
        return csv_text(
            ["hour", "arrivals", "staffed_counters"],
            (
                [f"{h['hour']:02d}:00", round(h["arrivals"], 2), round(h["staffed"], 2)]
                for h in report["hourly"]
            ),
        )
    if table == "callbacks":
        figures = report["callbacks"]
        return csv_text(
            [
                "day",
                "requests",
                "reached",
                "given_up",
                "waiting",
                "reach_rate",
                "delay_median_s",
                "delay_p90_s",
            ],
            (
                [
                    row.get("day", "all"),
                    row["requests"],
                    row["reached"],
                    row["given_up"],
                    row["waiting"],
                    "" if row["reach_rate"] is None else round(row["reach_rate"], 3),
                    seconds_or_blank(row["delay_median_s"]),
                    seconds_or_blank(row["delay_p90_s"]),
                ]
                for row in [*figures["days"], figures["total"]]
            ),
        )
    names = {s["id"]: service_name(s["names"], lang, s["id"]) for s in report["services"]}
    return csv_text(
        ["time", "service", "rating", "comment", "staff"],
        (
            [
                f["at"].isoformat(timespec="seconds"),
                names.get(f["service_id"], f["service_id"]),
                f["rating"],
                f["comment"],
                f["staff"] or "",
            ]
            for f in report["feedback"]
        ),
    )


def _average(value: float | None) -> float | str:
    return "" if value is None else round(value, 2)


def _figures(s: dict) -> list:
    wait, service, feedback = s["wait"], s["service_time"], s["feedback"]
    return [
        s["issued"],
        s["served"],
        s["no_show"],
        s["cancelled"],
        seconds_or_blank(wait["median_s"]),
        seconds_or_blank(wait["p90_s"]),
        seconds_or_blank(wait["longest_s"]),
        seconds_or_blank(service["median_s"]),
        seconds_or_blank(service["p90_s"]),
        s["transfers"],
        s["counter_given"],
        feedback["count"],
        _average(feedback["average"]),
        *(feedback["distribution"][n] for n in RATINGS),
    ]


# -- charts ------------------------------------------------------------------------------


def nice_ceiling(value: float, steps: int = 4) -> tuple[float, float]:
    """An axis top at or above ``value`` and its tick step, both round numbers
    (steps of 1, 2, 2.5 or 5 times a power of ten, at least 0.5)."""
    if value <= 0:
        return float(steps), 1.0
    raw = value / steps
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(f * magnitude for f in (1, 2, 2.5, 5, 10) if f * magnitude >= raw)
    step = max(step, 0.5)
    return step * max(1, math.ceil(value / step - 1e-9)), step


def _svg_open(name: str, width: int, height: int, title: str, description: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{name}-title {name}-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{name}-title">{escape(title)}</title>',
        f'<desc id="{name}-desc">{escape(description)}</desc>',
    ]


def _text(x: float, y: float, text: str, anchor: str = "middle", size: int = 14, **extra) -> str:
    fill = extra.pop("fill", INK)
    attributes = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in extra.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{fill}"{attributes}>{escape(text)}</text>'
    )


def hourly_chart(hours: list[dict], words: dict[str, str], lang: str, single_day: bool) -> Markup:
    """Bars: arrivals per hour; a line: staffed counters; two axes, labelled."""
    busy = [h["hour"] for h in hours if h["arrivals"] > 0 or h["staffed"] > 0.01]
    first, last = (min(busy), max(busy)) if busy else (8, 16)
    shown = [h for h in hours if first <= h["hour"] <= last]
    width, height = 960, 340
    left, right, top, bottom = 64, 64, 44, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    arrivals_top, arrivals_step = nice_ceiling(max(h["arrivals"] for h in shown))
    counters_top, counters_step = nice_ceiling(max(max(h["staffed"] for h in shown), 1))
    band = plot_w / len(shown)
    parts = _svg_open("hourly", width, height, words["hourly_title"], words["hourly_desc"])
    base = top + plot_h
    # grid and the left axis (arrivals)
    tick = 0.0
    while tick <= arrivals_top + 1e-9:
        y = base - plot_h * tick / arrivals_top
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        parts.append(
            _text(left - 8, y + 5, decimal(tick, lang, 0 if tick.is_integer() else 1), "end")
        )
        tick += arrivals_step
    tick = 0.0
    while tick <= counters_top + 1e-9:
        y = base - plot_h * tick / counters_top
        label = decimal(tick, lang, 0 if tick.is_integer() else 1)
        parts.append(_text(left + plot_w + 8, y + 5, label, "start", fill=LINE))
        tick += counters_step
    for i, h in enumerate(shown):
        x = left + i * band
        bar_h = plot_h * h["arrivals"] / arrivals_top
        parts.append(
            f'<rect x="{x + band * 0.15:.1f}" y="{base - bar_h:.1f}" width="{band * 0.7:.1f}" '
            f'height="{bar_h:.1f}" fill="{BAR}"/>'
        )
        if h["arrivals"] > 0:
            # inside the bar's foot, white on blue, clear of the line's points
            value = decimal(h["arrivals"], lang, 0 if single_day else 1)
            if bar_h >= 24:
                parts.append(_text(x + band / 2, base - 8, value, size=14, fill="#fff"))
            else:
                parts.append(_text(x + band / 2, base - bar_h - 6, value, size=13))
        parts.append(_text(x + band / 2, base + 20, f"{h['hour']:02d}", size=14))
    points = [
        (left + (i + 0.5) * band, base - plot_h * h["staffed"] / counters_top)
        for i, h in enumerate(shown)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="3"/>')
    parts.extend(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="{LINE}" stroke-width="3"/>'
        for x, y in points
    )
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{base}" y2="{base}" stroke="{INK}"/>')
    parts.append(_text(width / 2, height - 6, words["hour_axis"], size=14, fill=MUTED))
    # legend
    parts.append(f'<rect x="{left}" y="10" width="18" height="18" fill="{BAR}"/>')
    parts.append(_text(left + 26, 25, words["arrivals_legend"], "start", size=15))
    legend_x = left + 40 + 9 * len(words["arrivals_legend"])
    parts.append(
        f'<line x1="{legend_x}" x2="{legend_x + 28}" y1="19" y2="19" stroke="{LINE}" '
        'stroke-width="3"/>'
    )
    parts.append(
        f'<circle cx="{legend_x + 14}" cy="19" r="5" fill="#fff" stroke="{LINE}" stroke-width="3"/>'
    )
    parts.append(_text(legend_x + 36, 25, words["staffed_legend"], "start", size=15))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_rows_chart(
    name: str,
    rows: list[tuple[str, list[tuple[float | None, str]]]],
    series: list[tuple[str, str]],
    title: str,
    description: str,
    label: Callable[[float | None], str],
) -> Markup:
    """Horizontal bars, one group per row (a service, a rating), one bar per
    series, each with its value written beside it."""
    width, label_w, right = 960, 240, 90
    bar_h, gap = 22, 14
    legend_h = 36 if len(series) > 1 else 8
    group_h = bar_h * len(series) + gap
    height = legend_h + group_h * max(len(rows), 1) + 8
    top_value = max((v for _, values in rows for v, _ in values if v), default=0) or 1
    plot_w = width - label_w - right
    parts = _svg_open(name, width, height, title, description)
    if len(series) > 1:
        x = label_w
        for legend, colour in series:
            parts.append(f'<rect x="{x}" y="8" width="18" height="18" fill="{colour}"/>')
            parts.append(_text(x + 26, 23, legend, "start", size=15))
            x += 60 + 9 * len(legend)
    for i, (row_label, values) in enumerate(rows):
        y0 = legend_h + i * group_h
        short = row_label if len(row_label) <= 28 else row_label[:27] + "…"
        parts.append(_text(label_w - 10, y0 + bar_h * len(series) / 2 + 5, short, "end", 15))
        for j, ((value, colour), _) in enumerate(zip(values, series, strict=True)):
            y = y0 + j * bar_h
            w = plot_w * (value or 0) / top_value
            parts.append(
                f'<rect x="{label_w}" y="{y + 2}" width="{max(w, 1):.1f}" height="{bar_h - 4}" '
                f'fill="{colour}"/>'
            )
            parts.append(_text(label_w + w + 6, y + bar_h - 6, label(value), "start", 14))
    parts.append("</svg>")
    return Markup("".join(parts))


# -- the pages --------------------------------------------------------------------------------


def page_words(lang: str) -> dict[str, str]:
    """The charts' words (the template has its own through ``tr``)."""
    tr = translator(lang, "en").gettext
    return {
        "hourly_title": tr("Arrivals per hour and staffed counters"),
        "hourly_desc": tr(
            "Bars: tickets issued in each hour. Line: counters open (not paused) in that "
            "hour, time-weighted. The table below gives the same figures."
        ),
        "hour_axis": tr("Hour of the day (branch time)"),
        "arrivals_legend": tr("Arrivals"),
        "staffed_legend": tr("Staffed counters"),
        "waits_title": tr("Waiting time per service"),
        "waits_desc": tr(
            "Median and 90th percentile waiting time per service, in minutes and seconds. "
            "The table of services gives the same figures."
        ),
        "branch_waits_title": tr("Waiting time per branch"),
        "branch_waits_desc": tr(
            "Median and 90th percentile waiting time per branch, in minutes and seconds. "
            "The table gives the same figures."
        ),
        "median": tr("Median"),
        "p90": tr("90th percentile"),
        "ratings_title": tr("Ratings given"),
        "ratings_desc": tr("How many customers gave each rating, 1 to 5."),
    }


def weekday_names(lang: str) -> list[str]:
    """Monday to Sunday, as the period form's choice of days ("Mondays")."""
    tr = translator(lang, "en").gettext
    return [
        tr("Mondays"),
        tr("Tuesdays"),
        tr("Wednesdays"),
        tr("Thursdays"),
        tr("Fridays"),
        tr("Saturdays"),
        tr("Sundays"),
    ]


class Period:
    """The days a report covers, from the query's ``preset`` or ``from``/``to``."""

    def __init__(
        self, first: date, last: date, preset: str = "", weekday: int | None = None
    ) -> None:
        self.first, self.last, self.preset, self.weekday = first, last, preset, weekday

    @property
    def single_day(self) -> bool:
        return self.first == self.last

    def query(self) -> dict[str, str]:
        """The period as a query string's fields, for links to the same period."""
        fields = {"from": self.first.isoformat(), "to": self.last.isoformat()}
        return fields | ({"weekday": str(self.weekday)} if self.weekday is not None else {})

    @classmethod
    def from_query(
        cls, query: dict[str, str], today: date, tr: Callable[[str], str] = str
    ) -> Period:
        """The period asked for, or :class:`Rejected` saying (in ``tr``'s
        language) what is wrong with it."""
        period = cls._days(query, today, tr)
        weekday = query.get("weekday", "")
        if weekday:
            if weekday not in tuple("0123456"):
                raise Rejected(tr("Unknown weekday “{text}”.").format(text=weekday[:20]))
            period.weekday = int(weekday)
        return period

    @classmethod
    def _days(cls, query: dict[str, str], today: date, tr: Callable[[str], str]) -> Period:
        preset = query.get("preset", "")
        if preset:
            if preset not in PRESETS:
                raise Rejected(tr("Unknown period “{text}”.").format(text=preset[:20]))
            back = {"today": 0, "yesterday": 1, "7d": 6, "30d": 29}[preset]
            last = today - timedelta(days=1) if preset == "yesterday" else today
            return cls(today - timedelta(days=back), last, preset)
        first_text, last_text = query.get("from", ""), query.get("to", "")
        if not first_text and not last_text:
            return cls(today, today, "today")
        days = []
        for text in (first_text or last_text, last_text or first_text):
            try:
                days.append(parse_day(text, ""))
            except Rejected:
                message = tr("“{text}” is not a date: write it as YYYY-MM-DD.")
                raise Rejected(message.format(text=text[:20])) from None
        first, last = days
        if first > last:
            message = tr("The period starts ({first}) after it ends ({last}).")
            raise Rejected(message.format(first=first, last=last))
        if (last - first).days + 1 > MAX_DAYS:
            message = tr("A report covers at most {max} days; this period has {days}.")
            raise Rejected(message.format(max=MAX_DAYS, days=(last - first).days + 1))
        check_period(first, last)
        return cls(first, last)


def reports_router(storage: Storage, render) -> APIRouter:
    router = APIRouter(prefix="/console")
    staff = Staff(storage)

    def language(member: StaffMember | None, accept: str | None) -> str:
        chosen = member.language if member else None
        return chosen if chosen in LANGUAGES else accepted_language(accept) or "en"

    def refused(lang: str, status: int, text: str) -> Response:
        tr = translator(lang, "en").gettext
        return render(
            "message.html", status, lang=lang, title=tr("Reports are not available"), text=text
        )

    def admitted(
        session: str | None, accept: str | None
    ) -> tuple[StaffMember, str, list[str]] | Response:
        member = staff.session((session or "")[:100])
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        lang = language(member, accept)
        if not member.manages:
            tr = translator(lang, "en").gettext
            return refused(lang, 403, tr("Reports are for the branch's managers."))
        return member, lang, staff.branches(member)

    def query_of(request: Request) -> dict[str, str]:
        return {k: v[:100] for k, v in request.query_params.items() if len(k) <= 20}

    def chosen_branch(query: dict[str, str], member: StaffMember, allowed: list[str]) -> str:
        branch = query.get("branch") or member.branch_id
        if branch not in allowed:
            raise PermissionError(branch)
        return branch

    def today_of(branch_id: str) -> date:
        with storage.reading() as db:
            return date.fromisoformat(branch_today(db, branch_id)[0])

    def branch_names(ids: list[str]) -> dict[str, str]:
        with storage.reading() as db:
            return {
                row[0]: row[1]
                for row in db.execute("SELECT id, name FROM branches").fetchall()
                if row[0] in ids
            }

    @router.get("/reports")
    def reports_page(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        entry = admitted(session, accept_language)
        if isinstance(entry, Response):
            return entry
        member, lang, allowed = entry
        tr = translator(lang, "en").gettext
        query = query_of(request)
        try:
            branch = chosen_branch(query, member, allowed)
        except PermissionError:
            return refused(lang, 403, tr("That branch is not one of yours."))
        names = branch_names(allowed)
        today = today_of(branch)
        context = {
            "lang": lang,
            "member": member,
            "branch_id": branch,
            "branch_name": names.get(branch, branch),
            "branches": [(b, names.get(b, b)) for b in allowed],
            "today": today.isoformat(),
            "max_days": MAX_DAYS,
            "presets": PRESETS,
            "weekday_names": weekday_names(lang),
            "view": "branches" if query.get("view") == "branches" and len(allowed) > 1 else "",
        }
        try:
            period = Period.from_query(query, today, tr)
        except Rejected as exc:
            return render(
                "reports.html",
                400,
                **context,
                error=str(exc),
                period=Period(today, today, ""),
                typed={"from": query.get("from", ""), "to": query.get("to", "")},
            )
        context["period"] = period
        context["typed"] = {"from": period.first.isoformat(), "to": period.last.isoformat()}
        link = period.query()
        if context["view"]:
            rows = []
            for each in allowed:
                summary = storage.report(each, period.first, period.last, period.weekday)
                rows.append({"id": each, "name": names.get(each, each), **summary["total"]})
            words = page_words(lang)
            waits = bar_rows_chart(
                "branch-waits",
                [
                    (row["name"], [(row["wait"]["median_s"], BAR), (row["wait"]["p90_s"], LINE)])
                    for row in rows
                ],
                [(words["median"], BAR), (words["p90"], LINE)],
                words["branch_waits_title"],
                words["branch_waits_desc"],
                duration,
            )
            return render(
                "reports_branches.html",
                200,
                **context,
                rows=rows,
                waits_chart=waits,
                duration=duration,
                decimal=decimal,
                link=urlencode(link),
            )
        report = storage.report(branch, period.first, period.last, period.weekday)
        words = page_words(lang)
        services = [
            {**s, "name": service_name(s["names"], lang, s["id"])} for s in report["services"]
        ]
        service_names = {s["id"]: s["name"] for s in services}
        waits = bar_rows_chart(
            "waits",
            [
                (
                    s["name"],
                    [(s["wait"]["median_s"], BAR), (s["wait"]["p90_s"], LINE)],
                )
                for s in services
            ],
            [(words["median"], BAR), (words["p90"], LINE)],
            words["waits_title"],
            words["waits_desc"],
            duration,
        )
        distribution = report["total"]["feedback"]["distribution"]
        ratings = bar_rows_chart(
            "ratings",
            [(f"{n} / 5", [(distribution[n], BAR)]) for n in reversed(RATINGS)],
            [(words["ratings_title"], BAR)],
            words["ratings_title"],
            words["ratings_desc"],
            lambda v: str(int(v or 0)),
        )
        return render(
            "reports.html",
            200,
            **context,
            report=report,
            services=services,
            service_names=service_names,
            hourly=hourly_chart(report["hourly"], words, lang, period.single_day),
            waits_chart=waits,
            ratings_chart=ratings,
            comments=[f for f in report["feedback"] if f["comment"]],
            without_comment=sum(1 for f in report["feedback"] if not f["comment"]),
            ratings=RATINGS,
            duration=duration,
            decimal=decimal,
            link=urlencode({**link, "branch": branch}),
        )

    @router.get("/reports.csv")
    def reports_csv(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        entry = admitted(session, accept_language)
        if isinstance(entry, Response):
            return entry
        member, lang, allowed = entry
        query = query_of(request)
        try:
            branch = chosen_branch(query, member, allowed)
        except PermissionError:
            return Response("That branch is not one of yours.\n", 403, media_type="text/plain")
        table = query.get("table", "")
        if table not in TABLES:
            return Response(
                f"table must be one of {', '.join(TABLES)}\n", 400, media_type="text/plain"
            )
        try:
            period = Period.from_query(query, today_of(branch), translator(lang, "en").gettext)
        except Rejected as exc:
            return Response(f"{exc}\n", 400, media_type="text/plain")
        report = storage.report(branch, period.first, period.last, period.weekday)
        filename = f"vuoro-{branch}-{table}-{period.first}-{period.last}.csv"
        return Response(
            csv_table(report, table, lang).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    return router
