"""The waiting-room display: a page for a TV that shows and speaks every call.

A display is a paired device (``server.storage.displays``): its token lives in
a cookie of the browser on the TV (``/display`` only), or goes as a bearer
token for other clients. The page follows its branch over the live channel
(``server.live``): every message is the display's whole state, its calls
newest first, each with its event id, so a page that reconnects shows the
current state and speaks only the calls it has not spoken yet (and never one
older than :data:`SPEAK_WITHIN_S`, which it shows only).

The sound of a call is a WAV the server synthesises (``server.speech``):
a chime, then the call in each of the display's languages in turn.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from catalogue import N_, translator
from server import events, live
from server.console import from_another_site
from server.i18n import accepted_language, display_words
from server.speech import Speech, SpeechError, phrase
from server.storage import Rejected, Storage, Throttled, Unauthorized, iso, now
from server.storage.displays import MAX_NAME as MAX_DISPLAY_NAME

COOKIE = "vuoro_display"
COOKIE_AGE_S = 10 * 365 * 86400  # a TV is paired once; revoking is the way out
#: a call older than this when a page first sees it is shown, not spoken
SPEAK_WITHIN_S = 60
#: calls a display keeps on screen: the current one and the history
SHOWN_CALLS = 12
#: whole announcements kept in memory per worker (~0.5 MB each)
RECENT_SOUNDS = 32


def default_speech_cache() -> Path:
    """Where synthesised phrases are kept: ``$VUORO_SPEECH_CACHE``, else the
    unit's cache directory (systemd's ``CacheDirectory=``), else a directory of
    this user's under the temporary one (a demo, a test)."""
    chosen = os.environ.get("VUORO_SPEECH_CACHE")
    if chosen:
        return Path(chosen)
    systemd = os.environ.get("CACHE_DIRECTORY")
    if systemd:
        return Path(systemd.split(":")[0]) / "speech"
    return Path(tempfile.gettempdir()) / f"vuoro-speech-{os.getuid()}"


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


class DisplayView:
    """What a display shows, made from the branch's state once per event
    (every display of a branch shares it), then filtered per display."""

    def __init__(self, storage: Storage, hub: events.Hub, speech: Speech) -> None:
        self.storage, self.hub, self.speech = storage, hub, speech
        self._branch: dict[str, tuple[int, dict]] = {}

    def branch(self, branch_id: str) -> dict:
        seen = self.hub.last_id
        cached = self._branch.get(branch_id)
        if cached is not None and cached[0] == seen and seen:
            return cached[1]
        branch, services = self.storage.branch_settings(branch_id)
        made = {
            "name": branch["name"],
            "timezone": branch["timezone"],
            "message": self.storage.display_message(branch_id),
            "services": services,
            "counters": branch["counters"],  # where each counter is, per language
            "queue": self.storage.queue(branch_id),
            "calls": self.storage.recent_calls(branch_id),
        }
        self._branch[branch_id] = (seen, made)
        return made

    def state(self, display: dict) -> dict:
        branch = self.branch(display["branch_id"])
        languages = display["languages"]
        wanted = set(display["services"])
        counters = set(display["counters"])
        services = [
            {
                "id": s["id"],
                "names": {code: s["names"].get(code) or _first(s["names"]) for code in languages},
                "waiting": branch["queue"][s["id"]].waiting,
                "estimated_wait_s": branch["queue"][s["id"]].estimated_wait_s,
            }
            for s in branch["services"]
            if s["id"] in branch["queue"] and (not wanted or s["id"] in wanted)
        ]
        calls = [
            call
            for call in branch["calls"]
            if (not wanted or call["service"] in wanted)
            and (not counters or call["counter"] in counters)
        ][:SHOWN_CALLS]
        voices = ",".join(languages)
        spoken = [code for code in languages if self.speech.available(code)]
        return {
            "display": {"id": display["id"], "name": display["name"]},
            "branch": branch["name"],
            "timezone": branch["timezone"],
            "message": branch["message"],
            "languages": languages,
            "volume": display["volume"],
            "words": _words(tuple(languages)),
            "server_time_ms": _ms(iso(now())),
            "speak_within_s": SPEAK_WITHIN_S,
            "services": services,
            "calls": [_call(call, branch, languages, spoken, voices) for call in calls],
        }


def _call(call: dict, branch: dict, languages: list[str], spoken: list[str], voices: str) -> dict:
    location = call_location(branch, call, languages)
    return {
        "id": call["id"],
        "ticket": call["ticket"],
        "number": call["number"],
        "counter": call["counter"],
        "recall": call["recall"],
        "location": location,
        "at_ms": _ms(call["at"]),
        "sound": f"/display/sound/{call['id']}.wav?l={voices}",
        "say": _texts(call, spoken, location),
    }


def call_location(branch: dict, call: dict, languages: list[str]) -> dict[str, str]:
    """Where the called customer goes ("Room 204"), per language: the counter's
    place, else the service's; empty when neither has one."""
    service = next((s for s in branch["services"] if s["id"] == call.get("service")), {})
    return _located(branch["counters"].get(call["counter"]) or service.get("locations"), languages)


#: What the pairing form says when a code does not pair (``{seconds}``: the wait).
PAIRING_ERRORS = {
    "elsewhere": N_("This pairing came from another site."),
    "shape": N_("A pairing code is 8 letters and digits."),
    "throttled": N_("Too many wrong codes. Try again in {seconds} s."),
    "unknown": N_("That code is unknown, used or expired."),
    "name": N_("A display's name is at most {most} printable characters on one line."),
}


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range a media element asks for (``bytes=a-b``, ``bytes=a-``
    or ``bytes=-n``), clipped to the body; None for the whole body (no header,
    several ranges, or one this body cannot give). Browsers seek and Safari
    plays audio only where ranges are served."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec or size == 0:
        return None
    start, _, end = spec.strip().partition("-")
    if not (start.isdigit() or end.isdigit()) or len(start) > 18 or len(end) > 18:
        return None
    if not start:  # the last n bytes
        return max(0, size - int(end)), size - 1
    first = int(start)
    last = min(int(end), size - 1) if end.isdigit() else size - 1
    return (first, last) if first <= last else None


def _located(texts: dict[str, str] | None, languages: list[str]) -> dict[str, str]:
    """Where to go in each of the display's languages (any given one where one is
    missing); empty when the counter and the service have no place set."""
    if not texts:
        return {}
    return {code: texts.get(code) or _first(texts) for code in languages}


def _first(names: dict[str, str]) -> str:
    return next(iter(names.values()), "")


def _texts(call: dict, languages: list[str], location: dict[str, str]) -> dict[str, str]:
    try:
        return {
            code: _phrase(call["number"], call["counter"], code, location.get(code, ""))
            for code in languages
        }
    except (SpeechError, ValueError):  # a number no voice can say: shown, not spoken
        return {}


@functools.lru_cache(maxsize=4096)
def _phrase(number: str, counter: str, language: str, place: str) -> str:
    """What is said for a call: every display renders the same few calls again
    at every event of the branch."""
    return phrase(number, counter, language, place)


@functools.lru_cache(maxsize=64)
def _words(languages: tuple[str, ...]) -> dict[str, dict[str, str]]:
    return display_words(list(languages))


def shown_on_displays(batch: list[events.Event]) -> bool:
    """Whether a batch of events changes what a display shows: everything but
    call-back requests (staff's list, never on a waiting-room screen), so a
    branch's displays are not all sent their state again for each of them."""
    return any(event.kind != events.CALLBACK for event in batch)


def display_router(
    storage: Storage,
    render,
    hub: events.Hub,
    streams: live.Streams,
    speech: Speech,
    keepalive_s: float = live.KEEPALIVE_S,
) -> APIRouter:
    router = APIRouter(prefix="/display")
    view = DisplayView(storage, hub, speech)
    # the last announcements made, whole: every display of the branch (and the
    # browser's range requests for one) asks for the same call within seconds
    recent_sounds: dict[tuple, object] = {}

    def display_for(request: Request, cookie: str | None) -> dict | None:
        """The display asking (its cookie, or a bearer token), else None."""
        token = cookie or ""
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
        if not token or len(token) > 100:
            return None
        try:
            return storage.display_for_token(token)
        except Unauthorized:
            return None

    def pairing_page(request: Request, status: int, error: str = "", wait_s: int = 0) -> Response:
        """The pairing form, in the browser's language (a display has none of
        its own before it is paired); ``error`` is translated here too."""
        lang = accepted_language(request.headers.get("accept-language")) or "en"
        tr = translator(lang).gettext
        error = tr(error).format(seconds=wait_s, most=MAX_DISPLAY_NAME) if error else ""
        response = render("display_pair.html", status, lang=lang, error=error)
        if wait_s:
            response.headers["Retry-After"] = str(wait_s)
        response.delete_cookie(COOKIE, path="/display")
        return response

    def pair(request: Request, code: str, name: str) -> Response:
        if from_another_site(request):
            return pairing_page(request, 403, PAIRING_ERRORS["elsewhere"])
        code = "".join(code.split()).upper()
        if not code or len(code) > 20 or not code.isascii() or not code.isalnum():
            return pairing_page(request, 400, PAIRING_ERRORS["shape"])
        address = request.client.host if request.client else "unknown"
        try:
            _display, token = storage.pair_display(code, name, address)
        except Throttled as exc:
            return pairing_page(request, 429, PAIRING_ERRORS["throttled"], exc.seconds)
        except Unauthorized:
            return pairing_page(request, 401, PAIRING_ERRORS["unknown"])
        except Rejected:  # the only thing left to refuse is the name
            return pairing_page(request, 400, PAIRING_ERRORS["name"])
        response = RedirectResponse("/display", status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=COOKIE_AGE_S,
            httponly=True,
            samesite="strict",
            path="/display",
            secure=request.url.scheme == "https",
        )
        return response

    @router.get("")
    def page(
        request: Request, token: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        """The display itself; a pairing form on a browser that is no display
        (``?pair=CODE`` pairs at once: the display appliance's first start)."""
        code = request.query_params.get("pair")
        if code is not None:
            return pair(request, code[:40], request.query_params.get("name", "")[:200])
        display = display_for(request, token)
        if display is None:
            return pairing_page(request, 401 if token else 200)
        return render("display.html", 200, lang=display["languages"][0], display=display)

    @router.post("/pair")
    def pair_form(
        request: Request,
        code: Annotated[str, Form(max_length=40)],
        name: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        return pair(request, code, name)

    def refused() -> Response:
        return Response(
            '{"detail": "not a paired display"}',
            401,
            media_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def state_json(request: Request, token: str | None) -> str | None:
        display = display_for(request, token)
        if display is None:
            return None
        return json.dumps(view.state(display), separators=(",", ":"))

    @router.get("/state")
    def state(
        request: Request, token: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        """The same as the stream's messages, for a page that polls instead."""
        body = state_json(request, token)
        if body is None:
            return refused()
        return Response(body, media_type="application/json", headers=live.HEADERS)

    @router.get("/events")
    async def display_events(
        request: Request, token: Annotated[str | None, Cookie(alias=COOKIE)] = None
    ) -> Response:
        """The display follows its branch live (EventSource); it polls when this fails.
        A revoked display's stream ends at the revocation's event."""
        display = await asyncio.to_thread(display_for, request, token)
        if display is None:
            return refused()
        # the display's own settings are read again only when an event says they
        # changed (or it was revoked), not for every call of the branch
        current = {"display": display, "stale": False}

        def concerns(batch: list[events.Event]) -> bool:
            if any(event.kind == events.DISPLAY for event in batch):
                current["stale"] = True
            return shown_on_displays(batch)

        def render_now() -> str | None:
            if current["stale"]:
                current["display"], current["stale"] = display_for(request, token), False
            if current["display"] is None:
                return None  # revoked: the stream ends, the page asks to be paired
            return json.dumps(view.state(current["display"]), separators=(",", ":"))

        async def render_state() -> str | None:
            return await asyncio.to_thread(render_now)

        async def still_there() -> None:
            found = await asyncio.to_thread(display_for, request, token)  # last seen
            if found is None:
                current["stale"] = True

        return await live.stream(
            request,
            hub,
            streams,
            display["branch_id"],
            render_state,
            concerns,
            keepalive_s,
            idle=still_there,
        )

    @router.get("/sound/{event_id}.wav")
    async def sound(
        event_id: int,
        request: Request,
        token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
    ) -> Response:
        """A call's announcement: a chime, then the call in each of the display's
        languages (synthesised once per phrase, then from the cache)."""
        display = await asyncio.to_thread(display_for, request, token)
        if display is None:
            return refused()
        if not 0 < event_id < 2**62:
            return Response(status_code=404)
        call = await asyncio.to_thread(storage.call_event, display["branch_id"], event_id)
        if call is None:
            return Response(status_code=404)

        def announce():
            voices = [code for code in display["languages"] if speech.available(code)]
            places = call_location(view.branch(display["branch_id"]), call, voices)
            key = (call["number"], call["counter"], tuple(voices), tuple(places.items()))
            said = recent_sounds.get(key)
            if said is None:
                said = speech.announcement(call["number"], call["counter"], voices, places)
                recent_sounds[key] = said
                while len(recent_sounds) > RECENT_SOUNDS:  # the oldest goes first
                    recent_sounds.pop(next(iter(recent_sounds)))
            return said

        try:
            said = await run_in_threadpool(announce)
        except (SpeechError, ValueError) as exc:
            return Response(
                json.dumps({"detail": f"no voice for this call: {exc}"}),
                503,
                media_type="application/json",
                headers={"Retry-After": "60"},
            )
        headers = {
            "Cache-Control": "private, max-age=86400",
            "Accept-Ranges": "bytes",
            "X-Vuoro-Said": json.dumps(said.texts, ensure_ascii=True),
        }
        part = byte_range(request.headers.get("range", ""), len(said.wav))
        if part is None:
            return Response(said.wav, media_type="audio/wav", headers=headers)
        first, last = part
        headers["Content-Range"] = f"bytes {first}-{last}/{len(said.wav)}"
        return Response(said.wav[first : last + 1], 206, media_type="audio/wav", headers=headers)

    return router
