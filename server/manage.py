"""Management pages for a branch's managers: the branch, its services (names,
opening hours, exceptions, last-ticket time, daily cap, priority, category,
where to go), the kiosk's service tree (categories), where each counter is,
its kiosks (pairing codes, names, revocation, health) and its staff accounts.

Under ``/console/manage`` so the console's session cookie and CSRF token
cover it; only managers get in (the manager and organisation roles). An
organisation manager also manages the further branches given to them, one at
a time (``?branch=``), and creates branches. The pages speak the staff
member's language (chosen on the page, else the browser's). Every form that fails
comes back with what was typed and the reason, so nothing is lost.
"""

from __future__ import annotations

import functools
import hmac
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from catalogue import N_, SOURCE_LANGUAGE, translator
from server import branch_file
from server.console import from_another_site
from server.i18n import LANGUAGES, accepted_language
from server.staff import (
    NOT_YOUR_BRANCH,
    ONLY_ORGANISATION_BRANCHES,
    RANK,
    ROLES,
    Staff,
    StaffMember,
)
from server.storage import Rejected, Storage, now
from sync import protocol, schedule

COOKIE = "vuoro_session"
MAX_FIELD = 4000
MAX_FIELDS = 120
STALE_S = 3 * protocol.HEARTBEAT_S
#: a display's page touches the server at least every keep-alive (15 s) while
#: its stream is open, noted at most once a minute
DISPLAY_STALE_S = 3 * 60
#: each role as the pages name it (translated where shown)
ROLE_NAMES = {
    "staff": N_("staff"),
    "manager": N_("manager"),
    "organisation": N_("organisation manager"),
}
PRINTER_ALARMS = {"paper_near_end", "paper_out", "cover_open", "offline", "not_responding", "error"}


class FormError(Exception):
    """A form that cannot be read at all (too many or too long fields)."""


async def read_form(request: Request) -> dict[str, str]:
    """Form fields as text, bounded in count and size."""
    try:
        form = await request.form(max_fields=MAX_FIELDS, max_files=0)
    except Exception as exc:  # multipart's own errors: a form nobody can fill in
        raise FormError(str(exc)) from None
    fields = {}
    for key, value in form.multi_items():
        if not isinstance(value, str) or len(value) > MAX_FIELD:
            raise FormError(f"field {key[:40]!r} is too long")
        fields[key] = value
    return fields


def service_from_form(form: dict[str, str], languages: list[str]) -> dict:
    """The form's fields as a branch-file service entry (checked by branch_file)."""
    entry: dict = {
        "id": form.get("id", "").strip(),
        "prefix": form.get("prefix", "").strip().upper(),
        "name": {lang: form.get(f"name_{lang}", "").strip() for lang in languages},
        "text": {lang: form.get(f"text_{lang}", "").strip() for lang in languages},
        "open": form.get("open") == "on",
        "category": form.get("category", "").strip() or None,
        "location": {lang: form.get(f"location_{lang}", "").strip() for lang in languages},
    }
    entry["name"] = {k: v for k, v in entry["name"].items() if v}
    entry["text"] = {k: v for k, v in entry["text"].items() if v}
    entry["location"] = {k: v for k, v in entry["location"].items() if v}
    for key in ("priority", "last_ticket", "daily_cap"):
        value = form.get(key, "").strip()
        if value:
            try:
                entry[key] = int(value)
            except ValueError:
                raise Rejected(f"{key.replace('_', ' ')}: {value[:20]!r} is not a number") from None
    if form.get("always_open") != "on":
        hours = {day: _periods(form.get(f"hours_{day}", "")) for day in schedule.DAYS}
        entry["hours"] = {day: periods for day, periods in hours.items() if periods}
    entry["exceptions"] = _exceptions(form.get("exceptions", ""))
    return entry


def category_from_form(form: dict[str, str], languages: list[str]) -> dict:
    """The category form's fields as a branch-file entry (checked by branch_file)."""
    position = form.get("position", "").strip() or "0"
    if not position.isdigit() or len(position) > 3:
        raise Rejected(f"position: {position[:20]!r} is not a whole number from 0 to 999")
    return {
        "id": form.get("id", "").strip(),
        "name": {
            lang: form.get(f"name_{lang}", "").strip()
            for lang in languages
            if form.get(f"name_{lang}", "").strip()
        },
        "position": int(position),
        "parent": form.get("parent", "").strip() or None,
    }


def category_form_values(category: dict | None, languages: list[str]) -> dict[str, str]:
    """A stored category as the form's fields (or a new one's defaults)."""
    if category is None:
        return {"position": "0"}
    values = {
        "id": category["id"],
        "position": str(category["position"]),
        "parent": category["parent"] or "",
    }
    for lang in languages:
        values[f"name_{lang}"] = category["names"].get(lang, "")
    return values


def _check_new_or_existing(form: dict[str, str], existing: set[str], noun: str) -> None:
    """A form that edits must find its item still there; one that adds must not
    find it there already (two managers at once, or a reloaded page)."""
    if form.get("existing") and form.get("id") not in existing:
        raise Rejected(f"this {noun} was removed meanwhile; add it again")
    if not form.get("existing") and form.get("id", "").strip() in existing:
        raise Rejected(f"a {noun} {form.get('id')!r} exists already")


def _periods(text: str) -> list[str]:
    text = text.strip()
    if text.lower() in ("", "closed", "-"):
        return []
    return [p.strip().replace(" ", "") for p in text.replace(";", ",").split(",") if p.strip()]


def _exceptions(text: str) -> dict[str, list[str]]:
    """Lines like ``2026-12-24 08:00-12:00, 13:00-15:00`` or ``2026-12-25 closed``."""
    result: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        day, _, periods = line.partition(" ")
        if day in result:
            raise Rejected(f"exceptions, line {number}: {day} is given twice")
        result[day] = _periods(periods)
        if not periods.strip():
            raise Rejected(f"exceptions, line {number}: add periods or 'closed' after the date")
    return result


def service_form_values(service: dict | None, languages: list[str]) -> dict[str, str]:
    """A stored service as the form's fields (or a new service's defaults)."""
    if service is None:
        return {"open": "on", "always_open": "on"}
    opening = service.get("schedule") or {}
    values = {
        "id": service["id"],
        "prefix": service["prefix"],
        "open": "on" if service.get("is_open", True) else "",
        "priority": str(service.get("priority") or 0),
        "last_ticket": str(opening.get("last_ticket_min") or 0),
        "daily_cap": "" if service.get("daily_cap") is None else str(service["daily_cap"]),
        "exceptions": "\n".join(
            f"{day} {', '.join(periods) or 'closed'}"
            for day, periods in (opening.get("exceptions") or {}).items()
        ),
    }
    values["category"] = service.get("category") or ""
    for lang in languages:
        values[f"name_{lang}"] = service["names"].get(lang, "")
        values[f"text_{lang}"] = service.get("texts", {}).get(lang, "")
        values[f"location_{lang}"] = service.get("locations", {}).get(lang, "")
    hours = opening.get("hours")
    if hours is None:
        values["always_open"] = "on"
    else:
        for day in schedule.DAYS:
            values[f"hours_{day}"] = ", ".join(hours.get(day, [])) or "closed"
    return values


Words = Callable[[str], str]


def _same(message: str) -> str:
    return message


def hours_summary(service: dict, tr: Words = _same) -> str:
    opening = service.get("schedule") or {}
    hours = opening.get("hours")
    if hours is None:
        return tr(N_("always open"))
    parts = [f"{day.capitalize()} {' '.join(periods)}" for day, periods in hours.items() if periods]
    return "; ".join(parts) or tr(N_("closed every day"))


def kiosk_health(kiosk: dict, tr: Words = _same) -> dict:
    """What a manager needs to see at a glance: online, printer, paper, backlog."""
    seen = kiosk["last_seen_at"]
    age = None if seen is None else (now() - datetime.fromisoformat(seen)).total_seconds()
    return kiosk | {
        "online": age is not None and age <= STALE_S and not kiosk["revoked"],
        "seen_ago": tr(N_("never")) if age is None else _ago(age, tr),
        "alarm": kiosk["printer"] in PRINTER_ALARMS
        or kiosk["clock"].startswith("unsure")
        or bool(kiosk["problems"]),
    }


def display_health(display: dict, tr: Words = _same) -> dict:
    seen = display["last_seen_at"]
    age = None if seen is None else (now() - datetime.fromisoformat(seen)).total_seconds()
    return display | {
        "online": age is not None and age <= DISPLAY_STALE_S and not display["revoked"],
        "seen_ago": tr(N_("never")) if age is None else _ago(age, tr),
    }


def display_settings_from_form(form: dict[str, str]) -> dict:
    """A display's settings from its row of the management page: checkboxes
    ``service_<id>`` and ``lang_<code>``, the counters as a comma list."""
    volume = form.get("volume", "").strip()
    if not volume.isdigit() or len(volume) > 3:
        raise Rejected("a display's volume is a whole number, 0 to 100")
    return {
        "name": form.get("name", ""),
        "services": [key[8:] for key, on in form.items() if key.startswith("service_") and on],
        "counters": [c.strip() for c in form.get("counters", "").split(",") if c.strip()],
        "languages": [key[5:] for key, on in form.items() if key.startswith("lang_") and on],
        "volume": int(volume),
    }


def _ago(seconds: float, tr: Words = _same) -> str:
    if seconds < 90:
        return tr(N_("{n} s ago")).format(n=max(0, round(seconds)))
    if seconds < 5400:
        return tr(N_("{n} min ago")).format(n=round(seconds / 60))
    if seconds < 172800:
        return tr(N_("{n} h ago")).format(n=round(seconds / 3600))
    return tr(N_("{n} days ago")).format(n=round(seconds / 86400))


@dataclass(frozen=True)
class Managing:
    """Who manages which branch now, in which language.

    ``member.branch_id`` stays the account's own branch (the counter it
    works, the session's); the branch these pages change is ``branch_id``,
    chosen with ``?branch=`` on every page and form (an organisation manager's
    branch picker), checked against ``branches`` on every request. Each tab
    so edits the branch it shows, whatever another tab chose.
    """

    member: StaffMember
    branch_id: str
    branches: list[str]  # every branch the member manages, their own first
    lang: str
    session: str

    @property
    def query(self) -> str:
        """What every link and form of the pages carries: the branch they change."""
        return "?branch=" + quote(self.branch_id, safe="")

    def tr(self, message: str, **values: object) -> str:
        """``message`` (a catalogue msgid) in the member's language."""
        text = translator(self.lang).gettext(message)
        return text.format(**values) if values else text


def page_language(member: StaffMember | None, accept_language: str | None) -> str:
    """The staff member's chosen language, else their browser's, else English."""
    return (
        (member.language if member and member.language in LANGUAGES else None)
        or accepted_language(accept_language)
        or SOURCE_LANGUAGE
    )


def languages_from_form(form: dict[str, str]) -> list[str]:
    """The ticked ``lang_<code>`` boxes; Rejected for a language the catalogue lacks."""
    unknown = [k[5:] for k in form if k.startswith("lang_") and k[5:] not in LANGUAGES]
    if unknown:
        raise Rejected(N_("unknown language"))
    return [lang for lang in branch_file.LANGUAGES if form.get(f"lang_{lang}") == "on"]


def new_branch_from_form(form: dict[str, str], zones: frozenset[str]) -> dict:
    """The new-branch form as a checked branch: an id slug, a name, a time zone
    of the list offered, known languages, an http(s) ticket address."""
    branch_id = form.get("id", "")
    if not branch_file.ID.fullmatch(branch_id):
        raise Rejected(N_("A branch id is 1 to 64 of a-z, 0-9, - and _, starting with a-z or 0-9."))
    zone = form.get("timezone", "")
    if zone not in zones:
        raise Rejected(N_("Choose a time zone from the list."))
    languages = languages_from_form(form)
    if not languages:
        raise Rejected(N_("Tick at least one language."))
    return branch_file.check_branch(
        {
            "id": branch_id,
            "name": form.get("name", ""),
            "timezone": zone,
            "languages": languages,
            "ticket_url_template": form.get("ticket_url_template", "").strip(),
        }
    )


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The time zones a branch may be in (the system's zoneinfo), sorted."""
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


def manage_router(storage: Storage, render) -> APIRouter:
    router = APIRouter(prefix="/console/manage")
    staff = Staff(storage)

    def managing(request: Request) -> Managing | Response:
        """The manager and the branch this request changes, or the refusal."""
        session = request.cookies.get(COOKIE, "")
        member = staff.session(session)
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        lang = page_language(member, request.headers.get("accept-language"))
        words = translator(lang)
        if not member.manages:
            return render(
                "message.html",
                403,
                lang=lang,
                title=words.gettext(N_("Managers only")),
                text=words.gettext(N_("Ask a manager of your branch to make this change.")),
            )
        branches = staff.branches(member)
        wanted = request.query_params.get("branch") or member.branch_id
        if wanted not in branches:
            return render(
                "message.html",
                403,
                lang=lang,
                title=words.gettext(N_("Not your branch")),
                text=words.gettext(NOT_YOUR_BRANCH),
            )
        return Managing(member, wanted, branches, lang, session)

    def not_found(m: Managing, title: str = N_("Not found")) -> Response:
        return render("message.html", 404, lang=m.lang, title=m.tr(title), text="")

    def common(m: Managing) -> dict:
        """What every management page shows: who, which branch, the picker."""
        names = storage.branch_names()
        return {
            "lang": m.lang,
            "member": m.member,
            "q": m.query,
            "managed": [(b, names.get(b, b)) for b in m.branches],
            "role_name": ROLE_NAMES[m.member.role],
            "role_names": ROLE_NAMES,
            "ranks": RANK,
        }

    def overview(m: Managing, status: int = 200, **extra) -> Response:
        branch, services = storage.branch_settings(m.branch_id)
        for service in services:
            service["hours_text"] = hours_summary(service, m.tr)
        in_category = {c["id"]: 0 for c in branch["categories"]}
        for service in services:
            if service["category"] in in_category:
                in_category[service["category"]] += 1
        for category in branch["categories"]:
            category["services"] = in_category[category["id"]]
        organisation = m.member.role == "organisation"
        return render(
            "manage.html",
            status,
            **common(m),
            branch=branch,
            services=services,
            kiosks=[kiosk_health(k, m.tr) for k in storage.kiosks(m.branch_id)],
            displays=[display_health(d, m.tr) for d in storage.displays(m.branch_id)],
            display_message=storage.display_message(m.branch_id),
            # the branch's own languages first, in its order: a display speaks
            # the ticked ones in the order listed
            display_languages={
                code: LANGUAGES[code]
                for code in [*branch["languages"], *LANGUAGES]
                if code in LANGUAGES
            },
            parked=[
                t
                | {
                    "received_ago": _ago(
                        (now() - datetime.fromisoformat(t["received_at"])).total_seconds(), m.tr
                    )
                }
                for t in storage.parked(m.branch_id)
            ],
            staff=staff.members(m.branch_id),
            # nobody is offered a role above their own
            roles={r: ROLE_NAMES[r] for r in ROLES if RANK[r] <= RANK[m.member.role]},
            organisation=organisation,
            time_zones=time_zones() if organisation else (),
            catalogue_languages=LANGUAGES,
            my_language=m.member.language or "",
            **extra,
        )

    def back(m: Managing, message: str) -> Response:
        return RedirectResponse(
            f"/console/manage{m.query}&msg={quote(message[:200])}", status_code=303
        )

    async def managing_form(request: Request) -> tuple[Managing, dict[str, str]] | Response:
        """A manager's post: from this site, a readable form, the session's CSRF token."""
        m = managing(request)
        if isinstance(m, Response):
            return m
        if from_another_site(request):
            return Response(m.tr("This form came from another site."), status_code=403)
        try:
            form = await read_form(request)
        except FormError as exc:
            return Response(f"The form could not be read: {exc}", status_code=413)
        if not hmac.compare_digest(form.get("csrf", "").encode(), m.member.csrf.encode()):
            return Response(m.tr("The form is stale or forged; reload the page."), status_code=403)
        return m, form

    @router.get("")
    def home(request: Request, msg: str = "") -> Response:
        m = managing(request)
        if isinstance(m, Response):
            return m
        return overview(m, message=msg[:200])

    @router.post("/branch")
    async def save_branch(request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        try:
            branch = branch_file.check_branch(
                {
                    "id": m.branch_id,
                    "name": form.get("name", ""),
                    "timezone": form.get("timezone", "").strip(),
                    "languages": languages_from_form(form),
                    "ticket_url_template": form.get("ticket_url_template", "").strip(),
                    "remote_join": bool(form.get("remote_join")),
                }
            )
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)), branch_form=form)
        await run_in_threadpool(storage.put_branch, branch)
        return back(m, m.tr("Branch saved; kiosks take it at their next sync."))

    @router.post("/branches")
    async def create_branch(request: Request) -> Response:
        """A new branch, by an organisation manager; they manage it from then on."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        try:
            branch = new_branch_from_form(form, frozenset(time_zones()))
            await run_in_threadpool(staff.create_branch, branch, m.member)
        except Rejected as exc:
            status = 403 if str(exc) == ONLY_ORGANISATION_BRANCHES else 400
            return overview(m, status, error=m.tr(str(exc)), new_branch_form=form)
        m = replace(m, branch_id=branch["id"], branches=[*m.branches, branch["id"]])
        return back(
            m,
            m.tr(
                "Branch {branch} created. Add its services, then pair its kiosks and displays.",
                branch=branch["id"],
            ),
        )

    @router.post("/language")
    async def my_language(request: Request) -> Response:
        """The language these pages and the console speak to the member."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        chosen = form.get("language", "") or None
        try:
            await run_in_threadpool(staff.set_language, m.member, chosen)
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)))
        m = replace(m, lang=chosen or page_language(None, request.headers.get("accept-language")))
        return back(m, m.tr("Language saved."))

    @router.get("/services/new")
    def new_service(request: Request) -> Response:
        m = managing(request)
        if isinstance(m, Response):
            return m
        return service_page(m, None)

    @router.get("/services/{service_id}")
    def edit_service(service_id: str, request: Request) -> Response:
        m = managing(request)
        if isinstance(m, Response):
            return m
        _, services = storage.branch_settings(m.branch_id)
        service = next((s for s in services if s["id"] == service_id), None)
        if service is None:
            return not_found(m, N_("No such service"))
        return service_page(m, service)

    def service_page(
        m: Managing,
        service: dict | None,
        status: int = 200,
        values: dict | None = None,
        error: str = "",
    ) -> Response:
        branch, _ = storage.branch_settings(m.branch_id)
        return render(
            "manage_service.html",
            status,
            **common(m),
            branch=branch,
            is_new=service is None and not (values or {}).get("existing"),
            values=values or service_form_values(service, branch["languages"]),
            days=schedule.DAYS,
            categories=branch["categories"],
            error=error,
        )

    @router.post("/services")
    async def save_service(request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        branch, services = storage.branch_settings(m.branch_id)
        try:
            _check_new_or_existing(form, {s["id"] for s in services}, "service")
            service = branch_file.check_service(service_from_form(form, branch["languages"]))
            await run_in_threadpool(storage.put_service, m.branch_id, service)
        except Rejected as exc:
            return service_page(m, None, 400, values=form, error=m.tr(str(exc)))
        return back(
            m,
            m.tr(
                "Service {service} saved; kiosks take it at their next sync.", service=service["id"]
            ),
        )

    @router.post("/services/{service_id}/remove")
    async def remove_service(service_id: str, request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, _form = checked
        removed = await run_in_threadpool(storage.remove_service, m.branch_id, service_id)
        return back(
            m,
            m.tr("Service {service} removed.", service=service_id)
            if removed
            else m.tr("No such service."),
        )

    @router.get("/categories/new")
    def new_category(request: Request) -> Response:
        m = managing(request)
        if isinstance(m, Response):
            return m
        return category_page(m, None)

    @router.get("/categories/{category_id}")
    def edit_category(category_id: str, request: Request) -> Response:
        m = managing(request)
        if isinstance(m, Response):
            return m
        category = next(
            (c for c in storage.categories(m.branch_id) if c["id"] == category_id), None
        )
        if category is None:
            return not_found(m, N_("No such category"))
        return category_page(m, category)

    def category_page(
        m: Managing,
        category: dict | None,
        status: int = 200,
        values: dict | None = None,
        error: str = "",
    ) -> Response:
        branch, _ = storage.branch_settings(m.branch_id)
        values = values or category_form_values(category, branch["languages"])
        return render(
            "manage_category.html",
            status,
            **common(m),
            branch=branch,
            is_new=category is None and not values.get("existing"),
            values=values,
            # a category cannot go under itself
            parents=[c for c in branch["categories"] if c["id"] != values.get("id")],
            error=error,
        )

    @router.post("/categories")
    async def save_category(request: Request) -> Response:
        """Add or change a category of the kiosk's service tree."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        branch, _ = storage.branch_settings(m.branch_id)
        try:
            _check_new_or_existing(form, {c["id"] for c in branch["categories"]}, "category")
            category = branch_file.check_category(category_from_form(form, branch["languages"]))
            await run_in_threadpool(storage.put_category, m.branch_id, category)
        except Rejected as exc:
            return category_page(m, None, 400, values=form, error=m.tr(str(exc)))
        return back(
            m,
            m.tr(
                "Category {category} saved; kiosks take it at their next sync.",
                category=category["id"],
            ),
        )

    @router.post("/categories/{category_id}/remove")
    async def remove_category(category_id: str, request: Request) -> Response:
        """What was in the category moves up a level; nothing leaves the kiosks."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, _form = checked
        removed = await run_in_threadpool(storage.remove_category, m.branch_id, category_id)
        return back(
            m,
            m.tr(
                "Category {category} removed; what was in it moved up a level.",
                category=category_id,
            )
            if removed
            else m.tr("No such category."),
        )

    @router.post("/counters")
    async def save_counter(request: Request) -> Response:
        """Where a counter is (a room, a floor): its calls say it; empty forgets it."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        branch, _ = storage.branch_settings(m.branch_id)
        try:
            counter, locations = branch_file.check_counter(
                {
                    "id": form.get("place_counter", ""),
                    "location": {
                        lang: form.get(f"location_{lang}", "").strip()
                        for lang in branch["languages"]
                        if form.get(f"location_{lang}", "").strip()
                    },
                },
                "counter",
            )
            await run_in_threadpool(storage.set_counter_location, m.branch_id, counter, locations)
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)), counter_form=form)
        return back(
            m,
            m.tr("Counter {counter}: place saved; calls say it from now on.", counter=counter)
            if locations
            else m.tr(
                "Counter {counter}: no place set; calls say it from now on.", counter=counter
            ),
        )

    @router.post("/pairing-code")
    async def pairing_code(request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, _form = checked
        code = await run_in_threadpool(storage.new_pairing_code, m.branch_id, 3600)
        return overview(m, pairing_code=code)

    @router.post("/kiosks/{kiosk_id}/{action}")
    async def kiosk_action(kiosk_id: str, action: str, request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        try:
            if action == "rename":
                done = await run_in_threadpool(
                    storage.rename_kiosk, kiosk_id, form.get("name", ""), m.branch_id
                )
            elif action == "revoke":
                done = await run_in_threadpool(storage.revoke, kiosk_id, m.branch_id)
            elif action in ("reload", "reboot"):
                done = await run_in_threadpool(storage.send_command, kiosk_id, action, m.branch_id)
            else:
                return not_found(m)
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)))
        said = {
            "rename": N_("Kiosk renamed."),
            "revoke": N_("Kiosk revoked."),
            "reload": N_("The kiosk restarts its app at its next heartbeat."),
            "reboot": N_("The kiosk reboots at its next heartbeat."),
        }
        return back(m, m.tr(said[action] if done else N_("No such kiosk, or nothing to change.")))

    @router.post("/displays/{display_id}/{action}")
    async def display_action(display_id: str, action: str, request: Request) -> Response:
        """Rename a display, point it at services, counters and languages, set
        its volume (``settings``), or revoke it; its page follows at once."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        try:
            if action == "settings":
                done = await run_in_threadpool(
                    lambda: storage.change_display(
                        display_id, m.branch_id, **display_settings_from_form(form)
                    )
                )
            elif action == "revoke":
                done = await run_in_threadpool(storage.revoke_display, display_id, m.branch_id)
            else:
                return not_found(m)
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)))
        said = {"settings": N_("Display saved."), "revoke": N_("Display revoked.")}
        return back(m, m.tr(said[action] if done else N_("No such display, or nothing to change.")))

    @router.post("/display-message")
    async def display_message(request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        try:
            line = await run_in_threadpool(
                storage.set_display_message, m.branch_id, form.get("message", "")
            )
        except Rejected as exc:
            return overview(m, 400, error=m.tr(str(exc)))
        return back(
            m,
            m.tr("The displays show the message.")
            if line
            else m.tr("The displays show no message."),
        )

    @router.post("/parked/{ticket_id}/queue")
    async def queue_parked(ticket_id: str, request: Request) -> Response:
        """A ticket no day's queue could take goes to the end of today's: its
        holder is at the branch with the paper."""
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, _form = checked
        problem = await run_in_threadpool(storage.queue_parked, m.branch_id, ticket_id)
        return back(m, problem or m.tr("The ticket is in today's queue."))

    @router.post("/staff")
    async def save_staff(request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, form = checked
        services = [s for s in form.get("services", "").replace(",", " ").split() if s]
        further = [k[7:] for k, v in form.items() if k.startswith("branch_") and v == "on"]
        try:
            name = await run_in_threadpool(
                lambda: staff.add(
                    m.branch_id,
                    form.get("username", ""),
                    form.get("password", ""),
                    form.get("counter", ""),
                    services,
                    form.get("role", "staff"),
                    keep_session=m.session,  # their own, when managers change themselves
                    branches=further,
                    by=m.member,
                )
            )
        except Rejected as exc:
            kept = {k: v for k, v in form.items() if k != "password"}
            return overview(m, 400, error=m.tr(str(exc)), staff_form=kept)
        return back(m, m.tr("Staff {name} saved.", name=name))

    @router.post("/staff/{username}/remove")
    async def remove_staff(username: str, request: Request) -> Response:
        checked = await managing_form(request)
        if isinstance(checked, Response):
            return checked
        m, _form = checked
        if username.lower() == m.member.username:
            return overview(m, 400, error=m.tr("You cannot remove your own account."))
        try:
            removed = await run_in_threadpool(staff.remove, m.branch_id, username, m.member)
        except Rejected as exc:
            return overview(m, 403, error=m.tr(str(exc)))
        return back(
            m,
            m.tr("Staff {name} removed.", name=username)
            if removed
            else m.tr("No such staff member."),
        )

    return router
