"""The API's error bodies, the handlers that make them, and how the OpenAPI
document declares them: one shape per status, so a display, an integration or
another kiosk built from ``/openapi.json`` gets what the document says.

Every error is ``{"detail": ...}`` (the shape the kiosk's sync client reads):
a sentence for 401/404/409/413/415/429/503, and for 422 either a sentence (a
request the server refused as sent) or a list of what in the request is
malformed, without ever echoing the input back (a 2 MB body must not come
back as a 2 MB refusal).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from server.storage import Rejected, Unauthorized

log = logging.getLogger("vuoro.server")

MAX_ISSUES = 20  # per 422: enough to fix a request, never a wall of them
MAX_MESSAGE = 200  # characters of one issue's message
MAX_LOCATION = 10  # steps of one issue's location (a path into the body)
MAX_STEP = 64  # characters of one step: dictionary keys come from the client
BUSY_RETRY_AFTER_S = 2  # another writer holds the lock, or PostgreSQL restarts: a moment
BUSY_ERRORS = {"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_TIMEOUT"}


class Problem(BaseModel):
    """Why the request did not succeed, in one sentence."""

    detail: str


class TicketNotFound(Problem):
    """No such ticket (yet); ``may_arrive`` says whether a kiosk may still bring it."""

    may_arrive: bool


class Issue(BaseModel):
    """One malformed part of a request: where (``loc``), what (``msg``, ``type``)."""

    loc: list[str | int] = Field(max_length=MAX_LOCATION)
    msg: str = Field(max_length=MAX_MESSAGE)
    type: str


class Unprocessable(BaseModel):
    """A sentence (the request is well formed but refused as sent, e.g. a lease
    for another day), or the list of malformed parts (the first twenty)."""

    detail: str | list[Issue]


def issues(errors: Sequence[dict]) -> list[dict]:
    """Validation errors as bounded :class:`Issue` dicts: no ``input``, no ``ctx``."""
    return [
        {
            "loc": [
                step if isinstance(step, int) else str(step)[:MAX_STEP]
                for step in error.get("loc", ())[:MAX_LOCATION]
            ],
            "msg": str(error.get("msg", ""))[:MAX_MESSAGE],
            "type": str(error.get("type", ""))[:MAX_STEP],
        }
        for error in errors[:MAX_ISSUES]
    ]


def install_handlers(app: FastAPI) -> None:
    """The exception handlers that give every error its documented body."""

    @app.exception_handler(RequestValidationError)
    async def malformed(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": issues(exc.errors())}, status_code=422)

    @app.exception_handler(Rejected)
    async def rejected(_request: Request, exc: Rejected) -> JSONResponse:
        return JSONResponse({"detail": str(exc)[:MAX_MESSAGE]}, status_code=422)

    @app.exception_handler(Unauthorized)
    async def unauthorized(_request: Request, exc: Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(sa.exc.OperationalError)
    async def storage_trouble(request: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        """Another writer held SQLite past the busy timeout, or PostgreSQL is
        unreachable, restarting or broke a deadlock: a moment's trouble the
        kiosk retries with back-off, not a fault (503, not 500)."""
        if isinstance(exc.orig, sqlite3.OperationalError) and (
            getattr(exc.orig, "sqlite_errorname", "") not in BUSY_ERRORS
        ):
            raise exc
        log.warning(
            "%s %s: storage busy (%s), answered 503", request.method, request.url.path, exc.orig
        )
        return JSONResponse(
            {"detail": "the server is busy; try again shortly"},
            status_code=503,
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        )


def retry_after(required: bool) -> dict:
    return {
        "Retry-After": {
            "description": "seconds to wait before trying again",
            "required": required,
            "schema": {"type": "integer", "minimum": 0},
        }
    }


ERRORS: dict[int, dict] = {
    400: {
        "model": Problem,
        "description": "the body cannot be read (not UTF-8 JSON, or a bad Content-Length)",
    },
    401: {
        "model": Problem,
        "description": "an unknown or revoked kiosk token (pair again), or "
        "an unknown, used or expired pairing code",
        "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    },
    404: {"model": Problem, "description": "no such thing"},
    408: {"model": Problem, "description": "the body came too slowly"},
    409: {"model": Problem, "description": "conflicts with the current state"},
    413: {"model": Problem, "description": "the body is larger than this operation takes"},
    415: {"model": Problem, "description": "the body is not JSON"},
    422: {
        "model": Unprocessable,
        "description": "malformed (a list of what is wrong) or refused as sent (a sentence)",
    },
    429: {
        "model": Problem,
        "description": "too many attempts: wait, as Retry-After says when present",
        "headers": retry_after(required=False),
    },
    503: {
        "model": Problem,
        "description": "busy for a moment: retry with back-off. JSON with Retry-After when "
        "the database was locked; plain text when the process has as many requests as it "
        "takes at once",
        "headers": retry_after(required=False),
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}


#: what any operation may answer before or around its handler: a body that cannot
#: be read, comes too slowly or is too large for the route; a busy server
ANY_OPERATION = (400, 408, 413, 503)


def documented(*statuses: int, extra: dict[int, dict] | None = None) -> dict[int | str, dict]:
    """The ``responses=`` of a route: the errors any operation and this one can
    give, and more (``extra``)."""
    return {status: ERRORS[status] for status in sorted({*ANY_OPERATION, *statuses})} | (
        extra or {}
    )
