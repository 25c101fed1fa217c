"""Being told when the turn nears, by e-mail or text message: the channels a
deployment configured, the providers that send, and the sender loop.

Configuration is the server's environment (as ``VUORO_DB``):

- e-mail: ``VUORO_SMTP_HOST`` (required), ``VUORO_SMTP_PORT`` (587),
  ``VUORO_SMTP_FROM`` (required), ``VUORO_SMTP_STARTTLS`` (``1``; ``0`` for a
  local relay), ``VUORO_SMTP_USER`` and ``VUORO_SMTP_PASSWORD`` (optional);
- text messages: ``VUORO_SMS_URL`` (required) and ``VUORO_SMS_TOKEN``.

A channel not configured is not offered. Each server process runs one
:class:`Sender`: it queues a ticket's "near" message when the ticket page's
own rule says the turn nears, and its "turn" message when the ticket is
called, then sends what is due (server.storage.notify claims each row for
one sender, so workers never send one message at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from catalogue import translator
from server.storage import Storage
from server.storage.notify import BACKOFF_FIRST_S, CLAIM_S

log = logging.getLogger("vuoro.notify")
#: seconds between the sender's rounds (override: VUORO_NOTIFY_POLL_S)
POLL_S = 1.0
#: seconds a provider may take before the try counts as failed (and is retried);
#: override: VUORO_NOTIFY_TIMEOUT_S
SEND_TIMEOUT_S = 10.0


def timeout_s(env) -> float:
    """The providers' time limit from the environment, within 0.1 s to a minute."""
    try:
        return min(max(float(env.get("VUORO_NOTIFY_TIMEOUT_S", SEND_TIMEOUT_S)), 0.1), 60.0)
    except ValueError:
        return SEND_TIMEOUT_S


class NotSent(Exception):
    """A provider did not take the message; ``retry``: a later try may succeed."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


@dataclass(frozen=True)
class Message:
    key: str  # the idempotency key: ticket and kind
    channel: str
    address: str
    subject: str
    body: str


class Smtp:
    """E-mail through an SMTP server (stdlib smtplib)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.host = env["VUORO_SMTP_HOST"]
        self.port = int(env.get("VUORO_SMTP_PORT", "587"))
        self.sender = env["VUORO_SMTP_FROM"]
        self.starttls = env.get("VUORO_SMTP_STARTTLS", "1") != "0"
        self.user = env.get("VUORO_SMTP_USER", "")
        self.password = env.get("VUORO_SMTP_PASSWORD", "")
        self.timeout_s = timeout_s(env)

    def send(self, message: Message) -> None:
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = self.sender, message.address, message.subject
        mail["Message-ID"] = make_msgid(idstring=message.key.replace(":", "."))
        mail["X-Idempotency-Key"] = message.key
        mail.set_content(message.body)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise NotSent(f"recipient refused: {exc}", retry=False) from None
        except smtplib.SMTPResponseException as exc:
            raise NotSent(f"SMTP {exc.smtp_code}", retry=exc.smtp_code < 500) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise NotSent(f"SMTP: {exc}", retry=True) from None


class SmsGateway:
    """Text messages through an HTTP gateway: POST JSON ``{"to", "text",
    "key"}`` with ``Authorization: Bearer <token>`` and ``Idempotency-Key``;
    2xx is sent, 4xx not retried, 5xx and timeouts retried."""

    def __init__(self, env: dict[str, str]) -> None:
        self.url = env["VUORO_SMS_URL"]
        self.token = env.get("VUORO_SMS_TOKEN", "")
        self.timeout_s = timeout_s(env)

    def send(self, message: Message) -> None:
        body = json.dumps({"to": message.address, "text": message.body, "key": message.key})
        request = urllib.request.Request(
            self.url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {self.token}",
                "Idempotency-Key": message.key,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                answer.read(1000)
        except urllib.error.HTTPError as exc:
            raise NotSent(f"gateway {exc.code}", retry=exc.code >= 500 or exc.code == 429) from None
        except (OSError, ValueError) as exc:
            raise NotSent(f"gateway: {exc}", retry=True) from None


def providers(env: dict[str, str] | None = None) -> dict[str, Smtp | SmsGateway]:
    """The configured channels' providers, by channel."""
    env = dict(os.environ if env is None else env)
    found: dict[str, Smtp | SmsGateway] = {}
    if env.get("VUORO_SMTP_HOST") and env.get("VUORO_SMTP_FROM"):
        found["email"] = Smtp(env)
    if env.get("VUORO_SMS_URL", "").startswith(("http://", "https://")):
        found["sms"] = SmsGateway(env)
    return found


def near(ticket: dict, near_ahead: int, near_wait_s: int) -> bool:
    """The ticket page's rule (server/static/alerts.js): few ahead or little wait."""
    if ticket["status"] != "waiting" or ticket["position"] is None:
        return False
    wait = ticket["estimated_wait_s"]
    return ticket["position"] - 1 <= near_ahead or (wait is not None and wait <= near_wait_s)


def wording(kind: str, ticket: dict, language: str) -> tuple[str, str]:
    """The message's subject and text in the ticket's language."""
    tr = translator(language).gettext
    number = ticket["number"]
    if kind == "turn":
        return tr("It's your turn!"), tr(
            "Ticket {number}: it is your turn. Please go to counter {counter}."
        ).format(number=number, counter=ticket["counter"] or "")
    wait = ticket["estimated_wait_s"]
    if wait is not None and wait > 60:
        text = tr("Ticket {number}: your turn is coming soon, in about {minutes} min.")
        return tr("Your turn is coming soon"), text.format(
            number=number, minutes=math.ceil(wait / 60)
        )
    text = tr("Ticket {number}: your turn is coming soon. Please come back to the waiting room.")
    return tr("Your turn is coming soon"), text.format(number=number)


class Sender:
    """One per server process: queues what is due and sends it."""

    def __init__(
        self,
        storage: Storage,
        near_ahead: int,
        near_wait_s: int,
        env: dict[str, str] | None = None,
    ) -> None:
        self.storage = storage
        self.near_ahead, self.near_wait_s = near_ahead, near_wait_s
        self.providers = providers(env)
        source = os.environ if env is None else env
        self.poll_s = float(source.get("VUORO_NOTIFY_POLL_S", POLL_S))
        self.backoff_s = float(source.get("VUORO_NOTIFY_BACKOFF_S", BACKOFF_FIRST_S))
        # a claim outlives a send's time limit twice over: no other worker
        # takes a row its sender is still sending
        self.claim_s = max(
            float(source.get("VUORO_NOTIFY_CLAIM_S", CLAIM_S)), 2 * timeout_s(source)
        )
        self._task: asyncio.Task | None = None

    @property
    def channels(self) -> list[str]:
        return list(self.providers)

    async def start(self) -> None:
        if self.providers:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.round)
            except Exception:  # a database hiccup: the next round tries again
                log.exception("notification round failed")
            await asyncio.sleep(self.poll_s)

    def round(self) -> int:
        """Queue what became due, drop what is moot, send what is claimed: how many were sent."""
        self.storage.notify_prune()
        for contact in self.storage.notify_watched():
            ticket = self.storage.ticket_by_token(contact["token"])
            if ticket is None:
                continue
            kind = None
            if ticket["status"] in ("called", "serving"):
                kind = "turn"
            elif near(ticket, self.near_ahead, self.near_wait_s):
                kind = "near"
            if kind is not None:
                subject, body = wording(kind, ticket, contact["language"])
                self.storage.notify_queue(contact["ticket_id"], kind, subject, body)
        sent = 0
        for row in self.storage.notify_claim(claim_s=self.claim_s):
            provider = self.providers.get(row["channel"])
            message = Message(
                row["key"], row["channel"], row["address"], row["subject"], row["body"]
            )
            try:
                if provider is None:
                    raise NotSent(f"{row['channel']} is not configured", retry=False)
                provider.send(message)
            except NotSent as exc:
                state = self.storage.notify_failed(row["id"], str(exc), exc.retry, self.backoff_s)
                log.warning("message %s not sent (%s): %s", row["key"], state, exc)
                continue
            self.storage.notify_sent(row["id"])
            sent += 1
        return sent
