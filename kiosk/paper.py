"""From a committed ticket to what the paper (and the screen) shows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.config import KioskConfig
from kiosk.i18n import ntr, tr
from printer.layout import TicketContent
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
    moment = datetime.fromisoformat(ticket.issued_at).astimezone(
        ZoneInfo(config.branch["timezone"])
    )
    return moment.strftime(_DATE_FORMATS.get(ticket.language, _DATE_FORMATS["en"]))


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
    parts = []
    if service.waiting is not None:
        parts.append(
            ntr(
                "{count} waiting before you",
                "{count} waiting before you",
                service.waiting,
                language,
            )
        )
    if service.estimated_wait_s is not None:
        minutes = max(1, round(service.estimated_wait_s / 60))
        parts.append(tr("about {minutes} min", language, minutes=minutes))
    return " · ".join(parts)
