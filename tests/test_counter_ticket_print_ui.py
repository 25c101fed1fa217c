"""The real kiosk app, paired, prints a ticket staff gave at a counter on its
network printer (the ESC/POS emulator), between its customers' own tickets."""

from __future__ import annotations

from pathlib import Path

import pytest

from printer.escpos_lib import profile_codepages, profile_media_width
from printer.render import render_bytes
from tests.emulator_process import Emulator
from tests.kiosk_driver import Kiosk
from tests.server_process import sync_once, wait_until

pytestmark = pytest.mark.ui
#: the kiosk app is the point; the storage verbs run on both databases in
#: tests/test_counter_ticket_print_storage.py
SERVER_DATABASES = ("sqlite",)
SHIPPED = Path(__file__).resolve().parent.parent / "systemd" / "kiosk.toml"


def test_the_kiosk_app_prints_a_counter_ticket_between_its_own(screen, own_branch, tmp_path):
    printer = Emulator(tmp_path / "printed", port=0)
    host, port = printer.address.rsplit(":", 1)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        SHIPPED.read_text(encoding="utf-8")
        .replace('backend = "usb"', f'backend = "network"\nhost = "{host}"\nport = {port}')
        .replace("kiosk_mode = true", "kiosk_mode = false")
        .replace("require_time_sync = true", "require_time_sync = false"),
        encoding="utf-8",
    )
    storage, kiosk_dir = own_branch.server.storage, own_branch.kiosk_dir
    kiosk = Kiosk(screen, kiosk_dir, config)
    try:
        kiosk.until(
            lambda s: any(b["class"] == "ServiceButton" for b in s["buttons"]),
            "the server's services on screen",
        )
        screen.key("1")  # a customer's own ticket first
        kiosk.wait_for_tickets(1, ("printed",))
        sync_once(kiosk_dir)
        given = storage.issue_at_counter(own_branch.id, "advice", None)
        assert storage.print_at_kiosk(own_branch.id, given["id"]) == "door"
        sync_once(kiosk_dir)  # the command arrives with the heartbeat
        printed = printer.wait_printed(2)
        kiosk.wait_for_log("printed counter ticket")
        assert len(kiosk.tickets()) == 1, "no number of the kiosk's own for it"
        sync_once(kiosk_dir)
        wait_until(
            lambda: storage.print_outcome(own_branch.id, given["id"])["state"] == "printed",
            what="the outcome with the heartbeat",
        )
    finally:
        kiosk.stop()
        printer.stop()
    assert len(printed) == 2
    profile = "TM-T20II"
    (page,) = render_bytes(
        printed[-1].with_suffix(".bin").read_bytes(),
        profile_media_width(profile),
        profile_codepages(profile),
    )
    assert given["display"] in page.lines and "Given at the counter" in page.lines
    assert "Advice" in page.lines
    assert page.qr_codes == [f"{own_branch.server.url}/t/{given['public_token']}"]
