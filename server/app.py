"""The central queue server's HTTP API (sync protocol v1), on FastAPI."""

import hashlib
import re
from datetime import datetime
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, Form, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from server.console import console_router
from server.i18n import LANGUAGES, accepted_language, page_words, pick_language, status_text
from server.limits import BODY_TIMEOUT_S, BodyLimits, SecurityHeaders
from server.manage import manage_router
from server.storage import Rejected, Storage, Throttled, Unauthorized, iso, now
from sync import protocol

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
BRANCH_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def create_app(storage: Storage, body_timeout_s: float = BODY_TIMEOUT_S) -> FastAPI:
    app = FastAPI(
        title="Vuoro central queue server",
        version="1",
        summary="Sync protocol v1 for queue-ticket kiosks, and the public ticket API.",
    )

    @app.exception_handler(Rejected)
    def rejected(_request: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Unauthorized)
    def unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    def kiosk(authorization: Annotated[str | None, Header()] = None) -> dict:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a kiosk call needs Authorization: Bearer <token>")
        return storage.kiosk_for_token(token.strip())

    Kiosk = Annotated[dict, Depends(kiosk)]

    def known_branch(branch_id: str) -> None:
        if not BRANCH_ID.fullmatch(branch_id) or not storage.has_branch(branch_id):
            raise HTTPException(404, "no such branch")

    # the hottest route first: Starlette tries routes in order
    @app.get(
        f"{protocol.API}/tickets/{{token}}",
        response_model=protocol.PublicTicket,
        responses={
            404: {
                "description": "no such ticket (yet): `may_arrive` is false once every "
                "kiosk has reported an empty outbox well after `since`"
            }
        },
        openapi_extra={"parameters": TICKET_PARAMETERS},
    )
    async def public_ticket(request: Request) -> JSONResponse:
        """A ticket as its holder sees it (the QR code's page polls this).

        The hottest endpoint: every phone in the queue polls it. ``async`` (its
        reads take microseconds: positions and estimates are cached) so it runs
        on the event loop without a thread hop, and it reads its two parameters
        itself, skipping the per-request validation machinery they would cost.
        """
        token = request.path_params["token"]
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            since = _moment(request.query_params.get("since"))
            return JSONResponse(
                {
                    "detail": "no such ticket (yet)",
                    "may_arrive": since is None or storage.ticket_may_arrive(since),
                },
                status_code=404,
            )
        return JSONResponse(_public(found, request.query_params.get("lang")))

    @app.get("/healthz")
    async def health() -> dict:
        return {"ok": True, "server_time": iso(now())}

    @app.post(
        f"{protocol.API}/pair",
        responses={429: {"description": "too many wrong codes from here or everywhere"}},
    )
    def pair(request: protocol.PairRequest, http: Request) -> protocol.PairResponse:
        address = http.client.host if http.client else "unknown"
        try:
            return storage.pair(request.code, request.name, address)
        except Throttled as exc:
            raise HTTPException(429, str(exc), {"Retry-After": str(exc.seconds)}) from None

    @app.get(f"{protocol.API}/kiosk/config")
    def config(
        kiosk: Kiosk,
        response: Response,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> protocol.KioskConfig:
        body = storage.kiosk_config(kiosk["branch_id"])
        etag = '"' + hashlib.sha256(body.model_dump_json().encode()).hexdigest()[:32] + '"'
        if if_none_match == etag:
            return Response(status_code=304, headers={"ETag": etag})
        response.headers["ETag"] = etag
        return body

    @app.post(f"{protocol.API}/kiosk/leases")
    def lease(kiosk: Kiosk, request: protocol.LeaseRequest) -> protocol.LeaseResponse:
        return storage.lease(kiosk, request)

    @app.post(f"{protocol.API}/kiosk/tickets")
    def tickets(kiosk: Kiosk, batch: protocol.TicketBatch) -> protocol.TicketBatchResult:
        results = storage.ingest(kiosk, batch)
        return protocol.TicketBatchResult(results=results, server_time=iso(now()))

    @app.post(f"{protocol.API}/kiosk/heartbeat")
    def heartbeat(kiosk: Kiosk, beat: protocol.Heartbeat) -> protocol.HeartbeatResponse:
        commands = storage.heartbeat(kiosk, beat)
        return protocol.HeartbeatResponse(
            server_time=iso(now()), queue=storage.queue(kiosk["branch_id"]), commands=commands
        )

    @app.post(f"{protocol.API}/tickets/{{token}}/cancel")
    def cancel_ticket(
        token: str,
        lang: str | None = None,
        content_type: Annotated[str | None, Header()] = None,
    ) -> dict:
        """The holder leaves the queue. JSON only, so no other site's form can do it."""
        if not (content_type or "").startswith("application/json"):
            raise HTTPException(415, "send JSON")
        if not _token_shaped(token) or storage.cancel(token) is None:
            raise HTTPException(404, "no such ticket (yet)")
        return _public(storage.ticket_by_token(token), lang)

    @app.get(f"{protocol.API}/branches/{{branch_id}}/queue")
    def branch_queue(branch_id: str) -> dict[str, protocol.QueueState]:
        """The live queue per service, for displays and dashboards."""
        known_branch(branch_id)
        return storage.queue(branch_id)

    @app.get(f"{protocol.API}/branches/{{branch_id}}/stats")
    def branch_stats(branch_id: str, day: str | None = None) -> dict[str, dict]:
        """A day's figures per service (today by default)."""
        known_branch(branch_id)
        if day is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            raise HTTPException(422, "day must be YYYY-MM-DD")
        return storage.daily_stats(branch_id, day)

    @app.get("/t/{token}", response_class=HTMLResponse)
    def ticket_page(
        token: str,
        lang: str | None = None,
        since: str | None = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> HTMLResponse:
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            # no ticket to take the language from: the switch, else the phone's own
            language = pick_language(lang, accepted_language(accept_language), [])
            words = page_words(language)
            if not _token_shaped(token):
                return _render("message.html", 404, lang=language, title=words["not_found"])
            # a ticket printed before the first look; "not found" once no kiosk can hold it
            first_look = _moment(since) or now()
            gone = not storage.ticket_may_arrive(first_look)
            return _render(
                "message.html",
                200,
                lang=language,
                title=words["not_found" if gone else "on_its_way"],
                text=words["not_found_text" if gone else "on_its_way_text"],
                words=words,
                watch=token,
                since=iso(first_look),
                gone=gone,
                languages=list(LANGUAGES),
                language_names=LANGUAGES,
            )
        language = pick_language(lang, found["language"], found["languages"])
        words = page_words(language)
        public = _public(found, language)
        return _render(
            "ticket.html",
            200,
            lang=language,
            token=token,
            ticket=found,
            words=words,
            service=public["service"],
            status_text=status_text(found["status"], found["counter"], words),
            wait_text=_wait_text(found["estimated_wait_s"], words),
            languages=[code for code in found["languages"] if code in LANGUAGES],
            language_names=LANGUAGES,
        )

    @app.post("/t/{token}/feedback", response_class=HTMLResponse)
    def feedback(
        token: str,
        rating: Annotated[int, Form(ge=1, le=5)],
        comment: Annotated[str, Form(max_length=500)] = "",
        lang: str | None = None,
    ) -> Response:
        """One rating (and an optional comment) for a served ticket, once."""
        if not _token_shaped(token):
            raise HTTPException(404, "no such ticket")
        storage.give_feedback(token, rating, comment.strip())
        suffix = f"?lang={lang}" if lang in LANGUAGES else ""
        return RedirectResponse(f"/t/{token}{suffix}", status_code=303)

    @app.post("/t/{token}/erase", response_class=HTMLResponse)
    def erase(token: str, lang: str | None = None) -> Response:
        """The customer removes what they wrote to us."""
        if not _token_shaped(token):
            raise HTTPException(404, "no such ticket")
        storage.erase_personal_data(token)
        suffix = f"?lang={lang}" if lang in LANGUAGES else ""
        return RedirectResponse(f"/t/{token}{suffix}", status_code=303)

    app.include_router(console_router(storage, _render))
    app.include_router(manage_router(storage, _render))
    app.mount(
        "/static", StaticFiles(directory=str(resources.files("server") / "static")), name="static"
    )
    # bodies bounded by route before any handler reads them; headers on every answer
    app.add_middleware(BodyLimits, timeout_s=body_timeout_s)
    app.add_middleware(SecurityHeaders)
    return app


TICKET_PARAMETERS = [
    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
    {
        "name": "lang",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "a language code; the ticket's own by default",
    },
    {
        "name": "since",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "format": "date-time"},
        "description": "when the holder first looked for a ticket not found yet",
    },
]


def _moment(text: str | None) -> datetime | None:
    """An ISO time with its offset (the pending page's first look), else None."""
    if not text or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _token_shaped(token: str) -> bool:
    """The kiosk makes tokens of 128 random bits, URL-safe: 22 characters."""
    return TOKEN_SHAPE.fullmatch(token) is not None


_templates = Environment(
    loader=PackageLoader("server", "templates"), autoescape=select_autoescape(["html"])
)


def _render(template: str, status: int, **context) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _public(ticket: dict, language: str | None) -> dict:
    names = ticket["service"]  # of the queue it waits in now (staff may have moved it)
    return {
        "number": ticket["number"],
        "service": names.get(language or "")
        or names.get(ticket["language"])
        or next(iter(names.values()), ""),
        "status": ticket["status"],
        "position": ticket["position"],
        "estimated_wait_s": ticket["estimated_wait_s"],
        "counter": ticket["counter"],
    }


def _wait_text(seconds: int | None, words: dict[str, str]) -> str:
    if seconds is None:
        return ""
    minutes = round(seconds / 60)
    return words["now"] if minutes < 1 else words["minutes"].replace("{minutes}", str(minutes))
