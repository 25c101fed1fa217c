"""What the kiosk puts on paper for a committed ticket."""

from __future__ import annotations

from kiosk import config
from kiosk.paper import queue_line, ticket_content, ticket_url
from printer.layout import render_ticket
from printer.render import render_bytes
from sync.tickets import Service, Ticket
from tests.conftest import TWO_SERVICES

TICKET = Ticket(
    id="0" * 32,
    public_token="tok_-123",
    kiosk_seq=1,
    service_id="permits",
    day="2026-11-23",
    number=7,
    display="B007",
    language="fi",
    issued_at="2026-11-23T09:05:00.000+00:00",
)


def service(waiting=None, wait_s=None) -> Service:
    return Service(
        "permits",
        "B",
        {"fi": "Luvat"},
        {"fi": "Ota henkkarit"},
        1,
        waiting=waiting,
        estimated_wait_s=wait_s,
    )


def test_the_url_and_local_time_come_from_the_config():
    settings = config.parse(TWO_SERVICES)
    content = ticket_content(settings, TICKET, service())
    assert ticket_url(settings, TICKET) == content.url == "https://jono.example.fi/t/tok_-123"
    assert content.issued == "23.11.2026 klo 11.05"  # Helsinki, UTC+2 in November
    assert (content.service, content.service_text, content.queue_line) == (
        "Luvat",
        "Ota henkkarit",
        "",
    )


def test_position_and_estimated_wait_are_printed_when_known():
    assert queue_line(service(4, 700), "fi") == "Edelläsi jonossa 4 · noin 12 min"
    assert queue_line(service(0, 20), "en") == "0 waiting before you · about 1 min"
    assert queue_line(service(3, None), "sv") == "3 före dig i kön"
    settings = config.parse(TWO_SERVICES)
    lines = render_bytes(render_ticket(ticket_content(settings, TICKET, service(4, 700))))[0].lines
    assert "Edelläsi jonossa 4 · noin 12 min" in lines
