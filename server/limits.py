"""What every request may cost before a handler sees it, and what every response
tells the browser: ASGI middleware of our own, in front of the whole app.

Pure ASGI (not Starlette's ``BaseHTTPMiddleware``, which runs the app in a task
of its own and copies every response through a stream): the ticket poll, the
hottest route, passes through with one scan of its headers and no body
wrapper at all.

Bodies are bounded by route: a pairing or lease request is a few hundred bytes,
a heartbeat a few kilobytes, a batch of 500 tickets about 160 KB. A body larger
than its route allows is refused with 413 from its Content-Length before a byte
of it is read, and a chunked one as soon as it passes the limit; either way the
connection is closed, so the rest of it is never read. A body that trickles in
slower than its deadline is answered 408. A kiosk call without a well-formed
bearer token is answered 401 before its body is read.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from sync import protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KIB = 1024
# A real batch of MAX_BATCH tickets is ~160 KB; with every field at its longest
# ~260 KB. 1 MiB leaves room for fields a newer kiosk may add (v1 grows by
# optional fields) and still bounds what one request can make us hold.
TICKET_BATCH_BYTES = 1024 * KIB
BODY_LIMITS: dict[str, int] = {
    f"{protocol.API}/pair": 4 * KIB,  # a code and a name
    f"{protocol.API}/kiosk/leases": 4 * KIB,  # a service, a day, a count
    # 20 problems and a clock of 500 characters each, 4 bytes a character: ~42 KB
    f"{protocol.API}/kiosk/heartbeat": 64 * KIB,
    f"{protocol.API}/kiosk/tickets": TICKET_BATCH_BYTES,
}
CONSOLE_BODY_BYTES = 64 * KIB  # the management forms: a service's names and texts, hours
DEFAULT_BODY_BYTES = 16 * KIB  # feedback (500 characters), cancel, erase, anything else
BODY_TIMEOUT_S = 30.0
KIOSK_PREFIX = f"{protocol.API}/kiosk/"
BEARER = re.compile(rb"[Bb][Ee][Aa][Rr][Ee][Rr] +[A-Za-z0-9_-]{16,128} *")
KIOSK_AUTH_MESSAGE = "a kiosk call needs Authorization: Bearer <token>"


@dataclass(frozen=True)
class Limits:
    """The process's limits; ``vuoro-server serve`` takes each as an option."""

    head_timeout_s: float = 10.0  # the whole request head, from the first byte wait
    body_timeout_s: float = BODY_TIMEOUT_S  # the whole body, once the head is in
    keep_alive_s: int = 5  # idle between requests (uvicorn's default)
    concurrency: int = 4096  # connections and requests in flight; over it: 503
    backlog: int = 2048  # connections the kernel queues before we accept them
    max_head_bytes: int = 16 * 1024  # request line and headers (h11's default)
    max_streams: int = 2048  # live pages (Server-Sent Events) per worker; over it: 503


def body_limit(path: str) -> int:
    """The largest body a request to ``path`` may carry, in bytes."""
    limit = BODY_LIMITS.get(path)
    if limit is not None:
        return limit
    return CONSOLE_BODY_BYTES if path.startswith("/console/") else DEFAULT_BODY_BYTES


class BodyLimits:
    """Refuse bodies larger than their route allows (413) or slower than
    ``timeout_s`` (408), and kiosk calls without a bearer token (401), before
    the app reads them."""

    def __init__(self, app: ASGIApp, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        length: bytes | None = None
        chunked = False
        authorization: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"authorization":
                authorization = value
        if path.startswith(KIOSK_PREFIX) and (
            authorization is None or not BEARER.fullmatch(authorization)
        ):
            await _answer(send, 401, KIOSK_AUTH_MESSAGE, [(b"www-authenticate", b"Bearer")])
            return
        if (length is None or length == b"0") and not chunked:
            await self.app(scope, receive, send)  # no body: the ticket poll's way
            return
        limit = body_limit(path)
        if length is not None and (not length.isdigit() or int(length) > limit):
            status = 413 if length.isdigit() else 400
            await _answer(send, status, _too_large(limit) if status == 413 else "bad length")
            return
        await _Bounded(self.app, limit, self.timeout_s)(scope, receive, send)


class _Bounded:
    """One request whose body is counted as the app reads it."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app, self.limit = app, limit
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        self.received = 0
        self.complete = False  # the whole body is in: no deadline on what follows
        self.started = False  # the app began its response
        self.refused = False  # we answered for it: the app's own answer is dropped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.refused:
                return {"type": "http.disconnect"}
            if self.complete:  # e.g. a response listening for the client to go
                return await receive()
            try:
                message = await asyncio.wait_for(
                    receive(), max(0.0, self.deadline - time.monotonic())
                )
            except TimeoutError:
                await self.refuse(send, 408, f"the body took longer than {self.timeout_s:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    await self.refuse(send, 413, _too_large(self.limit))
                    return {"type": "http.disconnect"}
                self.complete = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            if self.refused:
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not self.refused:  # the app's own failure: not ours to hide
                raise

    async def refuse(self, send: Send, status: int, detail: str) -> None:
        """Answer for the app (unless it has begun to) and close the connection."""
        if self.refused:
            return
        self.refused = True
        if not self.started:
            await _answer(send, status, detail)


def _too_large(limit: int) -> str:
    return f"the body is larger than this route accepts ({limit} bytes)"


async def _answer(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A JSON ``{"detail": ...}`` answer that closes the connection, so a body
    we refused is never read on."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Every page's scripts and styles are files under /static (no inline script or
# style, no other origin), so the policy can be strict; the pages' JSON data
# block (type="application/json") is not a script and needs no exception.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's /docs and /redoc load their viewers from a CDN with an inline
# bootstrap script; they show only the public API description.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src 'self' https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# A JSON answer is data, never a page: it loads nothing and nothing frames it, so
# no more than this is needed (OWASP's REST advice). Every header costs the pure
# Python HTTP layer a validation per answer, and the ticket poll is the hottest
# route: three headers fewer there is ~6 % more polls a second.
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
HSTS = (b"strict-transport-security", b"max-age=31536000")
NOSNIFF = (b"x-content-type-options", b"nosniff")
_PAGE = (
    (b"x-frame-options", b"DENY"),
    NOSNIFF,
    (b"referrer-policy", b"no-referrer"),  # a ticket page's address holds its token
    (b"cross-origin-opener-policy", b"same-origin"),
)
_HEADERS = {
    (kind, tls): (
        (
            b"content-security-policy",
            {
                "page": CONTENT_SECURITY_POLICY.encode(),
                "docs": DOCS_POLICY.encode(),
                "json": API_POLICY,
            }[kind],
        ),
        *((NOSNIFF,) if kind == "json" else _PAGE),
        *((HSTS,) if tls else ()),
    )
    for kind in ("page", "docs", "json")
    for tls in (False, True)
}


class SecurityHeaders:
    """The browser-side protections on every response: on pages and files a
    strict Content Security Policy, no framing, no MIME sniffing, no referrer;
    on JSON a policy that loads and frames nothing, and no sniffing; HSTS on
    both when the request came over TLS (directly, or through a trusted proxy's
    X-Forwarded-Proto). A header the app set itself is left as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] in DOCS_PATHS
        tls = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                json_answer = any(
                    name.lower() == b"content-type" and value.startswith(b"application/json")
                    for name, value in headers
                )
                extra = _HEADERS["docs" if docs else "json" if json_answer else "page", tls]
                headers += [(name, value) for name, value in extra if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
