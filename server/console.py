"""The staff console: log in, then work a counter (call, recall, start, served,
no-show, transfer). Plain HTML forms, each carrying the session's CSRF token."""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server import events, live
from server.staff import Staff, StaffMember
from server.storage import Rejected, Storage
from server.throttle import Busy, PasswordChecks

COOKIE = "vuoro_session"


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
    checks = checks or PasswordChecks()
    hub = hub or events.Hub(storage)
    streams = streams or live.Streams(live.Limits.max_streams)

    def member_for(session: str | None) -> StaffMember | None:
        return staff.session(session or "")

    def login_page(status: int, error: str, wait_s: int = 0) -> Response:
        response = render("console_login.html", status, lang="en", error=error)
        if wait_s:
            response.headers["Retry-After"] = str(wait_s)
        return response

    @router.get("/login", response_class=HTMLResponse)
    def login_form() -> HTMLResponse:
        return render("console_login.html", 200, lang="en")

    @router.post("/login")
    async def log_in(
        request: Request,
        username: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=200)],
    ) -> Response:
        """Async on purpose: the password check waits in its own small pool
        (server.throttle.PasswordChecks), never in the thread pool that serves
        the kiosks."""
        if from_another_site(request):
            return login_page(
                403, "This login form came from another site. Open this server's login page."
            )
        address = request.client.host if request.client else "unknown"
        admission = staff.admission(username, address)
        if admission.wait_s:
            return login_page(
                429, f"Too many attempts; try again in {admission.wait_s} s.", admission.wait_s
            )
        try:
            token = await checks.run(
                staff.check_password, username, password, address, clean=admission.clean
            )
        except Busy as exc:
            return login_page(503, f"{str(exc).capitalize()}.", exc.seconds)
        if not token:
            return login_page(401, "Wrong username or password.")
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

    @router.get("", response_class=HTMLResponse)
    def counter(
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None, msg: str = ""
    ) -> Response:
        member = member_for(session)
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        config = storage.kiosk_config(member.branch_id)
        services = [
            {"id": s.id, "name": s.names.get("en") or next(iter(s.names.values()))}
            for s in config.services
        ]
        return render(
            "console.html",
            200,
            lang="en",
            member=member,
            current=staff.current(member),
            services=services,
            queue=storage.queue(member.branch_id),
            message=msg[:200],
        )

    def counter_state(session: str) -> str | None:
        """What the counter page shows live: its ticket and the branch's queue."""
        member = member_for(session)
        if member is None:
            return None  # logged out, or the session ended: the stream ends too
        current = staff.current(member)
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
    def state(session: Annotated[str | None, Cookie(alias=COOKIE)] = None) -> Response:
        """The same as the stream's messages, for a page that polls instead."""
        body = counter_state(session or "")
        if body is None:
            return Response('{"detail": "log in"}', 401, media_type="application/json")
        return Response(body, media_type="application/json", headers=live.HEADERS)

    @router.get("/events")
    async def counter_events(
        request: Request,
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        """The counter page follows its branch live (EventSource); it polls when this fails."""
        member = await asyncio.to_thread(member_for, session)
        if member is None:
            return Response('{"detail": "log in"}', 401, media_type="application/json")

        async def render() -> str | None:
            return await asyncio.to_thread(counter_state, session or "")

        return await live.stream(
            request, hub, streams, member.branch_id, render, lambda batch: True, keepalive_s
        )

    @router.post("/act")
    def act(
        csrf: Annotated[str, Form(max_length=100)],
        action: Annotated[str, Form(max_length=20)],
        service: Annotated[str, Form(max_length=64)] = "",
        session: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        member = member_for(session)
        if member is None:
            return RedirectResponse("/console/login", status_code=303)
        if not hmac.compare_digest(csrf.encode(), member.csrf.encode()):
            return Response("The form is stale or forged; reload the page.", status_code=403)
        try:
            message = staff.act(member, action, service)
        except Rejected as exc:
            message = str(exc)
        return RedirectResponse(f"/console?msg={quote(message)}", status_code=303)

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
            staff.log_out(session or "")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    return router
