"""Helpers for tests through the web: a real Chromium, a branch on a real
server with a paired kiosk, and tickets printed the way the kiosk prints them."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import zxingcpp
from PIL import Image

from kiosk import config
from kiosk.paper import ticket_content
from printer.backends import EmulatorBackend
from printer.layout import render_ticket
from sync import state, tickets
from tests.server_process import Server, sync_once

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


PASSWORD = "correct horse battery"


def add_staff(
    server: Server,
    username: str,
    counter: str,
    *,
    role: str = "staff",
    services: tuple[str, ...] = (),
    password: str = PASSWORD,
    branch: str = "demo",
) -> str:
    """A staff account as ``vuoro-server staff`` makes one (in this process:
    tests/test_cli.py runs the CLI itself); what the CLI prints."""
    from server.staff import Staff

    name = Staff(server.storage).add(branch, username, password, counter, list(services), role)
    return f"{role} {name} at counter {counter}"


def print_ticket(server: Server, kiosk_dir: Path, service: str, tmp_path: Path) -> str:
    """Issue and print a ticket as the kiosk does; return the URL its QR code holds."""
    settings = config.parse(
        textwrap.dedent(f"""
        [kiosk]
        language = "fi"
        [branch]
        name = "Vuoro demo branch"
        timezone = "Europe/Helsinki"
        [ticket]
        url_template = "{server.url}/t/{{token}}"
        [[services]]
        id = "{service}"
        prefix = "A"
        name = "x"
    """)
    )
    db = state.connect(kiosk_dir / "state.db")
    ticket = tickets.issue_ticket(db, service, language="fi")
    paper = EmulatorBackend(tmp_path / "printed")
    paper.send(
        render_ticket(ticket_content(settings, ticket, tickets.get_service(db, service))),
        ticket.display,
    )
    tickets.mark_printed(db, ticket.id)
    db.close()
    sync_once(kiosk_dir)
    png = sorted((tmp_path / "printed").glob(f"*-{ticket.display}.png"))[-1]
    (code,) = zxingcpp.read_barcodes(Image.open(png))
    return code.text
