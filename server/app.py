"""The central queue server's HTTP API (sync protocol v1), on FastAPI."""

import hashlib
import re
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from server.storage import Rejected, Storage, Unauthorized, iso, now
from sync import protocol

TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,64}")


def create_app(storage: Storage) -> FastAPI:
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

    @app.get("/healthz")
    def health() -> dict:
        return {"ok": True, "server_time": iso(now())}

    @app.post(f"{protocol.API}/pair")
    def pair(request: protocol.PairRequest) -> protocol.PairResponse:
        return storage.pair(request.code, request.name)

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

    @app.get(f"{protocol.API}/tickets/{{token}}")
    def public_ticket(token: str) -> dict:
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            raise HTTPException(404, "no such ticket (yet)")
        return found

    @app.get("/t/{token}", response_class=HTMLResponse)
    def ticket_page(token: str) -> HTMLResponse:
        found = storage.ticket_by_token(token) if _token_shaped(token) else None
        if found is None:
            return HTMLResponse(_PENDING, status_code=404 if not _token_shaped(token) else 200)
        return HTMLResponse(_page(found))

    return app


def _token_shaped(token: str) -> bool:
    """The kiosk makes tokens of 128 random bits, URL-safe: 22 characters."""
    return TOKEN_SHAPE.fullmatch(token) is not None


_PENDING = """<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="10"><title>Your ticket is on its way</title>
<body style="font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em">
<h1>Your ticket is on its way</h1>
<p>The kiosk has not sent it to us yet. This page refreshes by itself.</p></body></html>"""


def _page(ticket: dict) -> str:
    from html import escape

    name = escape(next(iter(ticket["service"].values()), ""))
    position = ticket["position"]
    detail = f"<p>Position in queue: {position}</p>" if position else ""
    return f"""<!doctype html><html lang="en"><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="15"><title>Ticket {escape(ticket["number"])}</title>
<body style="font-family:sans-serif;max-width:32em;margin:2em auto;padding:0 1em">
<h1 style="font-size:4em;margin:0">{escape(ticket["number"])}</h1><p>{name}</p>
<p>Status: {escape(ticket["status"])}</p>{detail}</body></html>"""
