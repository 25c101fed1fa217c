"""Server-Sent Events: a page's stream of its current state, sent again
whenever an event of the live channel (``server.events``) may have changed it.

Plain Starlette ``StreamingResponse`` rather than sse-starlette: a stream here
is one JSON ``data:`` line per change and a comment line as keep-alive, which
is a few lines of code; sse-starlette's extras (its own ping task, send
timeouts, a shutdown watcher of its own) duplicate what the hub and
uvicorn's protocol already do, and would be one more dependency to follow.

A client that does not ask for ``text/event-stream`` (EventSource always
does) is answered the current state once, as JSON, rather than a stream it
would wait on for ever.

Reconnecting (``Last-Event-ID``) needs nothing special: every stream begins
with the current state, so a page that missed events is right again at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import Request
from starlette.responses import Response

from server import events
from server.limits import Limits

__all__ = ["HEADERS", "KEEPALIVE_S", "Limits", "StreamingResponse", "Streams", "frame", "stream"]

#: a comment line this often, so proxies and phones keep an idle stream open
KEEPALIVE_S = 15.0
#: what EventSource waits before reconnecting after a stream ended
RETRY_MS = 2000
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class Streams:
    """The live streams of this worker, bounded: past ``limit`` a page is
    answered 503 and polls instead (its script falls back to polling)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def refuse(self) -> Response:
        return JSONResponse(
            {"detail": "too many live pages on this server now: poll instead"},
            status_code=503,
            headers={"Retry-After": "30"},
        )


def frame(data: str, event_id: int | None = None) -> bytes:
    """One SSE message (our JSON has no newline in it)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {data}\n\n".encode()


async def stream(
    request: Request,
    hub: events.Hub,
    streams: Streams,
    branch_id: str,
    render: Callable[[], Awaitable[str | None]],
    concerns: Callable[[list[events.Event]], bool],
    keepalive_s: float = KEEPALIVE_S,
    idle: Callable[[], Awaitable[object]] | None = None,
) -> Response:
    """A stream of ``render()`` (a page's JSON; None ends the stream): first
    now, then after each batch of the branch's events that ``concerns`` it,
    when it changed; a keep-alive comment when nothing happened for a while
    (and ``idle()``, e.g. noting that a device is still there)."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        once = await render()
        if once is None:
            return JSONResponse({"detail": "gone"}, status_code=404)
        return Response(once, media_type="application/json", headers=HEADERS)
    if streams.full:
        return streams.refuse()

    async def body() -> AsyncIterator[bytes]:
        streams.open += 1
        try:
            await hub.start()
            with hub.subscribe(branch_id) as subscription:
                last = await render()  # after subscribing: no change falls in between
                if last is None:
                    return
                yield f"retry: {RETRY_MS}\n".encode() + frame(last, hub.last_id)
                while True:
                    try:
                        batch = await subscription.next(keepalive_s)
                    except events.Ended:
                        return
                    if not batch:
                        if idle is not None:
                            await idle()
                        yield b": keep-alive\n\n"
                        continue
                    if not concerns(batch):
                        continue
                    current = await render()
                    if current is None:
                        return
                    if current != last:
                        last = current
                        yield frame(current, hub.last_id)
        finally:
            streams.open -= 1

    return StreamingResponse(body(), media_type="text/event-stream", headers=HEADERS)
