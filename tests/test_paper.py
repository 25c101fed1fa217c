"""What the kiosk puts on paper for a committed ticket."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kiosk import config
from kiosk.paper import queue_line, ticket_content, ticket_url
from printer.layout import render_ticket
from printer.render import render_bytes
from sync.tickets import Service, Ticket
from tests.conftest import TWO_SERVICES

ROOT = Path(__file__).resolve().parent.parent

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


SHIPPED = {
    "the embedded default": config.embedded_default_text(),
    "the appliance's kiosk.toml": (ROOT / "systemd" / "kiosk.toml").read_text(encoding="utf-8"),
}
THANKS = {
    "fi": "Kiitos käynnistä",
    "et": "Täname külastuse eest",
    "sv": "Tack för besöket",
    "en": "Thank you for your visit",
}


def printed_lines(settings: config.KioskConfig, language: str) -> list[str]:
    """The text lines the printer puts on paper, read back from the ESC/POS bytes."""
    ticket = replace(TICKET, language=language)
    (paper,) = render_bytes(render_ticket(ticket_content(settings, ticket, service())))
    return paper.lines


@pytest.mark.parametrize("shipped", SHIPPED)
def test_the_shipped_footer_is_printed_in_the_ticket_language(shipped):
    settings = config.parse(SHIPPED[shipped], shipped)
    for language, thanks in THANKS.items():
        lines = printed_lines(settings, language)
        assert lines[-1] == thanks, f"{language}: {lines[-3:]}"
        others = [text for other, text in THANKS.items() if other != language]
        assert not set(others) & set(lines), f"{language} ticket has another language's footer"


def test_a_footer_missing_a_language_prints_the_default_one_never_blank():
    settings = config.parse(
        TWO_SERVICES.replace(
            'footer = "Kiitos käynnistä – Tack – Aitäh: õ š ž"',
            'header = { sv = "Välkommen" }\nfooter = { fi = "Kiitos käynnistä", et = "Aitäh" }',
        )
    )
    assert printed_lines(settings, "et")[-1] == "Aitäh"
    assert printed_lines(settings, "en")[-1] == "Kiitos käynnistä"  # the kiosk's language
    assert printed_lines(settings, "sv")[:2] == ["Välkommen", "Kaupungin palvelupiste Äänekoski"]
    assert printed_lines(settings, "fi")[0] == "Välkommen", "the only header there is"
    plain = config.parse(TWO_SERVICES)  # one text: the same on every ticket
    assert printed_lines(plain, "en")[-1] == "Kiitos käynnistä – Tack – Aitäh: õ š ž"


def test_a_hostile_footer_prints_as_plain_text():
    settings = config.parse(
        TWO_SERVICES.replace(
            'footer = "Kiitos käynnistä – Tack – Aitäh: õ š ž"',
            'footer = { fi = "Kiitos\\u001b@\\u001dVA 🙂", et = "Aitäh\\u0000" }',
        )
    )
    # printed_lines unpacks one piece of paper: GS V A, a cut, did not reach the printer
    assert printed_lines(settings, "fi")[-1].replace(" ", "") == "Kiitos@VA"
    assert printed_lines(settings, "et")[-1] == "Aitäh"
