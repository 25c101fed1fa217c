"""The tap-to-paper path: commit latency, ticket size, time on the wire."""

from __future__ import annotations

import statistics
import time

from printer.escpos_lib import profile_codepages
from printer.layout import TicketContent, render_ticket
from printer.render import render_bytes
from sync import state, tickets

SERIAL_9600_BYTES_PER_S = 9600 / 10  # 8N1: ten bits a byte
USB_FULL_SPEED_BYTES_PER_S = 64 * 1000  # one 64-byte bulk packet per 1 ms frame, at worst

CONTENT = TicketContent(
    branch="Kaupungin palvelupiste",
    number="A042",
    service="Maksut ja laskut",
    issued="23.11.2026 klo 11.30",
    url="https://jono.example.fi/t/AAAAAAAAAAAAAAAAAAAAAA",
    service_text="Ota henkilöllisyystodistus esiin",
    footer="Kiitos käynnistä",
    scan_hint="Seuraa vuoroasi puhelimella",
)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_commit_latency(tmp_path, scale, record):
    db = state.connect(tmp_path / "state.db")
    tickets.apply_standalone_config(
        db,
        branch={"name": "b", "timezone": "Europe/Helsinki"},
        ticket={},
        services=[{"id": "payments", "prefix": "A", "names": {"en": "Payments"}}],
    )
    durations = []
    for _ in range(scale):
        start = time.perf_counter()
        tickets.issue_ticket(db, "payments", language="en")
        durations.append(time.perf_counter() - start)
    assert db["tickets"].count == scale and state.integrity_ok(db)
    record(
        "commit (BEGIN IMMEDIATE, synchronous=FULL)",
        n=scale,
        p50_ms=_ms(statistics.median(durations)),
        p99_ms=_ms(_percentile(durations, 0.99)),
    )


def test_ticket_bytes_and_wire_time(scale, record):
    native = render_ticket(CONTENT)
    image_qr = render_ticket(CONTENT, native_qr=False)
    start = time.perf_counter()
    for _ in range(scale):
        render_ticket(CONTENT)
    layout_s = (time.perf_counter() - start) / scale
    assert len(native) < len(image_qr)
    for name, data in (("native QR", native), ("image QR", image_qr)):
        record(
            f"ticket 80 mm, {name}",
            bytes=len(data),
            serial_9600_s=round(len(data) / SERIAL_9600_BYTES_PER_S, 3),
            usb_fs_ms=_ms(len(data) / USB_FULL_SPEED_BYTES_PER_S),
        )
    record("layout (python-escpos)", per_ticket_ms=_ms(layout_s))


def test_emulator_render_time(scale, record):
    data = render_ticket(CONTENT)
    pages = profile_codepages("TM-T20II")
    start = time.perf_counter()
    for _ in range(max(scale // 10, 1)):
        (page,) = render_bytes(data, 576, pages)
    per = (time.perf_counter() - start) / max(scale // 10, 1)
    assert "A042" in page.lines
    record("emulator render to pixels", per_ticket_ms=_ms(per))
