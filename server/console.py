"""The staff console: log in, choose the counter and its services, then work it
(call next or a chosen ticket, recall, start, served, no-show and its undo,
transfer, a break, a number given at the counter). Plain HTML forms, each
carrying the session's CSRF token; the page's script sends the same forms with
``Accept: application/json`` and follows the branch live, so nothing typed is
lost to a reload."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Cookie, Form, Header, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from catalogue import N_, translator
from server import events, live, phones
from server.counter import Counter, no_show_grace_s, seconds_since
from server.i18n import LANGUAGES, accepted_language
from server.staff import Staff, StaffMember
from server.storage import Rejected, Storage
from server.storage.callbacks import CallbackChanged
from server.throttle import Busy, PasswordChecks

COOKIE = "vuoro_session"
#: what a form may send as a reason before it is refused with words, not a 422
REASON_FORM_MAX = 2000

#: The counter screen's keyboard shortcuts: action → key (one letter, no
#: modifier; never while typing in a field). README lists them.
SHORTCUTS = {
    "call": "N",
    "recall": "R",
    "start": "S",
    "served": "D",
    "no_show": "X",
    "undo": "U",
    "pause": "P",
    "resume": "P",
}


def from_another_site(request: Request) -> bool:
    """Did another site's page make the browser send this form (login CSRF)?

    Browsers mark every request with where it comes from, and no page can
    forge these headers: ``Sec-Fetch-Site`` (every current browser), else
    ``Origin`` (sent with every cross-origin POST), compared with the host
    asked for. A request with neither comes from no browser's page (a script
    or ``curl``), which cannot log a victim's browser in. A token in a
    pre-session cookie would add nothing against browsers, and shut scripts out.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin == "null" or urlsplit(origin).netloc != request.headers.get("host", "")


def console_language(member: StaffMember | None, accept_language: str | None) -> str:
    """The staff member's chosen language, else their browser's, else English."""
    if member is not None and member.language in LANGUAGES:
        return member.language
    return accepted_language(accept_language) or "en"


def screen_words(language: str) -> dict[str, str]:
    """What the counter screen's script writes, in ``language``."""
    tr = translator(language).gettext
    return {
        "free": tr("free"),
        "called": tr("called"),
        "serving": tr("being served"),
        "nobody": tr("Nobody is waiting."),
        "nobody_mine": tr("Nobody is waiting for your services."),
        "others": tr("{count} waiting for other services."),
        "minutes": tr("{minutes} min"),
        "counter_ticket": tr("counter ticket"),
        "transferred": tr("transferred"),
        "priority": tr("priority"),
        "call_this": tr("Choose {number}"),
        "chosen": tr("Chosen: {number}"),
        "none_chosen": tr("Choose a ticket in the list first."),
        "reason_needed": tr("Write why this customer goes first."),
        "undo": tr("Undo no-show of {number} ({seconds} s)"),
        "no_show_in": tr("No-show possible in {seconds} s"),
        "paused": tr("On a break"),
        "open": tr("Open"),
        "sharing": tr(
            "{names} also works at this counter: you share its calls. "
            "Choose another counter unless that is meant."
        ),
        "offline": tr("No connection; trying again…"),
        "no_callbacks": tr("Nobody is waiting for a call-back."),
        "callback_meta": tr("Waited {minutes} min · tries {tries} of {most}"),
        "reached": tr("Reached"),
        "not_reached": tr("Not reached"),
    }


def callback_items(storage: Storage, branch_id: str, names: dict[str, str]) -> list[dict]:
    """The branch's open call-backs as the counter screen lists them, oldest first."""
    return [
        {
            "id": c["id"],
            "phone": c["phone"],
            "phone_shown": phones.shown(c["phone"]),
            "reason": c["reason"],
            "service": names.get(c["service_id"] or "", c["service_id"] or ""),
            "waited_s": c["waited_s"],
            "tries": c["tries"],
            "max_tries": c["max_tries"],
        }
        for c in storage.open_callbacks(branch_id)
    ]


def console_router(
    storage: Storage,
    render,
    checks: PasswordChecks | None = None,
    hub: events.Hub | None = None,
    streams: live.Streams | None = None,
    keepalive_s: float = live.KEEPALIVE_S,
) -> APIRouter:
    router = APIRouter(prefix="/console")
    staff = Staff(storage)
    counters = Counter(storage, staff)
    checks = checks or PasswordChecks()
    hub = hub or events.Hub(storage)
    streams = streams or live.Streams(live.Limits.max_streams)

    def member_for(session: str | None) -> StaffMember | None:
        return staff.session(session or "")

    def login_page(status: int, lang: str, error: str, wait_s: int = 0) -> Response:
        response = render("console_login.html", status, lang=lang, error=error)
        if wait_s:
            response.headers["Retry-After"] = str(wait_s)
        return response

    @router.get("/login", response_class=HTMLResponse)
    def login_form(accept_language: Annotated[str | None, Header()] = None) -> HTMLResponse:
        return render("console_login.html", 200, lang=console_language(None, accept_language))

    @router.post("/login")
    async def log_in(
        request: Request,
        username: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=200)],
    ) -> Response:
        """Async on purpose: the password check waits in its own small pool
        (server.throttle.PasswordChecks), never in the thread pool that serves
        the kiosks."""
        lang = console_language(None, request.headers.get("accept-language"))
        tr = translator(lang).gettext
        if from_another_site(request):
            return login_page(
                403,
                lang,
                tr("This login form came from another site. Open this server's login page."),
            )
        address = request.client.host if request.client else "unknown"
        admission = staff.admission(username, address)
        if admission.wait_s:
            return login_page(
                429,
                lang,
                tr("Too many attempts; try again in {seconds} s.").format(seconds=admission.wait_s),
                admission.wait_s,
            )
        try:
            token = await checks.run(
                staff.check_password, username, password, address, clean=admission.clean
            )
        except Busy as exc:
            return login_page(503, lang, f"{str(exc).capitalize()}.", exc.seconds)
        if not token:
            return login_page(401, lang, tr("Wrong username or password."))
        member = await asyncio.to_thread(member_for, token)
        if member is not None:
            await asyncio.to_thread(counters.open_counter, member)
        response = RedirectResponse("/console", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path="/console",
            secure=request.url.scheme == "https",
            max_age=12 * 3600,
        )
        return response

    def service_names(member: StaffMember, lang: str) -> list[dict]:
        """The branch's listed services: id, name in ``lang``, priority."""
        _, services = storage.branch_settings(member.branch_id)
        return [
            {
                "id": s["id"],
                "name": s["names"].get(lang)
                or s["names"].get("en")
                or next(iter(s["names"].values()), s["id"]),
                "priority": s["priority"],
            }
            for s in services
        ]

    @router.get("", response_class=HTMLResponse)
    def counter(
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        msg: str = "",
        choose: str = "",
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        member = member_for(session)
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        lang = console_language(member, accept_language)
        services = service_names(member, lang)
        serves = set(member.services or [s["id"] for s in services])
        return render(
            "console.html",
            200,
            lang=lang,
            member=member,
            current=counters.current(member),
            services=services,
            serves=serves,
            queue=storage.queue(member.branch_id),
            state=screen_state(member, lang),
            words=screen_words(lang),
            counters=counters.known_counters(member.branch_id),
            languages=LANGUAGES,
            shortcuts=SHORTCUTS,
            grace_s=round(no_show_grace_s()),
            choosing=bool(choose) or not member.counter_chosen,
            message=msg[:200],
        )

    def screen_state(member: StaffMember, lang: str) -> dict:
        """Everything the counter screen shows that changes: its ticket, its
        state, the waiting lists of its services, the others' counts."""
        services = service_names(member, lang)
        names = {s["id"]: s["name"] for s in services}
        serves = [s["id"] for s in services if not member.services or s["id"] in member.services]
        queue = storage.queue(member.branch_id)
        lists = storage.waiting_tickets(member.branch_id, serves)
        current = counters.current(member)
        undo = counters.last_no_show(member)
        if current is not None:
            grace = no_show_grace_s() - seconds_since(current["called_at"])
            called = current["status"] == "called"
            current = {
                "number": current["number"],
                "status": current["status"],
                "service": current["service_id"],
                "service_name": names.get(current["service_id"], current["service_id"]),
                "origin": current["origin"],
                "transfers": current["transfers"],
                "reason": current["call_reason"],
                "no_show_in_s": max(math.ceil(grace), 0) if called else 0,
            }
        mine = [
            {
                "service": s["id"],
                "name": s["name"],
                "priority": s["priority"] > 0,
                "waiting": queue[s["id"]].waiting if s["id"] in queue else 0,
                "tickets": lists.get(s["id"], []),
            }
            for s in services
            if s["id"] in serves
        ]
        others = [
            {
                "service": s["id"],
                "name": s["name"],
                "waiting": queue[s["id"]].waiting if s["id"] in queue else 0,
            }
            for s in services
            if s["id"] not in serves
        ]
        return {
            "counter": member.counter,
            "state": "paused" if counters.counter_state(member) == "paused" else "open",
            "current": current,
            "mine": mine,
            "others": others,
            "waiting_mine": sum(m["waiting"] for m in mine),
            "waiting_others": sum(o["waiting"] for o in others),
            "undo": undo and {"number": undo["number"], "seconds": undo["undo_s"]},
            "sharing": counters.sharing(member),
            "callbacks": callback_items(storage, member.branch_id, names),
        }

    def counter_state(session: str, view: str, accept_language: str | None) -> str | None:
        """What the counter page shows live. ``view=screen``: the whole screen
        (:func:`screen_state`); else the short form scripts read: the counter's
        ticket and the branch's waiting per service."""
        member = member_for(session)
        if member is None:
            return None  # logged out, or the session ended: the stream ends too
        if view == "screen":
            lang = console_language(member, accept_language)
            return json.dumps(screen_state(member, lang), separators=(",", ":"))
        current = counters.current(member)
        queue = storage.queue(member.branch_id)
        return json.dumps(
            {
                "current": None
                if current is None
                else {"number": current["number"], "status": current["status"]},
                "waiting": {service: state.waiting for service, state in queue.items()},
            },
            separators=(",", ":"),
        )

    @router.get("/state")
    def state(
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        view: str = "",
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The same as the stream's messages, for a page that polls instead."""
        body = counter_state(session or "", view, accept_language)
        if body is None:
            return Response('{"detail": "log in"}', 401, media_type="application/json")
        return Response(body, media_type="application/json", headers=live.HEADERS)

    @router.get("/events")
    async def counter_events(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        view: str = "",
    ) -> Response:
        """The counter page follows its branch live (EventSource); it polls when this fails."""
        member = await asyncio.to_thread(member_for, session)
        if member is None:
            return Response('{"detail": "log in"}', 401, media_type="application/json")
        accept_language = request.headers.get("accept-language")

        async def render() -> str | None:
            return await asyncio.to_thread(counter_state, session or "", view, accept_language)

        return await live.stream(
            request, hub, streams, member.branch_id, render, lambda batch: True, keepalive_s
        )

    def forged(member: StaffMember, csrf: str, lang: str, wants_json: bool) -> Response | None:
        if hmac.compare_digest(csrf.encode(), member.csrf.encode()):
            return None
        tr = translator(lang).gettext
        said = tr("The form is stale or forged; reload the page.")
        if wants_json:
            return JSONResponse({"ok": False, "message": said}, status_code=403)
        return Response(said, status_code=403)

    def answer(message: str, ok: bool, wants_json: bool, **more) -> Response:
        if wants_json:
            return JSONResponse({"ok": ok, "message": message, **more})
        return RedirectResponse(f"/console?msg={quote(message)}", status_code=303)

    def form_sender(
        session: str | None, csrf: str, accept: str | None, accept_language: str | None
    ) -> Response | tuple[StaffMember, str, bool]:
        """Who sent a staff form, in which language, wanting JSON or a page; or
        the answer already: to the login page, or refused as forged."""
        member = member_for(session)
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        wants_json = "application/json" in (accept or "")
        lang = console_language(member, accept_language)
        return forged(member, csrf, lang, wants_json) or (member, lang, wants_json)

    @router.post("/act")
    def act(
        csrf: Annotated[str, Form(max_length=100)],
        action: Annotated[str, Form(max_length=20)],
        service: Annotated[str, Form(max_length=64)] = "",
        ticket: Annotated[str, Form(max_length=64)] = "",
        reason: Annotated[str, Form(max_length=REASON_FORM_MAX)] = "",
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        accept: Annotated[str | None, Header()] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        sent = form_sender(session, csrf, accept, accept_language)
        if isinstance(sent, Response):
            return sent
        member, lang, wants_json = sent
        outcome = counters.work(member, action, service, ticket, reason, lang)
        return answer(outcome.message, outcome.ok, wants_json, issued=outcome.issued)

    @router.post("/callback")
    def callback(
        csrf: Annotated[str, Form(max_length=100)],
        callback: Annotated[str, Form(max_length=64)],
        outcome: Annotated[str, Form(max_length=20)],
        tries: Annotated[str, Form(max_length=10)] = "",
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        accept: Annotated[str | None, Header()] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """A call-back tried: reached, or not (tries + 1; given up at the
        branch's most). ``tries``: what the screen showed, so of two people
        marking one request at once only the first counts."""
        sent = form_sender(session, csrf, accept, accept_language)
        if isinstance(sent, Response):
            return sent
        member, lang, wants_json = sent
        tr = translator(lang).gettext
        if outcome not in ("reached", "not_reached") or not (tries.isdigit() or tries == ""):
            return answer(tr("The form is stale or forged; reload the page."), False, wants_json)
        seen = int(tries) if tries else None
        try:
            marked = storage.mark_callback(
                member.branch_id, callback, outcome == "reached", member.id, seen
            )
        except CallbackChanged as exc:
            return answer(tr(str(exc)).format(**exc.values), False, wants_json)
        if marked["state"] == "reached":
            said = tr("Call-back marked reached.")
        elif marked["state"] == "given_up":
            said = tr("Not reached {tries} times: the call-back is given up.")
        else:
            said = tr("Not reached: try {tries} noted; it stays in the list.")
        return answer(said.format(tries=marked["tries"]), True, wants_json)

    @router.post("/desk")
    def desk(
        csrf: Annotated[str, Form(max_length=100)],
        counter: Annotated[str, Form(max_length=100)],
        services: Annotated[list[str] | None, Form()] = None,
        language: Annotated[str, Form(max_length=16)] = "",
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
        accept: Annotated[str | None, Header()] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> Response:
        """The counter and the services this session works, and the console's language."""
        sent = form_sender(session, csrf, accept, accept_language)
        if isinstance(sent, Response):
            return sent
        member, lang, wants_json = sent
        services = services or []
        if len(services) > 100 or any(len(s) > 64 for s in services):
            services = ["\x00"]  # too many or too long: refused below as not in the list
        try:
            chosen = counters.choose_counter(
                member, session or "", counter, services, language or None
            )
        except Rejected as exc:
            said = translator(lang).gettext(str(exc))
            if wants_json:
                return JSONResponse({"ok": False, "message": said})
            return RedirectResponse(f"/console?choose=1&msg={quote(said)}", status_code=303)
        tr = translator(console_language(chosen, accept_language)).gettext
        said = tr("You work at counter {counter} now.").format(counter=chosen.counter)
        return answer(said, True, wants_json)

    @router.post("/logout")
    def log_out(
        csrf: Annotated[str, Form(max_length=100)],
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        member = member_for(session)
        if member is not None:
            # forged: the session stays, and so does its cookie (never one without the other)
            if not hmac.compare_digest(csrf.encode(), member.csrf.encode()):
                return Response("The form is stale or forged; reload the page.", status_code=403)
            counters.close_counter(member)
            staff.log_out(session or "")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    return router


#: messages of the storage layer the console shows, so the catalogue has them
_STORAGE_WORDS = (
    N_("a reason is needed to call a ticket out of turn"),
    N_("a reason is at most 200 characters"),
    N_("no such waiting ticket"),
)
