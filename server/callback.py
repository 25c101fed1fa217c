"""The public "call me back" page: a customer leaves a phone number and a
short reason instead of waiting in the branch; staff call back from the
counter screen (server.console).

``GET /callback/{branch}`` shows the form, ``POST`` takes the request and
answers with a confirmation (the number as we will dial it, and how soon the
branch usually calls). In the language of ``?lang=``, else the browser's,
else the branch's first. A form sent from another site's page is refused
(403), like the display's pairing form; requests are counted per address
(server.storage.callbacks.ADDRESS): over it, 429 with Retry-After. A refusal
re-shows the form with what was typed and the reason in words (400); nothing
of it is stored. A branch that is unknown, malformed or without call-backs is
the same 404 as any unknown branch.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response

from catalogue import translator
from server import branch_file, phones
from server.console import from_another_site
from server.i18n import LANGUAGES, accepted_language, pick_language
from server.storage import Rejected, Storage, Throttled
from server.storage.callbacks import CallbackRefused
from server.storage.calling import REASON_MAX

#: what a form field may carry before it is refused with words (the body
#: itself is bounded by server.limits)
FIELD_MAX = 2000


def callback_router(storage: Storage, render) -> APIRouter:
    router = APIRouter()

    def branch_for(branch_id: str) -> tuple[dict, list[dict], dict]:
        """The branch, its listed services and call-back settings; the same 404
        as any unknown branch when it is unknown, malformed or has none."""
        if not branch_file.ID.match(branch_id) or not storage.has_branch(branch_id):
            raise HTTPException(404, "no such branch")
        settings = storage.callback_settings(branch_id)
        if not settings["enabled"]:
            raise HTTPException(404, "no such branch")
        branch, services = storage.branch_settings(branch_id)
        return branch, services, settings

    def language(request: Request, branch: dict) -> str:
        wanted = request.query_params.get("lang")
        browser = accepted_language(request.headers.get("accept-language"))
        return pick_language(wanted if wanted in LANGUAGES else None, browser, branch["languages"])

    def page(
        status: int,
        branch: dict,
        services: list[dict],
        settings: dict,
        lang: str,
        error: str = "",
        field: str = "",
        typed: dict | None = None,
        wait_s: int = 0,
    ) -> Response:
        names = [
            {
                "id": s["id"],
                "name": s["names"].get(lang)
                or s["names"].get(branch["languages"][0])
                or next(iter(s["names"].values()), s["id"]),
            }
            for s in services
        ]
        response = render(
            "callback.html",
            status,
            lang=lang,
            default_lang=branch["languages"][0],
            branch=branch,
            services=names,
            retention_days=settings["retention_days"],
            reason_max=REASON_MAX,
            example=phones.example(settings["country"]),
            error=error,
            field=field,
            typed=typed or {},
            languages=[code for code in branch["languages"] if code in LANGUAGES],
            language_names=LANGUAGES,
        )
        if wait_s:
            response.headers["Retry-After"] = str(wait_s)
        return response

    @router.get("/callback/{branch_id}")
    def callback_form(branch_id: str, request: Request) -> Response:
        branch, services, settings = branch_for(branch_id)
        return page(200, branch, services, settings, language(request, branch))

    @router.post("/callback/{branch_id}")
    def callback_request(
        branch_id: str,
        request: Request,
        phone: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
        service: Annotated[str, Form()] = "",
        consent: Annotated[str, Form()] = "",
    ) -> Response:
        branch, services, settings = branch_for(branch_id)
        lang = language(request, branch)
        tr = translator(lang, branch["languages"][0]).gettext
        typed = {
            "phone": phone[:FIELD_MAX],
            "reason": reason[:FIELD_MAX],
            "service": service[:64],
            "consent": consent == "yes",
        }

        def refused(status: int, said: str, field: str = "", wait_s: int = 0) -> Response:
            return page(status, branch, services, settings, lang, said, field, typed, wait_s)

        if from_another_site(request):
            return refused(403, tr("This form came from another site. Open the branch's own page."))
        if any(len(v) > FIELD_MAX for v in (phone, reason, service, consent)):
            return refused(400, tr("A field of the form is too long."))
        if consent != "yes":
            return refused(
                400, tr("Tick the box to agree, or take a number at the branch instead."), "consent"
            )
        address = request.client.host if request.client else "unknown"
        try:
            made = storage.request_callback(
                branch_id, phone, reason, service or None, lang, "web", address
            )
        except Throttled as exc:
            minutes = max(1, math.ceil(exc.seconds / 60))
            said = tr("Too many requests from here. Try again in {minutes} min.")
            return refused(429, said.format(minutes=minutes), "", exc.seconds)
        except phones.PhoneRefused as exc:
            return refused(400, tr(str(exc)), "phone")
        except CallbackRefused as exc:
            field = {"reason_missing": "reason", "reason_long": "reason", "service": "service"}
            return refused(400, tr(str(exc)).format(**exc.values), field.get(exc.key, ""))
        except Rejected:
            return refused(400, tr("Choose a service from the list."), "service")
        typical = storage.callback_typical_wait_s(branch_id)
        return render(
            "callback_done.html",
            200,
            lang=lang,
            default_lang=branch["languages"][0],
            branch=branch,
            phone=phones.shown(made["phone"]),
            minutes=None if typical is None else max(1, math.ceil(typical / 60)),
            retention_days=settings["retention_days"],
        )

    return router
