"""From a committed ticket to what the paper (and the screen) shows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.config import KioskConfig
from kiosk.i18n import tr
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
    moment = datetime.fromisoformat(ticket.issued_at).astimezone(
        ZoneInfo(config.branch["timezone"])
    )
    return moment.strftime(_DATE_FORMATS.get(ticket.language, _DATE_FORMATS["en"]))


def ticket_content(config: KioskConfig, ticket: Ticket, service: Service) -> TicketContent:
    language = ticket.language
    return TicketContent(
        branch=config.branch["name"],
        number=ticket.display,
        service=service.name(language),
        issued=issued_local(config, ticket),
        url=ticket_url(config, ticket),
        service_text=service.text(language),
        header=config.ticket["header"],
        footer=config.ticket["footer"],
        scan_hint=tr("scan_hint", language),
        queue_line=""
        if service.waiting is None
        else tr("waiting", language, count=service.waiting),
    )
