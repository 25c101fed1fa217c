"""``vuoro-kiosk``: start the touchscreen app (or just check its config)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from appliance.lock import AlreadyRunning, DirectoryLock
from kiosk import config as kiosk_config
from kiosk import display, startup
from kiosk.issuing import TicketIssuer
from printer.backends import open_backend
from printer.errors import PrinterConfigError, PrinterError
from printer.escpos_lib import profile_media_width
from printer.logo import cached as cached_logo

log = logging.getLogger("vuoro.kiosk")

SYSTEM_CONFIG = Path("/etc/vuoro/kiosk.toml")


def default_config_path() -> Path | None:
    """``$VUORO_CONFIG``, else /etc/vuoro/kiosk.toml if present, else the embedded default."""
    if os.environ.get("VUORO_CONFIG"):
        return Path(os.environ["VUORO_CONFIG"])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None


def default_state_dir() -> Path:
    """systemd's ``$STATE_DIRECTORY``, else ``$VUORO_STATE_DIR``, else ./var."""
    for name in ("STATE_DIRECTORY", "VUORO_STATE_DIR"):
        if os.environ.get(name):
            return Path(os.environ[name].split(":")[0])
    return Path("var")


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (240 <= width <= 8192 and 240 <= height <= 8192):
        raise argparse.ArgumentTypeError(f"size {text!r} out of range")
    return width, height


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vuoro-kiosk",
        description="Vuoro's touchscreen kiosk: tap a service, get a numbered paper ticket.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="kiosk TOML file (default: $VUORO_CONFIG, /etc/vuoro/kiosk.toml, "
        "or the embedded standalone demo)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the state DB and emulator output live "
        "(default: $STATE_DIRECTORY, $VUORO_STATE_DIR or ./var)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--kiosk",
        dest="kiosk_mode",
        action="store_true",
        default=None,
        help="full screen, hidden cursor, cannot be closed (overrides config)",
    )
    mode.add_argument(
        "--windowed",
        dest="kiosk_mode",
        action="store_false",
        help="a normal window, for demos and development (overrides config)",
    )
    p.add_argument(
        "--size",
        type=_size,
        default=(1024, 600),
        metavar="WxH",
        help="window size in windowed mode (default 1024x600)",
    )
    p.add_argument(
        "--check-config",
        action="store_true",
        help="check the config file, print a summary and exit",
    )
    p.add_argument(
        "--hash-pin",
        action="store_true",
        help="read an admin PIN (4 to 12 digits) from standard input, print its hash for "
        "[admin] pin_hash, and exit",
    )
    p.add_argument(
        "--reprint-last",
        action="store_true",
        help="print the last ticket again (marked as a copy) and exit; no window",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.hash_pin:
        from kiosk.pinlock import hash_pin

        try:
            print(f'pin_hash = "{hash_pin(sys.stdin.readline().strip())}"')
        except ValueError as exc:
            print(f"vuoro-kiosk: {exc}", file=sys.stderr)
            return 2
        return 0
    config_path = args.config or default_config_path()
    try:
        settings = kiosk_config.load(config_path)
    except kiosk_config.ConfigError as exc:
        print(f"vuoro-kiosk: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(
            f"{settings.source}: ok, {len(settings.services)} services, "
            f"printer {settings.printer['backend']}"
        )
        return 0
    if args.kiosk_mode is not None:  # --kiosk / --windowed win over the file, everywhere
        settings = replace(settings, kiosk_mode=args.kiosk_mode)
    kiosk_mode = settings.kiosk_mode

    state_dir = (args.state_dir or default_state_dir()).resolve()
    try:
        backend = open_backend(settings.printer, state_dir)
        logo = (
            cached_logo(
                Path(settings.ticket["logo"]),
                profile_media_width(backend.profile),
                state_dir / "cache",
            )
            if settings.ticket["logo"]
            else b""
        )
    except (PrinterConfigError, KeyError, ValueError) as exc:
        print(f"vuoro-kiosk: {settings.source}: {exc}", file=sys.stderr)
        return 2
    db_path = state_dir / "state.db"
    if args.reprint_last:
        return _reprint_last(db_path, settings, backend, logo)
    problem = display.problem()
    if problem:
        print(f"vuoro-kiosk: {problem}", file=sys.stderr)
        return 3
    try:
        lock = DirectoryLock(state_dir, "kiosk").acquire()  # one kiosk per state directory
    except AlreadyRunning as exc:
        print(f"vuoro-kiosk: {exc}; not starting a second one", file=sys.stderr)
        return 4

    try:
        prepared = startup.prepare(db_path, settings)
    except startup.StateUnavailable as exc:  # out of order until it passes; no crash loop
        log.error("out of order: %s", exc)
        prepared = exc
    log.info(
        "config %s, state %s, printer %s", settings.source, state_dir, settings.printer["backend"]
    )

    display.configure_kivy(kiosk_mode=kiosk_mode, kivy_home=state_dir / "kivy", size=args.size)
    from kiosk.app import KioskApp  # creates the window: only after configure_kivy

    KioskApp(settings, db_path, backend, logo, prepared=prepared).run()
    lock.release()
    return 0


def _reprint_last(db_path: Path, settings, backend, logo: bytes) -> int:
    """For a technician over SSH (the admin menu offers the same)."""
    issuer = TicketIssuer(db_path, settings, backend, lambda fn, *a: fn(*a), logo)
    try:
        number = issuer.reprint_last().result()
    except (LookupError, PrinterError) as exc:
        print(f"vuoro-kiosk: {exc}", file=sys.stderr)
        return 1
    finally:
        issuer.shutdown()
    print(f"reprinted {number}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
