"""The central queue server's HTTP API (sync protocol v1), on FastAPI."""

import contextlib
import hashlib
import json
import re
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import (
    Cookie,
    Depends,
    FastAPI,
    Form,
    Header,
    HTTPException,
    Request,
    Response,
    Security,
)
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel

from catalogue import translator
from server import events, live
from server.callback import callback_router
from server.console import COOKIE as STAFF_COOKIE
from server.console import console_router, from_another_site
from server.display import default_speech_cache, display_router
from server.i18n import (
    LANGUAGES,
    TEMPLATE_GLOBALS,
    accepted_language,
    page_words,
    pick_language,
    status_text,
    wait_text,
)
from server.join import join_router
from server.limits import BODY_TIMEOUT_S, BodyLimits, Limits, SecurityHeaders
from server.manage import manage_router
from server.notify import Sender
from server.phones import PhoneRefused
from server.problems import ERRORS, TicketNotFound, documented, install_handlers
from server.reports import reports_router
from server.speech import Speech
from server.staff import Staff
from server.storage import Rejected, Storage, Throttled, Unauthorized, iso, now
from server.storage.notify import EMAIL_MAX, NotifyRefused
from sync import protocol

KIOSK_AUTH = HTTPBearer(
    scheme_name="kiosk",
    description="the kiosk's device token, from `POST /api/v1/pair`",
    auto_error=False,
)
DISPLAY_AUTH = HTTPBearer(
    scheme_name="display",
    description="a display's device token, from pairing it (`/display`); or the staff "
    "session cookie",
    auto_error=False,
)
#: The ticket page alerts its holder that the turn nears (once per ticket) at
#: this many people ahead or fewer, or this little estimated wait (seconds),
#: whichever comes first. Three ahead, at a few minutes each, leaves time to
#: come back from the corridor or the café; five minutes covers a fast queue
#: where more are ahead. One value for every ticket now: a branch's or a
#: service's own would be a setting in its branch file.
ALERT_NEAR_AHEAD = 3
ALERT_NEAR_WAIT_S = 300
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")
BRANCH_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
#: what a form field may carry before it is refused with words
FIELD_MAX = 2000


def create_app(
    storage: Storage,
    body_timeout_s: float = BODY_TIMEOUT_S,
    max_streams: int = Limits.max_streams,
    keepalive_s: float = live.KEEPALIVE_S,
    speech_cache: Path | None = None,
) -> FastAPI:
    """The server's app on ``storage``; the displays' synthesised speech is
    cached in ``speech_cache`` (a temporary directory of this user's by default)."""
    hub = events.Hub(storage)
    streams = live.Streams(max_streams)
    speech = Speech(speech_cache or default_speech_cache())
    sender = Sender(storage, ALERT_NEAR_AHEAD, ALERT_NEAR_WAIT_S)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await hub.start()  # every worker hears every event: its caches follow them
        await sender.start()  # "your turn nears" by e-mail and text message
        yield
        await sender.stop()
        await hub.stop()

    app = FastAPI(
        title="Vuoro central queue server",
        version="1",
        summary="Sync protocol v1 for queue-ticket kiosks, and the public ticket API.",
        lifespan=lifespan,
    )
    app.state.hub, app.state.streams = hub, streams

    install_handlers(app)
    staff = Staff(storage)

    def kiosk(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(KIOSK_AUTH)],
    ) -> dict:
        if credentials is None or not credentials.credentials.strip():
            raise Unauthorized("a kiosk call needs Authorization: Bearer <token>")
        return storage.kiosk_for_token(credentials.credentials.strip())

    Kiosk = Annotated[dict, Depends(kiosk)]

    def known_branch(branch_id: str) -> None:
        if not BRANCH_ID.fullmatch(branch_id) or not storage.has_branch(branch_id):
            raise HTTPException(404, "no such branch")

    # the hottest route first: Starlette tries routes in order
    @app.get(
        f"{protocol.API}/tickets/{{token}}",
        response_model=protocol.PublicTicket,
        responses=documented(
            extra={
                404: {
                    "model": TicketNotFound,
                    "description": "no such ticket (yet): `may_arrive` is false once every "
                    "kiosk has reported an empty outbox well after `since`",
                }
            },
        ),
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

    @app.get(
        f"{protocol.API}/tickets/{{token}}/events",
        response_class=live.StreamingResponse,
        responses=documented(
            404,
            extra={
                200: {
                    "description": "Server-Sent Events: the ticket's JSON (as `GET "
                    "/api/v1/tickets/{token}`) now and after each change to it or to its "
                    "place; a comment line every 15 s while nothing changes. Without "
                    "`Accept: text/event-stream`, the ticket's JSON once",
                    "content": {
                        "text/event-stream": {"schema": {"type": "string"}},
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/PublicTicket"}
                        },
                    },
                },
                503: ERRORS[503]
                | {"description": "busy, or too many live pages on this server: poll instead"},
            },
        ),
        openapi_extra={"parameters": TICKET_PARAMETERS[:2]},
    )
    async def ticket_events(request: Request) -> Response:
        """The ticket's page follows it live (EventSource); it polls when this fails."""
        token = request.path_params["token"]
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            return JSONResponse({"detail": "no such ticket (yet)"}, status_code=404)
        language = request.query_params.get("lang")
        ticket = {"id": found["id"], "queue": found["queue_id"]}

        async def render() -> str | None:
            current = storage.ticket_by_token(token)
            if current is None:
                return None
            ticket["queue"] = current["queue_id"]  # staff may move it to another queue
            return json.dumps(_public(current, language), separators=(",", ":"))

        def concerns(batch: list[events.Event]) -> bool:
            return any(
                event.queue_id in (None, ticket["queue"])
                or event.ticket_id == ticket["id"]
                or ticket["id"] in event.data.get("tickets", ())
                for event in batch
            )

        return await live.stream(
            request, hub, streams, found["branch_id"], render, concerns, keepalive_s
        )

    @app.get("/healthz", responses=documented())
    async def health() -> Health:
        """The process answers (for load balancers and monitoring), with its open
        live streams (each worker counts its own)."""
        return {"ok": True, "server_time": iso(now()), "live_streams": streams.open}

    @app.post(f"{protocol.API}/pair", responses=documented(401, 422, 429))
    def pair(request: protocol.PairRequest, http: Request) -> protocol.PairResponse:
        address = http.client.host if http.client else "unknown"
        try:
            return storage.pair(request.code, request.name, address)
        except Throttled as exc:
            raise HTTPException(429, str(exc), {"Retry-After": str(exc.seconds)}) from None

    @app.get(
        f"{protocol.API}/kiosk/config",
        responses=documented(
            401,
            422,
            extra={
                200: {"headers": ETAG},
                304: {"description": "unchanged since `If-None-Match`", "headers": ETAG},
            },
        ),
    )
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

    @app.post(f"{protocol.API}/kiosk/leases", responses=documented(401, 422))
    def lease(kiosk: Kiosk, request: protocol.LeaseRequest) -> protocol.LeaseResponse:
        return storage.lease(kiosk, request)

    @app.post(f"{protocol.API}/kiosk/tickets", responses=documented(401, 422))
    def tickets(kiosk: Kiosk, batch: protocol.TicketBatch) -> protocol.TicketBatchResult:
        results = storage.ingest(kiosk, batch)
        return protocol.TicketBatchResult(results=results, server_time=iso(now()))

    @app.post(f"{protocol.API}/kiosk/heartbeat", responses=documented(401, 422))
    def heartbeat(kiosk: Kiosk, beat: protocol.Heartbeat) -> protocol.HeartbeatResponse:
        commands = storage.heartbeat(kiosk, beat)
        return protocol.HeartbeatResponse(
            server_time=iso(now()), queue=storage.queue(kiosk["branch_id"]), commands=commands
        )

    @app.post(
        f"{protocol.API}/tickets/{{token}}/cancel",
        response_model=protocol.PublicTicket,
        responses=documented(404, 415, 422),
    )
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

    def branch_reader(
        branch_id: str,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(DISPLAY_AUTH)],
        session: Annotated[str | None, Cookie(alias=STAFF_COOKIE)] = None,
    ) -> None:
        """Branch data is for the branch's displays (their token) and its staff
        (a session), not for anyone who guesses a branch id."""
        if credentials is not None and credentials.credentials.strip():
            try:
                display = storage.display_for_token(credentials.credentials.strip()[:100])
            except Unauthorized:
                display = None
            if display is not None and display["branch_id"] == branch_id:
                return
        elif session:
            member = staff.session(session[:100])
            if member is not None and member.branch_id == branch_id:
                return
        raise Unauthorized("branch data needs a display's token of this branch, or a staff session")

    BranchReader = Annotated[None, Depends(branch_reader)]

    @app.get(f"{protocol.API}/branches/{{branch_id}}/queue", responses=documented(401, 404, 422))
    def branch_queue(branch_id: str, _reader: BranchReader) -> dict[str, protocol.QueueState]:
        """The live queue per service, for displays and dashboards."""
        known_branch(branch_id)
        return storage.queue(branch_id)

    @app.get(f"{protocol.API}/branches/{{branch_id}}/stats", responses=documented(401, 404, 422))
    def branch_stats(
        branch_id: str, _reader: BranchReader, day: str | None = None
    ) -> dict[str, dict]:
        """A day's figures per service (today by default)."""
        known_branch(branch_id)
        if day is not None and not _calendar_day(day):
            raise HTTPException(422, "day must be a date, YYYY-MM-DD")
        return storage.daily_stats(branch_id, day)

    @app.get("/t/{token}", response_class=HTMLResponse, include_in_schema=False)
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
        return ticket_view(token, found, lang)

    def ticket_view(
        token: str, found: dict, lang: str | None, status: int = 200, notify: dict | None = None
    ) -> HTMLResponse:
        """The ticket's page; ``notify``: a refused opt-in (error, channel, typed)."""
        language = pick_language(lang, found["language"], found["languages"])
        words = page_words(language, (found["languages"] or [language])[0])
        public = _public(found, language)
        return _render(
            "ticket.html",
            status,
            notify_channels=sender.channels if found["status"] in ("waiting", "parked") else [],
            notify_contact=storage.notify_contact(token),
            notify=notify or {},
            email_max=EMAIL_MAX,
            lang=language,
            token=token,
            ticket=found,
            words=words,
            service=public["service"],
            location=public["location"] or "",
            status_text=status_text(found["status"], found["counter"], words),
            wait_text=wait_text(found["estimated_wait_s"], words),
            languages=[code for code in found["languages"] if code in LANGUAGES],
            language_names=LANGUAGES,
            near_ahead=ALERT_NEAR_AHEAD,
            near_wait_s=ALERT_NEAR_WAIT_S,
        )

    @app.post("/t/{token}/feedback", response_class=HTMLResponse, include_in_schema=False)
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

    @app.post("/t/{token}/notify", response_class=HTMLResponse, include_in_schema=False)
    def notify_opt_in(
        token: str,
        request: Request,
        channel: Annotated[str, Form()] = "",
        address: Annotated[str, Form()] = "",
        consent: Annotated[str, Form()] = "",
        lang: str | None = None,
    ) -> Response:
        """The holder asks to be told by e-mail or text message when the turn
        nears. A refusal shows the page again with the reason (400); nothing
        of it is stored."""
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            raise HTTPException(404, "no such ticket")
        language = pick_language(lang, found["language"], found["languages"])
        tr = translator(language, (found["languages"] or [language])[0]).gettext
        typed = {
            "channel": channel[:8],
            "address": address[:FIELD_MAX],
            "consent": consent == "yes",
        }

        def refused(code: int, said: str) -> HTMLResponse:
            return ticket_view(token, found, lang, code, typed | {"error": said})

        if from_another_site(request):
            return refused(403, tr("This form came from another site. Open the branch's own page."))
        if any(len(v) > FIELD_MAX for v in (channel, address, consent)):
            return refused(400, tr("A field of the form is too long."))
        if channel not in sender.channels:
            return refused(400, tr("Choose e-mail or text message."))
        if consent != "yes":
            return refused(400, tr("Tick the box to agree, or keep this page open instead."))
        try:
            storage.notify_opt_in(token, channel, address)
        except (PhoneRefused, NotifyRefused) as exc:
            return refused(400, tr(str(exc)))
        except Rejected:
            raise HTTPException(404, "no such ticket") from None
        suffix = f"?lang={lang}" if lang in LANGUAGES else ""
        return RedirectResponse(f"/t/{token}{suffix}", status_code=303)

    @app.post("/t/{token}/notify/remove", response_class=HTMLResponse, include_in_schema=False)
    def notify_remove(token: str, lang: str | None = None) -> Response:
        """The holder takes the address back (messages not sent yet go with it)."""
        if not _token_shaped(token):
            raise HTTPException(404, "no such ticket")
        storage.notify_remove(token)
        suffix = f"?lang={lang}" if lang in LANGUAGES else ""
        return RedirectResponse(f"/t/{token}{suffix}", status_code=303)

    @app.post("/t/{token}/erase", response_class=HTMLResponse, include_in_schema=False)
    def erase(token: str, lang: str | None = None) -> Response:
        """The customer removes what they wrote to us."""
        if not _token_shaped(token):
            raise HTTPException(404, "no such ticket")
        storage.erase_personal_data(token)
        suffix = f"?lang={lang}" if lang in LANGUAGES else ""
        return RedirectResponse(f"/t/{token}{suffix}", status_code=303)

    # staff pages and forms: HTML for people, not part of the API
    app.include_router(
        console_router(storage, _render, hub=hub, streams=streams, keepalive_s=keepalive_s),
        include_in_schema=False,
    )
    app.include_router(manage_router(storage, _render), include_in_schema=False)
    app.include_router(join_router(storage, _render), include_in_schema=False)
    app.include_router(callback_router(storage, _render), include_in_schema=False)
    app.include_router(reports_router(storage, _render), include_in_schema=False)
    app.include_router(
        display_router(storage, _render, hub, streams, speech, keepalive_s),
        include_in_schema=False,
    )
    app.mount(
        "/static", StaticFiles(directory=str(resources.files("server") / "static")), name="static"
    )
    # bodies bounded by route before any handler reads them; headers on every answer
    app.add_middleware(BodyLimits, timeout_s=body_timeout_s)
    app.add_middleware(SecurityHeaders)
    return app


class Health(BaseModel):
    ok: bool
    server_time: str
    live_streams: int = 0


ETAG = {
    "ETag": {
        "description": "the config's version, for `If-None-Match`",
        "required": True,
        "schema": {"type": "string"},
    }
}

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


def _calendar_day(text: str) -> bool:
    """YYYY-MM-DD and a day the calendar has (not 2026-13-01 or 2026-02-30)."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _token_shaped(token: str) -> bool:
    """The kiosk makes tokens of 128 random bits, URL-safe: 22 characters."""
    return TOKEN_SHAPE.fullmatch(token) is not None


_templates = Environment(
    loader=PackageLoader("server", "templates"), autoescape=select_autoescape(["html"])
)
_templates.globals.update(TEMPLATE_GLOBALS)


def _render(template: str, status: int, **context) -> HTMLResponse:
    html = _templates.get_template(template).render(**context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


#: A ticket called to a counter, or being served there: it has a call time.
CALLED = ("called", "serving")


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
        # a recall moves it: the ticket page alerts its holder again
        "called_at": ticket["called_at"] if ticket["status"] in CALLED else None,
        "location": _in_language(ticket.get("locations") or {}, language, ticket["language"]),
    }


def _in_language(texts: dict[str, str], language: str | None, fallback: str) -> str | None:
    """A text in the asked language, else the ticket's, else any; None when there is none."""
    return texts.get(language or "") or texts.get(fallback) or next(iter(texts.values()), None)
