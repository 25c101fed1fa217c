"""Joining the queue from a phone: the third door, beside the kiosk's paper
and the counter's hand-out.

A poster at the entrance (``/join/{branch}/poster``, printed from the
management page) carries a QR code of the branch's joining page
(``/join/{branch}``): its services with the people waiting and the estimated
wait (the queue snapshot the kiosks and displays get), and those that do not
take a number now, with when they open. A tap issues a ticket from the day's
counter (``server.storage.issuing``) and opens its live page (``/t/{token}``).

Limits a customer would accept, without a CAPTCHA: the branch's switch (off
unless a manager turns it on), the kiosk's own rule of opening hours and
daily caps, one waiting ticket per phone and service (a random device cookie,
stored hashed: a second tap opens the ticket already held), joins per
client address in a leaky bucket (429 with Retry-After), and no form from
another site's page.
"""

from __future__ import annotations

import html
import re
import secrets
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import qrcode
import qrcode.image.svg
from babel.dates import format_skeleton
from fastapi import APIRouter, Header, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from catalogue import translator
from server.console import from_another_site
from server.i18n import LANGUAGES, accepted_language, page_words, pick_language, wait_text
from server.storage import JoinRefused, Rejected, Storage, Throttled, now
from server.storage.issuing import availability, device_hash

COOKIE = "vuoro_device"
COOKIE_AGE_S = 365 * 86400
DEVICE_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
BRANCH_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SERVICE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: a join's form has one field; a few more are tolerated and ignored
MAX_FIELDS = 8
TICKET_PATH = "/t/{token}"


def new_device() -> str:
    """A device's random id (192 bits), kept in its cookie."""
    return secrets.token_urlsafe(24)


def device_of(request: Request) -> str | None:
    """The device id the phone's cookie holds, if it is one we could have made."""
    value = request.cookies.get(COOKIE, "")
    return value if DEVICE_SHAPE.fullmatch(value) else None


def join_url(branch: dict, request: Request) -> str:
    """The joining page's public address: beside the ticket pages the branch's
    paper points to (its ``ticket_url_template``), else where this request came."""
    template = branch["ticket_url_template"]
    if template.endswith(TICKET_PATH):
        base = template[: -len(TICKET_PATH)]
    else:
        base = str(request.base_url).rstrip("/")
    return f"{base}/join/{branch['id']}"


def qr_svg(text: str, label: str) -> str:
    """``text`` as a QR code, SVG markup to put in a page, named ``label`` for
    screen readers (no style attribute: the pages' CSP allows none). Sized by
    the page's CSS."""
    code = qrcode.QRCode(
        border=4,
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        image_factory=qrcode.image.svg.SvgPathImage,
    )
    code.add_data(text)
    code.make(fit=True)
    svg = code.make_image().to_string(encoding="unicode")
    named = f'<svg class="qr" role="img" aria-label="{html.escape(label, quote=True)}"'
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', lambda _: named, svg, count=1)


def opening_text(opens_at: datetime | None, local: datetime, tr, language: str) -> str:
    """When a closed service opens, in words ("Opens at 13:00", "Opens Mon 7 Dec at 08:00")."""
    if opens_at is None:
        return ""
    clock = opens_at.strftime("%H:%M")
    if opens_at.date() == local.date():
        return tr("Opens at {time}").format(time=clock)
    day = format_skeleton("MMMMEd", opens_at.date(), locale=language)
    return tr("Opens {day} at {time}").format(day=day, time=clock)


def join_router(storage: Storage, render) -> APIRouter:
    router = APIRouter(prefix="/join")

    def language_for(request: Request, offered: list[str]) -> str:
        """The page's language: ``?lang=``, else the phone's, else the branch's first."""
        wanted = request.query_params.get("lang")
        phone = accepted_language(request.headers.get("accept-language"))
        return pick_language(wanted if wanted in LANGUAGES else None, phone, offered)

    def branch_of(branch_id: str) -> tuple[dict, list[dict]] | None:
        """The branch and its listed services; None for any id that names no branch."""
        if not BRANCH_ID.fullmatch(branch_id):
            return None
        try:
            return storage.branch_settings(branch_id)
        except Rejected:
            return None

    def not_found(request: Request) -> Response:
        """One page for every address that names no branch, well formed or not:
        it says nothing of which branches exist."""
        language = language_for(request, [])
        tr = translator(language).gettext
        return render(
            "message.html",
            404,
            lang=language,
            title=tr("Page not found"),
            text=tr(
                "There is nothing at this address. Check the address, or scan the "
                "code on the poster again."
            ),
        )

    def listing(branch: dict, services: list[dict], language: str) -> list[dict]:
        """Each service as the page shows it: open with its queue, or not, and why."""
        queue = storage.queue(branch["id"])
        local = now().astimezone(_zone(branch))
        tr = translator(language, branch["languages"][0]).gettext
        words = page_words(language, branch["languages"][0])
        shown = []
        for service in services:
            state = queue.get(service["id"])
            if state is None:
                continue
            available, opens_at = availability(service, local, state.issued or 0)
            entry = {
                "id": service["id"],
                "name": _named(service["names"], language, branch["languages"]),
                "open": available.is_open,
                "waiting": state.waiting,
                "wait": wait_text(state.estimated_wait_s, words),
            }
            if not available.is_open:
                entry["why"] = (
                    tr("Today's numbers are all taken")
                    if available.status == "full"
                    else tr("Closed now")
                )
                entry["opens"] = opening_text(opens_at, local, tr, language)
            shown.append(entry)
        return shown

    def page(
        request: Request,
        branch: dict,
        services: list[dict],
        status: int = 200,
        error: str = "",
        retry_after: int = 0,
        device: str | None = None,
    ) -> Response:
        language = language_for(request, branch["languages"])
        on = storage.remote_join_on(branch["id"])
        calls_back = storage.callback_settings(branch["id"])["enabled"]
        held = storage.device_tickets(branch["id"], device_hash(device)) if device else {}
        response = render(
            "join.html",
            status,
            lang=language,
            default_lang=branch["languages"][0],
            branch=branch,
            on=on,
            services=listing(branch, services, language) if on else [],
            held=held,
            calls_back=calls_back,
            error=error,
            words=page_words(language, branch["languages"][0]),
            languages=[code for code in branch["languages"] if code in LANGUAGES],
            language_names=LANGUAGES,
        )
        if retry_after:
            response.headers["Retry-After"] = str(retry_after)
        if device is None or device != device_of(request):  # a phone new to us
            _set_device(request, response, device or new_device())
        return response

    @router.get("/{branch_id}")
    def join_page(branch_id: str, request: Request) -> Response:
        """The services of the branch a phone can join, with their queues now."""
        found = branch_of(branch_id)
        if found is None:
            return not_found(request)
        return page(request, *found, device=device_of(request))

    @router.post("/{branch_id}")
    async def join(
        branch_id: str,
        request: Request,
        content_type: Annotated[str | None, Header()] = None,
    ) -> Response:
        """Take a number: 303 to the ticket's live page (the one the phone
        already holds for this service, if any), else the page with the reason."""
        found = await run_in_threadpool(branch_of, branch_id)
        if found is None:
            return not_found(request)
        branch, services = found
        language = language_for(request, branch["languages"])
        tr = translator(language, branch["languages"][0]).gettext
        device = device_of(request)

        def refuse(status: int, error: str, retry_after: int = 0) -> Response:
            return page(request, branch, services, status, error, retry_after, device)

        if from_another_site(request):
            return await run_in_threadpool(refuse, 403, tr("This form came from another site."))
        chosen = await _one_service(request, content_type)
        if chosen is None:
            return await run_in_threadpool(refuse, 400, tr("Choose one service."))
        device = device or new_device()
        address = request.client.host if request.client else "unknown"
        try:
            ticket, _new = await run_in_threadpool(
                storage.join, branch["id"], chosen, device_hash(device), address, language
            )
        except JoinRefused as refused:
            status, error = _refusal(refused, chosen, branch, services, language, tr)
            return await run_in_threadpool(refuse, status, error)
        except Throttled as exc:
            error = tr(
                "Too many numbers were taken from this network just now. "
                "Try again in {seconds} s, or take a number at the kiosk."
            ).format(seconds=exc.seconds)
            return await run_in_threadpool(refuse, 429, error, exc.seconds)
        response = RedirectResponse(
            TICKET_PATH.format(token=ticket["public_token"]), status_code=303
        )
        _set_device(request, response, device)
        return response

    @router.get("/{branch_id}/poster")
    def poster(branch_id: str, request: Request) -> Response:
        """A4 to print and put up at the entrance: the joining page's QR code,
        its address, and what to do, in each of the branch's languages."""
        found = branch_of(branch_id)
        if found is None:
            return not_found(request)
        branch, _ = found
        url = join_url(branch, request)
        languages = [code for code in branch["languages"] if code in LANGUAGES] or ["en"]
        tr = translator(languages[0]).gettext
        label = tr("QR code of {address}").format(address=url)
        texts = []
        for code in languages:
            tr = translator(code, languages[0]).gettext
            texts.append(
                {
                    "lang": code,
                    "title": tr("Join the queue with your phone"),
                    "steps": tr(
                        "Scan the code with your phone's camera, choose a service, and wait "
                        "where you like: your phone shows your place and calls you."
                    ),
                    "address": tr("Or open this address:"),
                }
            )
        return render(
            "join_poster.html",
            200,
            lang=languages[0],
            branch=branch,
            url=url,
            qr=qr_svg(url, label),
            texts=texts,
        )

    return router


async def _one_service(request: Request, content_type: str | None) -> str | None:
    """The one service a join's form names; None for anything else (no field,
    two, a file, a shape no service id has, a form that cannot be read)."""
    if not (content_type or "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        return None
    try:
        form = await request.form(max_fields=MAX_FIELDS, max_files=0)
    except Exception:  # multipart's own errors: no form anyone's browser sent
        return None
    chosen = form.getlist("service")
    if len(chosen) != 1 or not isinstance(chosen[0], str):
        return None
    return chosen[0] if SERVICE_ID.fullmatch(chosen[0]) else None


def _refusal(
    refused: JoinRefused,
    service_id: str,
    branch: dict,
    services: list[dict],
    language: str,
    tr,
) -> tuple[int, str]:
    """The status and the words for a join the branch does not take now."""
    if refused.reason == "off":
        return 403, tr("Joining from a phone is not in use at this branch.")
    service = next((s for s in services if s["id"] == service_id), None)
    if refused.reason == "unknown" or service is None:
        return 404, tr("That service is not available here.")
    name = _named(service["names"], language, branch["languages"])
    if refused.reason == "full":
        said = tr("Today's numbers for {service} are all taken.").format(service=name)
    else:
        said = tr("{service} does not take numbers now.").format(service=name)
    local = now().astimezone(_zone(branch))
    opens = opening_text(refused.opens_at, local, tr, language)
    return 409, f"{said} {opens}." if opens else said


def _named(names: dict[str, str], language: str, offered: list[str]) -> str:
    for code in (language, *offered):
        if names.get(code):
            return names[code]
    return next(iter(names.values()), "")


def _zone(branch: dict) -> ZoneInfo:
    return ZoneInfo(branch["timezone"])


def _set_device(request: Request, response: Response, device: str) -> None:
    response.set_cookie(
        COOKIE,
        device,
        max_age=COOKIE_AGE_S,
        httponly=True,
        samesite="lax",
        path="/join",
        secure=request.url.scheme == "https",
    )
