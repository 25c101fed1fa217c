"""``vuoro-printer``: render captured bytes, run the emulator, print a test page."""

from __future__ import annotations

import argparse
import logging
import sys
import tomllib
from pathlib import Path

from printer.backends import Backend, open_backend
from printer.emulator import EmulatedPrinter, Faults, serve_pty, serve_tcp
from printer.errors import PrinterError
from printer.escpos_lib import profile_codepages, profile_media_width, profiles
from printer.layout import DEFAULT_PROFILE, render_test_page
from printer.render import render_bytes

log = logging.getLogger("vuoro.printer")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vuoro-printer", description="Vuoro's printer tools.")
    sub = p.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="render captured ESC/POS bytes to PNG")
    render.add_argument("input", type=Path, help="raw ESC/POS bytes (.bin)")
    render.add_argument("output", type=Path, help="PNG to write (-2, -3… for further cuts)")
    render.add_argument("--profile", default=DEFAULT_PROFILE, help="printer profile")
    emu = sub.add_parser(
        "emulator",
        help="act as a printer on TCP (or a serial pty), rendering each ticket",
        description="An emulated printer: answers status queries, renders every cut "
        "ticket to PNG, and misbehaves on request.",
    )
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=9100, help="TCP port (0: any free port)")
    emu.add_argument("--pty", action="store_true", help="a serial printer on a pseudo-terminal")
    emu.add_argument("--out", type=Path, default=Path("var/printed"))
    emu.add_argument("--profile", default=DEFAULT_PROFILE)
    emu.add_argument("--paper-near-end", action="store_true", help="report the roll near its end")
    emu.add_argument("--paper-out", action="store_true", help="no paper: print nothing")
    emu.add_argument("--cover-open", action="store_true", help="cover open: print nothing")
    emu.add_argument("--hang", action="store_true", help="accept, then never read or answer")
    emu.add_argument("--mute", action="store_true", help="print, but never answer status")
    emu.add_argument("--drop-after", type=int, metavar="BYTES", help="reset the link after BYTES")
    emu.add_argument("--slow", type=int, metavar="BYTES_PER_S", help="take bytes this slowly")
    sub.add_parser("profiles", help="list the printer profiles (paper width, native QR, cutter)")
    for name, text in (("test", "print a test page"), ("status", "ask the printer how it is")):
        target = sub.add_parser(
            name,
            help=text,
            description=f"{text[0].upper()}{text[1:]}. "
            "Without a target: the emulator, writing to --out.",
        )
        where = target.add_mutually_exclusive_group()
        where.add_argument("--config", type=Path, help="the printer of this kiosk.toml")
        where.add_argument("--host", help="a network printer")
        where.add_argument("--serial", metavar="DEVICE", help="a serial printer, e.g. /dev/ttyUSB0")
        where.add_argument("--usb", metavar="VID:PID", help="a USB printer, or 'auto'")
        target.add_argument("--port", type=int, default=9100)
        target.add_argument("--baudrate", type=int, default=9600)
        target.add_argument("--out", type=Path, default=Path("var/printed"))
        target.add_argument("--profile", help=f"printer profile (default {DEFAULT_PROFILE})")
    return p


def _backend(args: argparse.Namespace) -> Backend:
    """The printer a test or status command is aimed at."""
    if args.config:
        with args.config.open("rb") as f:
            section = dict(tomllib.load(f).get("printer", {}))
    elif args.host:
        section = {"backend": "network", "host": args.host, "port": args.port}
    elif args.serial:
        section = {"backend": "serial", "device": args.serial, "baudrate": args.baudrate}
    elif args.usb and args.usb != "auto":
        vendor, _, product = args.usb.partition(":")
        section = {"backend": "usb", "vendor_id": vendor, "product_id": product}
    elif args.usb:
        section = {"backend": "usb"}
    else:
        section = {"backend": "emulator", "out": str(args.out.resolve())}
    if args.profile:
        section["profile"] = args.profile
    return open_backend(section, Path.cwd())


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
    faults = Faults(
        paper_near_end=args.paper_near_end,
        paper_out=args.paper_out,
        cover_open=args.cover_open,
        hang=args.hang,
        mute=args.mute,
        drop_after=args.drop_after,
        bytes_per_second=args.slow,
    )
    printer = EmulatedPrinter(args.out, args.profile, faults)
    try:
        if args.pty:
            serve_pty(printer, lambda path: print(f"emulated printer on {path}", flush=True))
        else:
            serve_tcp(
                printer,
                args.host,
                args.port,
                lambda port: print(f"emulated printer on {args.host}:{port}", flush=True),
            )
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"vuoro-printer: {exc}", file=sys.stderr)
        return 1
    return 0


def _test(args: argparse.Namespace) -> int:
    try:
        backend = _backend(args)
        status = backend.send(render_test_page(backend.profile), "test")
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"vuoro-printer: {exc}", file=sys.stderr)
        return 2
    except PrinterError as exc:
        print(f"vuoro-printer: {exc}", file=sys.stderr)
        return 1
    print(f"test page printed; printer state: {status.state}")
    return 0


def _profiles(_args: argparse.Namespace) -> int:
    print(f"{'profile':<16} {'dots':>5} {'mm':>4}  {'QR':<6} {'cutter':<6} model")
    for p in profiles().values():
        print(
            f"{p.name:<16} {p.width_dots:>5} {round(p.width_dots / 8):>4}  "
            f"{'native' if p.native_qr else 'image':<6} {'yes' if p.cutter else 'no':<6} "
            f"{p.vendor} {p.model}".rstrip()
        )
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        status = _backend(args).status()
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as exc:
        print(f"vuoro-printer: {exc}", file=sys.stderr)
        return 2
    except PrinterError as exc:
        print(f"offline: {exc}")
        return 1
    print(status.state)
    return 0 if status.state in ("ok", "paper_near_end") else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    commands = {
        "render": _render,
        "emulator": _emulator,
        "test": _test,
        "status": _status,
        "profiles": _profiles,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
