"""Management pages for a branch's managers: the branch, its services (names,
opening hours, exceptions, last-ticket time, daily cap, priority, category,
where to go), the kiosk's service tree (categories), where each counter is,
its kiosks (pairing codes, names, revocation, health) and its staff accounts.

Under ``/console/manage`` so the console's session cookie and CSRF token
cover it; only staff with the manager role get in. Every form that fails
comes back with what was typed and the reason, so nothing is lost.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from server import branch_file
from server.i18n import LANGUAGES
from server.staff import ROLES, Staff, StaffMember
from server.storage import Rejected, Storage, now
from sync import protocol, schedule

COOKIE = "vuoro_session"
MAX_FIELD = 4000
MAX_FIELDS = 120
STALE_S = 3 * protocol.HEARTBEAT_S
#: a display's page touches the server at least every keep-alive (15 s) while
#: its stream is open, noted at most once a minute
DISPLAY_STALE_S = 3 * 60
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


def hours_summary(service: dict) -> str:
    opening = service.get("schedule") or {}
    hours = opening.get("hours")
    if hours is None:
        return "always open"
    parts = [f"{day.capitalize()} {' '.join(periods)}" for day, periods in hours.items() if periods]
    return "; ".join(parts) or "closed every day"


def kiosk_health(kiosk: dict) -> dict:
    """What a manager needs to see at a glance: online, printer, paper, backlog."""
    seen = kiosk["last_seen_at"]
    age = None if seen is None else (now() - datetime.fromisoformat(seen)).total_seconds()
    return kiosk | {
        "online": age is not None and age <= STALE_S and not kiosk["revoked"],
        "seen_ago": "never" if age is None else _ago(age),
        "alarm": kiosk["printer"] in PRINTER_ALARMS
        or kiosk["clock"].startswith("unsure")
        or bool(kiosk["problems"]),
    }


def display_health(display: dict) -> dict:
    seen = display["last_seen_at"]
    age = None if seen is None else (now() - datetime.fromisoformat(seen)).total_seconds()
    return display | {
        "online": age is not None and age <= DISPLAY_STALE_S and not display["revoked"],
        "seen_ago": "never" if age is None else _ago(age),
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


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, round(seconds))} s ago"
    if seconds < 5400:
        return f"{round(seconds / 60)} min ago"
    if seconds < 172800:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def manage_router(storage: Storage, render) -> APIRouter:
    router = APIRouter(prefix="/console/manage")
    staff = Staff(storage)

    def manager(session: str | None) -> StaffMember | None:
        member = staff.session(session or "")
        return member if member is not None and member.manages else None

    def refused(session: str | None) -> Response:
        if staff.session(session or "") is None:
            return RedirectResponse("/console/login", status_code=303)
        return render(
            "message.html",
            403,
            lang="en",
            title="Managers only",
            text="Ask a manager of your branch to make this change.",
        )

    def overview(member: StaffMember, status: int = 200, **extra) -> Response:
        branch, services = storage.branch_settings(member.branch_id)
        for service in services:
            service["hours_text"] = hours_summary(service)
        in_category = {c["id"]: 0 for c in branch["categories"]}
        for service in services:
            if service["category"] in in_category:
                in_category[service["category"]] += 1
        for category in branch["categories"]:
            category["services"] = in_category[category["id"]]
        return render(
            "manage.html",
            status,
            lang="en",
            member=member,
            branch=branch,
            services=services,
            kiosks=[kiosk_health(k) for k in storage.kiosks(member.branch_id)],
            displays=[display_health(d) for d in storage.displays(member.branch_id)],
            display_message=storage.display_message(member.branch_id),
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
                        (now() - datetime.fromisoformat(t["received_at"])).total_seconds()
                    )
                }
                for t in storage.parked(member.branch_id)
            ],
            staff=staff.members(member.branch_id),
            roles=ROLES,
            **extra,
        )

    def back(message: str) -> Response:
        return RedirectResponse(f"/console/manage?msg={quote(message[:200])}", status_code=303)

    async def checked_form(request: Request, member: StaffMember) -> dict[str, str] | Response:
        try:
            form = await read_form(request)
        except FormError as exc:
            return Response(f"The form could not be read: {exc}", status_code=413)
        if not hmac.compare_digest(form.get("csrf", "").encode(), member.csrf.encode()):
            return Response("The form is stale or forged; reload the page.", status_code=403)
        return form

    async def manager_form(
        request: Request, session: str | None
    ) -> tuple[StaffMember, dict[str, str]] | Response:
        """A manager's post with a readable form and the session's CSRF token, or the refusal."""
        member = manager(session)
        if member is None:
            return refused(session)
        form = await checked_form(request, member)
        return form if isinstance(form, Response) else (member, form)

    @router.get("")
    def home(
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None, msg: str = ""
    ) -> Response:
        member = manager(session)
        if member is None:
            return refused(session)
        return overview(member, message=msg[:200])

    @router.post("/branch")
    async def save_branch(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        languages = [lang for lang in branch_file.LANGUAGES if form.get(f"lang_{lang}") == "on"]
        try:
            branch = branch_file.check_branch(
                {
                    "id": member.branch_id,
                    "name": form.get("name", ""),
                    "timezone": form.get("timezone", "").strip(),
                    "languages": languages,
                    "ticket_url_template": form.get("ticket_url_template", "").strip(),
                }
            )
        except Rejected as exc:
            return overview(member, 400, error=str(exc), branch_form=form)
        await run_in_threadpool(storage.put_branch, branch)
        return back("Branch saved; kiosks take it at their next sync.")

    @router.get("/services/new")
    def new_service(session: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
        member = manager(session)
        if member is None:
            return refused(session)
        return service_page(member, None)

    @router.get("/services/{service_id}")
    def edit_service(
        service_id: str, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        member = manager(session)
        if member is None:
            return refused(session)
        _, services = storage.branch_settings(member.branch_id)
        service = next((s for s in services if s["id"] == service_id), None)
        if service is None:
            return render("message.html", 404, lang="en", title="No such service", text="")
        return service_page(member, service)

    def service_page(
        member: StaffMember,
        service: dict | None,
        status: int = 200,
        values: dict | None = None,
        error: str = "",
    ) -> Response:
        branch, _ = storage.branch_settings(member.branch_id)
        return render(
            "manage_service.html",
            status,
            lang="en",
            member=member,
            branch=branch,
            is_new=service is None and not (values or {}).get("existing"),
            values=values or service_form_values(service, branch["languages"]),
            days=schedule.DAYS,
            categories=branch["categories"],
            error=error,
        )

    @router.post("/services")
    async def save_service(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        branch, services = storage.branch_settings(member.branch_id)
        try:
            _check_new_or_existing(form, {s["id"] for s in services}, "service")
            service = branch_file.check_service(service_from_form(form, branch["languages"]))
            await run_in_threadpool(storage.put_service, member.branch_id, service)
        except Rejected as exc:
            return service_page(member, None, 400, values=form, error=str(exc))
        return back(f"Service {service['id']} saved; kiosks take it at their next sync.")

    @router.post("/services/{service_id}/remove")
    async def remove_service(
        service_id: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, _form = checked
        removed = await run_in_threadpool(storage.remove_service, member.branch_id, service_id)
        return back(f"Service {service_id} removed." if removed else "No such service.")

    @router.get("/categories/new")
    def new_category(session: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
        member = manager(session)
        if member is None:
            return refused(session)
        return category_page(member, None)

    @router.get("/categories/{category_id}")
    def edit_category(
        category_id: str, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        member = manager(session)
        if member is None:
            return refused(session)
        category = next(
            (c for c in storage.categories(member.branch_id) if c["id"] == category_id), None
        )
        if category is None:
            return render("message.html", 404, lang="en", title="No such category", text="")
        return category_page(member, category)

    def category_page(
        member: StaffMember,
        category: dict | None,
        status: int = 200,
        values: dict | None = None,
        error: str = "",
    ) -> Response:
        branch, _ = storage.branch_settings(member.branch_id)
        values = values or category_form_values(category, branch["languages"])
        return render(
            "manage_category.html",
            status,
            lang="en",
            member=member,
            branch=branch,
            is_new=category is None and not values.get("existing"),
            values=values,
            # a category cannot go under itself
            parents=[c for c in branch["categories"] if c["id"] != values.get("id")],
            error=error,
        )

    @router.post("/categories")
    async def save_category(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        """Add or change a category of the kiosk's service tree."""
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        branch, _ = storage.branch_settings(member.branch_id)
        try:
            _check_new_or_existing(form, {c["id"] for c in branch["categories"]}, "category")
            category = branch_file.check_category(category_from_form(form, branch["languages"]))
            await run_in_threadpool(storage.put_category, member.branch_id, category)
        except Rejected as exc:
            return category_page(member, None, 400, values=form, error=str(exc))
        return back(f"Category {category['id']} saved; kiosks take it at their next sync.")

    @router.post("/categories/{category_id}/remove")
    async def remove_category(
        category_id: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        """What was in the category moves up a level; nothing leaves the kiosks."""
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, _form = checked
        removed = await run_in_threadpool(storage.remove_category, member.branch_id, category_id)
        return back(
            f"Category {category_id} removed; what was in it moved up a level."
            if removed
            else "No such category."
        )

    @router.post("/counters")
    async def save_counter(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        """Where a counter is (a room, a floor): its calls say it; empty forgets it."""
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        branch, _ = storage.branch_settings(member.branch_id)
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
            await run_in_threadpool(
                storage.set_counter_location, member.branch_id, counter, locations
            )
        except Rejected as exc:
            return overview(member, 400, error=str(exc), counter_form=form)
        return back(
            f"Counter {counter}: {'place saved' if locations else 'no place set'}; "
            "calls say it from now on."
        )

    @router.post("/pairing-code")
    async def pairing_code(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, _form = checked
        code = await run_in_threadpool(storage.new_pairing_code, member.branch_id, 3600)
        return overview(member, pairing_code=code)

    @router.post("/kiosks/{kiosk_id}/{action}")
    async def kiosk_action(
        kiosk_id: str,
        action: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        try:
            if action == "rename":
                done = await run_in_threadpool(
                    storage.rename_kiosk, kiosk_id, form.get("name", ""), member.branch_id
                )
            elif action == "revoke":
                done = await run_in_threadpool(storage.revoke, kiosk_id, member.branch_id)
            elif action in ("reload", "reboot"):
                done = await run_in_threadpool(
                    storage.send_command, kiosk_id, action, member.branch_id
                )
            else:
                return render("message.html", 404, lang="en", title="Not found", text="")
        except Rejected as exc:
            return overview(member, 400, error=str(exc))
        said = {
            "rename": "Kiosk renamed.",
            "revoke": "Kiosk revoked.",
            "reload": "The kiosk restarts its app at its next heartbeat.",
            "reboot": "The kiosk reboots at its next heartbeat.",
        }
        return back(said[action] if done else "No such kiosk, or nothing to change.")

    @router.post("/displays/{display_id}/{action}")
    async def display_action(
        display_id: str,
        action: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        """Rename a display, point it at services, counters and languages, set
        its volume (``settings``), or revoke it; its page follows at once."""
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        try:
            if action == "settings":
                done = await run_in_threadpool(
                    lambda: storage.change_display(
                        display_id, member.branch_id, **display_settings_from_form(form)
                    )
                )
            elif action == "revoke":
                done = await run_in_threadpool(storage.revoke_display, display_id, member.branch_id)
            else:
                return render("message.html", 404, lang="en", title="Not found", text="")
        except Rejected as exc:
            return overview(member, 400, error=str(exc))
        said = {"settings": "Display saved.", "revoke": "Display revoked."}
        return back(said[action] if done else "No such display, or nothing to change.")

    @router.post("/display-message")
    async def display_message(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        try:
            line = await run_in_threadpool(
                storage.set_display_message, member.branch_id, form.get("message", "")
            )
        except Rejected as exc:
            return overview(member, 400, error=str(exc))
        return back("The displays show the message." if line else "The displays show no message.")

    @router.post("/parked/{ticket_id}/queue")
    async def queue_parked(
        ticket_id: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        """A ticket no day's queue could take goes to the end of today's: its
        holder is at the branch with the paper."""
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, _form = checked
        problem = await run_in_threadpool(storage.queue_parked, member.branch_id, ticket_id)
        return back(problem or "The ticket is in today's queue.")

    @router.post("/staff")
    async def save_staff(
        request: Request, session: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, form = checked
        services = [s for s in form.get("services", "").replace(",", " ").split() if s]
        try:
            name = await run_in_threadpool(
                staff.add,
                member.branch_id,
                form.get("username", ""),
                form.get("password", ""),
                form.get("counter", ""),
                services,
                form.get("role", "staff"),
                keep_session=session or "",  # their own, when managers change themselves
            )
        except Rejected as exc:
            kept = {k: v for k, v in form.items() if k != "password"}
            return overview(member, 400, error=str(exc), staff_form=kept)
        return back(f"Staff {name} saved.")

    @router.post("/staff/{username}/remove")
    async def remove_staff(
        username: str,
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        checked = await manager_form(request, session)
        if isinstance(checked, Response):
            return checked
        member, _form = checked
        if username.lower() == member.username:
            return overview(member, 400, error="You cannot remove your own account.")
        removed = await run_in_threadpool(staff.remove, member.branch_id, username)
        return back(f"Staff {username} removed." if removed else "No such staff member.")

    return router
