"""The staff console: log in, then work a counter (call, recall, start, served,
no-show, transfer). Plain HTML forms, each carrying the session's CSRF token."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from server.staff import LockedOut, Staff, StaffMember
from server.storage import Rejected, Storage

COOKIE = "vuoro_session"


def console_router(storage: Storage, render) -> APIRouter:
    router = APIRouter(prefix="/console")
    staff = Staff(storage)

    def member_for(session: str | None) -> StaffMember | None:
        return staff.session(session or "")

    @router.get("/login", response_class=HTMLResponse)
    def login_page() -> HTMLResponse:
        return render("console_login.html", 200, lang="en")

    @router.post("/login")
    def log_in(
        request: Request,
        username: Annotated[str, Form(max_length=100)],
        password: Annotated[str, Form(max_length=200)],
    ) -> Response:
        address = request.client.host if request.client else "unknown"
        try:
            token = staff.log_in(username, password, address)
        except LockedOut as exc:
            return render("console_login.html", 429, lang="en", error=str(exc).capitalize())
        if not token:
            return render("console_login.html", 401, lang="en", error="Wrong username or password.")
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
        if member is not None and hmac.compare_digest(csrf.encode(), member.csrf.encode()):
            staff.log_out(session or "")
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    return router
