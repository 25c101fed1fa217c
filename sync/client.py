"""The kiosk's side of sync protocol v1 over HTTPS, with its own errors.

One pooled ``requests.Session``; every request has a connect and a read
timeout; certificate verification is on (a custom CA bundle may be given).
Low-level failures are mapped to :class:`SyncError` subclasses, so the daemon
decides on "retry later" or "park this" without knowing about sockets.
"""

from __future__ import annotations

import requests
from pydantic import ValidationError

from sync import protocol

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0


class SyncError(Exception):
    """Anything that kept one exchange with the server from completing."""


class Unreachable(SyncError):
    """No answer: DNS, refused, reset, timed out. Retry with back-off."""


class ServerTrouble(SyncError):
    """5xx, 429 or a reply that is not what the protocol says. Retry with back-off."""


class NotAuthorized(SyncError):
    """401: the token is unknown or revoked. Pair again; keep printing meanwhile."""


class Refused(SyncError):
    """Another 4xx: this request will never succeed as sent."""


class ServerClient:
    def __init__(
        self,
        base_url: str,
        token: str = "",
        ca_bundle: str | None = None,
        timeouts: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeouts = timeouts
        self.session = requests.Session()
        # per request, not on the session: REQUESTS_CA_BUNDLE in the environment
        # would silently override a session-level setting
        self.verify: str | bool = ca_bundle or True
        self.session.headers["User-Agent"] = "vuoro-sync/1"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def _call(
        self,
        method: str,
        path: str,
        body: protocol.Message | None = None,
        headers: dict | None = None,
    ) -> requests.Response:
        try:
            response = self.session.request(
                method,
                self.base_url + protocol.API + path,
                data=None if body is None else body.model_dump_json(),
                headers={"Content-Type": "application/json", **(headers or {})},
                timeout=self.timeouts,
                verify=self.verify,
            )
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"TLS: {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in (429,) or response.status_code >= 500:
            raise ServerTrouble(f"HTTP {response.status_code}")
        if response.status_code == 401:
            raise NotAuthorized(_detail(response))
        if 400 <= response.status_code < 500:
            raise Refused(f"HTTP {response.status_code}: {_detail(response)}")
        return response

    @staticmethod
    def _parse(response: requests.Response, model: type[protocol.Message]):
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServerTrouble(
                f"reply is not a {model.__name__}: {exc.error_count()} errors"
            ) from exc

    # -- the protocol ----------------------------------------------------------

    def pair(self, code: str, name: str) -> protocol.PairResponse:
        response = self._call("POST", "/pair", protocol.PairRequest(code=code, name=name))
        return self._parse(response, protocol.PairResponse)

    def config(self, etag: str = "") -> tuple[protocol.KioskConfig | None, str]:
        """``(None, etag)`` when nothing changed since ``etag``."""
        response = self._call(
            "GET", "/kiosk/config", headers={"If-None-Match": etag} if etag else None
        )
        if response.status_code == 304:
            return None, etag
        return self._parse(response, protocol.KioskConfig), response.headers.get("ETag", "")

    def lease(self, request: protocol.LeaseRequest) -> protocol.LeaseResponse:
        return self._parse(self._call("POST", "/kiosk/leases", request), protocol.LeaseResponse)

    def push(self, batch: protocol.TicketBatch) -> protocol.TicketBatchResult:
        result = self._parse(
            self._call("POST", "/kiosk/tickets", batch), protocol.TicketBatchResult
        )
        if {r.id for r in result.results} != {t.id for t in batch.tickets}:
            raise ServerTrouble("the reply does not answer for every ticket sent")
        return result

    def heartbeat(self, beat: protocol.Heartbeat) -> protocol.HeartbeatResponse:
        return self._parse(self._call("POST", "/kiosk/heartbeat", beat), protocol.HeartbeatResponse)


def _detail(response: requests.Response) -> str:
    """The server's reason: a sentence, or where and what for a malformed request
    (a 422's list of ``{loc, msg, type}``), short enough for a parked ticket."""
    try:
        detail = response.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = response.text[:200]
    if isinstance(detail, list):
        detail = "; ".join(
            f"{'.'.join(str(step) for step in issue.get('loc', []))}: {issue.get('msg', '')}"
            for issue in detail
            if isinstance(issue, dict)
        )
    return str(detail)[:300]
