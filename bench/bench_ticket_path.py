"""The tap-to-paper path: commit latency, ticket size, time on the wire."""

from __future__ import annotations

import statistics
import time

from printer.backends import NetworkBackend
from printer.escpos_lib import escpos, profile_codepages
from printer.layout import TicketContent, render_ticket
from printer.render import render_bytes
from sync import state, tickets
from tests.emulator_process import Emulator

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


def _standalone(tmp_path):
    db = state.connect(tmp_path / "state.db")
    tickets.apply_standalone_config(
        db,
        branch={"name": "b", "timezone": "Europe/Helsinki"},
        ticket={},
        services=[{"id": "payments", "prefix": "A", "names": {"en": "Payments"}}],
    )
    return db


def test_commit_latency(tmp_path, scale, record):
    """Each tap's transaction, interleaved with a bare one-row commit of the same
    DB (same WAL, same fsync): their ratio does not depend on the machine."""
    db = _standalone(tmp_path)
    db.execute("CREATE TABLE bench_bare (n INTEGER)")
    durations, bare = [], []
    for n in range(scale):
        start = time.perf_counter()
        tickets.issue_ticket(db, "payments", language="en")
        durations.append(time.perf_counter() - start)
        start = time.perf_counter()
        with state.transaction(db):
            db.execute("INSERT INTO bench_bare VALUES (?)", [n])
        bare.append(time.perf_counter() - start)
    assert db["tickets"].count == scale and state.integrity_ok(db)
    record(
        "commit (BEGIN IMMEDIATE, synchronous=FULL)",
        n=scale,
        p50_ms=_ms(statistics.median(durations)),
        p99_ms=_ms(_percentile(durations, 0.99)),
        bare_commit_p50_ms=_ms(statistics.median(bare)),
        vs_bare_commit=round(statistics.median(durations) / statistics.median(bare), 1),
    )


def whole_ticket_raster(content: TicketContent) -> bytes:
    """The ticket as one picture, the way most open-source queue systems print it."""
    (page,) = render_bytes(render_ticket(content), 576, profile_codepages("TM-T20II"))
    picture = page.image.crop((16, 16, 16 + 576, page.image.height - 16)).convert("1")
    p = escpos().Dummy(profile="TM-T20II")
    p.image(picture, impl="bitImageRaster", center=False)
    p.cut()
    return p.output


def test_ticket_bytes_and_wire_time(scale, record):
    variants = {
        "native QR": render_ticket(CONTENT),
        "image QR": render_ticket(CONTENT, native_qr=False),
        "whole-ticket raster": whole_ticket_raster(CONTENT),
    }
    start = time.perf_counter()
    for _ in range(scale):
        render_ticket(CONTENT)
    layout_s = (time.perf_counter() - start) / scale
    native = len(variants["native QR"])
    assert native < 600, "a complete logo-less ticket stays under 600 bytes"
    assert native / SERIAL_9600_BYTES_PER_S < 0.7, "under 0.7 s on a 9600-baud line"
    for name, data in variants.items():
        record(
            f"ticket 80 mm, {name}",
            bytes=len(data),
            vs_native=round(len(data) / native, 1),
            serial_9600_s=round(len(data) / SERIAL_9600_BYTES_PER_S, 3),
            usb_fs_ms=_ms(len(data) / USB_FULL_SPEED_BYTES_PER_S),
        )
    record("layout (python-escpos)", per_ticket_ms=_ms(layout_s))


def test_send_over_an_emulated_9600_baud_link(tmp_path, record):
    """Measured, not computed: the emulator takes 960 bytes/s, as 9600 baud 8N1 does,
    and the job ends when the printer answers the status query after the ticket."""
    data = render_ticket(CONTENT)
    emulator = Emulator(tmp_path / "out", "--slow", str(int(SERIAL_9600_BYTES_PER_S)))
    try:
        host, port = emulator.address.rsplit(":", 1)
        backend = NetworkBackend(host, int(port), timeout=10)
        start = time.perf_counter()
        status = backend.send(data, "A042")
        elapsed = time.perf_counter() - start
    finally:
        emulator.stop()
    assert status.state == "ok"
    record(
        "send native ticket, 960 B/s link",
        bytes=len(data),
        measured_s=round(elapsed, 3),
        computed_s=round(len(data) / SERIAL_9600_BYTES_PER_S, 3),
    )


def test_emulator_render_time(scale, record):
    data = render_ticket(CONTENT)
    pages = profile_codepages("TM-T20II")
    start = time.perf_counter()
    for _ in range(max(scale // 10, 1)):
        (page,) = render_bytes(data, 576, pages)
    per = (time.perf_counter() - start) / max(scale // 10, 1)
    assert "A042" in page.lines
    record("emulator render to pixels", per_ticket_ms=_ms(per))


def test_tap_to_paper_db_work(tmp_path, scale, record):
    """Every commit between a tap and the printer's answer: the ticket, "bytes
    handed to the printer" (so a kill after it keeps the ticket), "printed"."""
    db = _standalone(tmp_path)
    to_printer, handed_only, whole = [], [], []
    for _ in range(scale):
        start = time.perf_counter()
        ticket = tickets.issue_ticket(db, "payments", language="en")
        before_handed = time.perf_counter()
        tickets.mark_handed(db, ticket.id)
        handed = time.perf_counter()
        tickets.mark_printed(db, ticket.id)
        done = time.perf_counter()
        to_printer.append(handed - start)
        handed_only.append(handed - before_handed)
        whole.append(done - start)
    assert db.execute("SELECT COUNT(*) FROM tickets WHERE state = 'printed'").fetchone()[0] == scale
    record(
        "tap to first byte (commit + handed)",
        n=scale,
        p50_ms=_ms(statistics.median(to_printer)),
        p99_ms=_ms(_percentile(to_printer, 0.99)),
        handed_p50_ms=_ms(statistics.median(handed_only)),
    )
    record(
        "all DB work of a ticket (commit, handed, printed)",
        n=scale,
        p50_ms=_ms(statistics.median(whole)),
        p99_ms=_ms(_percentile(whole, 0.99)),
    )
