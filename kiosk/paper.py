"""From a committed ticket to what the paper (and the screen) shows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.config import KioskConfig
from kiosk.i18n import ntr, tr
from printer.layout import TicketContent
from sync.protocol import PrintTicket
from sync.tickets import Service, Ticket

_DATE_FORMATS = {
    "en": "%Y-%m-%d %H:%M",
    "fi": "%d.%m.%Y klo %H.%M",
    "sv": "%Y-%m-%d kl. %H.%M",
    "et": "%d.%m.%Y kell %H:%M",
}


def ticket_url(config: KioskConfig, ticket: Ticket) -> str:
    """The online ticket the QR code opens; the token is the ticket's own."""
    return config.ticket["url_template"].replace("{token}", ticket.public_token)


def issued_local(config: KioskConfig, ticket: Ticket) -> str:
    """The date and time on the paper; none when the kiosk could not tell them
    (a wrong date on a ticket is worse than none)."""
    if ticket.time_source == "unsure":
        return ""
    return local_time(config, ticket.issued_at, ticket.language)


def local_time(config: KioskConfig, moment: str, language: str) -> str:
    """An ISO time as the branch's clock shows it, written the language's way."""
    local = datetime.fromisoformat(moment).astimezone(ZoneInfo(config.branch["timezone"]))
    return local.strftime(_DATE_FORMATS.get(language, _DATE_FORMATS["en"]))


def in_language(texts: dict[str, str] | str, language: str, default: str) -> str:
    """A configured text in the ticket's language, else the kiosk's default, else
    English, else any: a footer missing one language is never left blank."""
    if isinstance(texts, str):
        return texts
    for choice in (language, default, "en"):
        if (texts.get(choice) or "").strip():
            return texts[choice]
    return next((text for text in texts.values() if text.strip()), "")


def ticket_content(config: KioskConfig, ticket: Ticket, service: Service) -> TicketContent:
    language = ticket.language
    return TicketContent(
        branch=config.branch["name"],
        number=ticket.display,
        service=service.name(language),
        issued=issued_local(config, ticket),
        url=ticket_url(config, ticket),
        service_text=service.text(language),
        header=in_language(config.ticket["header"], language, config.language),
        footer=in_language(config.ticket["footer"], language, config.language),
        scan_hint=tr("Scan to follow your turn on your phone", language),
        queue_line=queue_line(service, language),
        location=service.location(language),
    )


def queue_line(service: Service, language: str) -> str:
    """Who is ahead and the estimated wait, when the queue is known; else nothing."""
    return queue_words(service.waiting, service.estimated_wait_s, language)


def queue_words(waiting: int | None, estimated_wait_s: int | None, language: str) -> str:
    parts = []
    if waiting is not None:
        parts.append(
            ntr(
                "{count} waiting before you",
                "{count} waiting before you",
                waiting,
                language,
            )
        )
    if estimated_wait_s is not None:
        minutes = max(1, round(estimated_wait_s / 60))
        parts.append(tr("about {minutes} min", language, minutes=minutes))
    return " · ".join(parts)


def counter_ticket_content(
    config: KioskConfig, job: PrintTicket, service: Service | None
) -> TicketContent:
    """A ticket staff gave at a counter, in the kiosk's own layout: the server's
    number and live-ticket URL, the names the server sent (else the kiosk's own
    for the service), marked as given at the counter."""
    language = job.language or config.language

    def said(texts: dict[str, str], fallback: str) -> str:
        return in_language(texts, language, config.language) if texts else fallback

    return TicketContent(
        branch=config.branch.get("name", ""),
        number=job.number,
        service=said(job.service_names, service.name(language) if service else job.service_id),
        issued=local_time(config, job.issued_at, language),
        url=job.url,
        service_text=service.text(language) if service else "",
        header=in_language(config.ticket.get("header", ""), language, config.language),
        footer=in_language(config.ticket.get("footer", ""), language, config.language),
        scan_hint=tr("Scan to follow your turn on your phone", language),
        queue_line=queue_words(job.waiting, job.estimated_wait_s, language),
        location=said(job.location, service.location(language) if service else ""),
        # Translators: small, on a ticket staff gave at a counter that a kiosk printed
        note=tr("Given at the counter", language),
    )
