"""``vuoro-printer``: render captured bytes, run the emulator, print a test page."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from datetime import datetime
from pathlib import Path

from printer.backends import EmulatorBackend, NetworkBackend
from printer.errors import PrinterError
from printer.escpos_lib import profile_codepages, profile_media_width
from printer.layout import DEFAULT_PROFILE, TicketContent, render_ticket
from printer.render import render_bytes

log = logging.getLogger("vuoro.printer")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vuoro-printer", description="Vuoro's printer tools.")
    sub = p.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render captured ESC/POS bytes to PNG")
    render.add_argument("input", type=Path, help="raw ESC/POS bytes (.bin)")
    render.add_argument("output", type=Path, help="PNG to write (-2, -3… for further cuts)")
    render.add_argument("--profile", default=DEFAULT_PROFILE, help="printer profile")
    emu = sub.add_parser("emulator", help="act as a network printer, rendering each ticket")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=9100)
    emu.add_argument("--out", type=Path, default=Path("var/printed"))
    emu.add_argument("--profile", default=DEFAULT_PROFILE)
    test = sub.add_parser("test", help="print a test page")
    test.add_argument("--host", help="network printer host (default: emulator to --out)")
    test.add_argument("--port", type=int, default=9100)
    test.add_argument("--out", type=Path, default=Path("var/printed"))
    test.add_argument("--profile", default=DEFAULT_PROFILE)
    return p


def test_page(profile: str) -> bytes:
    return render_ticket(
        TicketContent(
            branch="Vuoro test page",
            number="T000",
            service="Printer test",
            issued=f"{datetime.now():%Y-%m-%d %H:%M}",
            url="https://example.org/vuoro-printer-test",
            service_text="ÄÖÅ äöå Õ õ Š š Ž ž",
            footer=f"profile {profile}",
        ),
        profile,
    )


def _render(args: argparse.Namespace) -> int:
    try:
        data = args.input.read_bytes()
    except OSError as exc:
        print(f"vuoro-printer: {args.input}: {exc.strerror}", file=sys.stderr)
        return 2
    pages = render_bytes(data, profile_media_width(args.profile), profile_codepages(args.profile))
    if not pages:
        print(f"vuoro-printer: {args.input}: nothing printable", file=sys.stderr)
        return 1
    for index, page in enumerate(pages):
        out = (
            args.output if index == 0 else args.output.with_stem(f"{args.output.stem}-{index + 1}")
        )
        page.save_png(out)
        print(
            f"{out}: {len(page.lines)} text lines, {len(page.qr_codes)} QR codes"
            + (f", warnings: {'; '.join(page.warnings)}" if page.warnings else "")
        )
    return 0


def _emulator(args: argparse.Namespace) -> int:
    """A plain TCP printer: each connection's bytes are rendered at every cut."""
    out = EmulatorBackend(args.out, args.profile)
    server = socket.create_server((args.host, args.port), reuse_port=False)
    print(f"emulated printer on {args.host}:{args.port}, tickets to {args.out}", flush=True)
    try:
        while True:
            conn, _peer = server.accept()
            with conn:
                conn.settimeout(30)
                chunks = []
                try:
                    while chunk := conn.recv(65536):
                        chunks.append(chunk)
                except TimeoutError:
                    log.warning("client went quiet; rendering what arrived")
                if chunks:
                    out.send(b"".join(chunks), "net")
    except KeyboardInterrupt:
        return 0
    finally:
        server.close()


def _test(args: argparse.Namespace) -> int:
    backend = (
        NetworkBackend(args.host, args.port, args.profile)
        if args.host
        else EmulatorBackend(args.out, args.profile)
    )
    try:
        backend.send(test_page(args.profile), "test")
    except PrinterError as exc:
        print(f"vuoro-printer: {exc}", file=sys.stderr)
        return 1
    print("test page sent" + ("" if args.host else f" to {args.out}"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return {"render": _render, "emulator": _emulator, "test": _test}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
