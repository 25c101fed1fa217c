"""Ways bytes reach a printer, chosen by one config section.

Each backend takes finished ESC/POS bytes (from :mod:`printer.layout`) and
raises only :mod:`printer.errors` types, so the kiosk can react the same way
whatever the link.
"""

from __future__ import annotations

import errno
import os
import re
import socket
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Protocol

from printer.errors import PrinterConfigError, PrinterOffline, PrinterTimeout
from printer.escpos_lib import escpos, profile_codepages, profile_media_width
from printer.layout import DEFAULT_PROFILE
from printer.render import render_bytes

DEFAULT_TIMEOUT_S = 5.0


class Backend(Protocol):
    """Sends one job's bytes; raises a :class:`printer.errors.PrinterError`."""

    profile: str

    def send(self, data: bytes, job: str) -> None: ...


def _safe_name(job: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", job)[:40] or "job"


class EmulatorBackend:
    """The development printer: keeps the raw bytes and renders them to PNG.

    Every job becomes ``<time>-<job>.bin`` (exactly what a printer would get)
    and ``<time>-<job>.png`` (what it would print), in ``out_dir``.
    """

    def __init__(self, out_dir: str | os.PathLike[str], profile: str = DEFAULT_PROFILE) -> None:
        self.out_dir = Path(out_dir)
        self.profile = profile

    def send(self, data: bytes, job: str) -> None:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PrinterOffline(f"emulator output {self.out_dir}: {exc.strerror}") from exc
        stem = f"{datetime.now():%Y%m%d-%H%M%S-%f}-{_safe_name(job)}"
        (self.out_dir / f"{stem}.bin").write_bytes(data)
        pages = render_bytes(
            data, profile_media_width(self.profile), profile_codepages(self.profile)
        )
        for index, page in enumerate(pages):
            suffix = "" if index == 0 else f"-{index + 1}"
            tmp = self.out_dir / f".{stem}{suffix}.png.tmp"
            page.save_png(tmp)
            tmp.rename(self.out_dir / f"{stem}{suffix}.png")  # readers never see half a PNG


class FileBackend:
    """A device node such as ``/dev/usb/lp0`` (or any file), opened per job."""

    def __init__(
        self, path: str, profile: str = DEFAULT_PROFILE, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.path = path
        self.profile = profile
        self.timeout = timeout

    def send(self, data: bytes, job: str) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            fd = self._open(deadline)
        except OSError as exc:
            raise PrinterOffline(f"{self.path}: {exc.strerror}") from exc
        try:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    written = 0
                view = view[written:]
                if view:
                    if time.monotonic() > deadline:
                        raise PrinterTimeout(f"{self.path}: printer stopped taking data")
                    time.sleep(0.01)
        except OSError as exc:
            raise PrinterOffline(f"{self.path}: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def _open(self, deadline: float) -> int:
        """Open without blocking forever (a FIFO or a stuck device would)."""
        while True:
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_APPEND)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: nobody reads the other end yet
                    raise
                if time.monotonic() > deadline:
                    raise PrinterTimeout(f"{self.path}: nobody is reading") from exc
                time.sleep(0.05)


class NetworkBackend:
    """A printer on TCP (port 9100 by convention), one connection per job."""

    def __init__(
        self,
        host: str,
        port: int = 9100,
        profile: str = DEFAULT_PROFILE,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.host, self.port, self.profile, self.timeout = host, port, profile, timeout

    def send(self, data: bytes, job: str) -> None:
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
                sock.sendall(data)
        except TimeoutError as exc:
            raise PrinterTimeout(f"{self.host}:{self.port}: timed out") from exc
        except OSError as exc:
            raise PrinterOffline(f"{self.host}:{self.port}: {exc.strerror or exc}") from exc


class UsbBackend:
    """A USB printer by vendor and product id, through python-escpos and pyusb."""

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        profile: str = DEFAULT_PROFILE,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.vendor_id, self.product_id = vendor_id, product_id
        self.profile, self.timeout = profile, timeout

    def send(self, data: bytes, job: str) -> None:
        try:
            device = escpos().Usb(
                self.vendor_id,
                self.product_id,
                timeout=int(self.timeout * 1000),
                profile=self.profile,
            )
            device.open()
            device._raw(data)
            device.close()
        except Exception as exc:  # pyusb's and python-escpos' own errors, mapped
            if type(exc).__module__.split(".")[0] not in ("usb", "escpos"):
                raise
            raise PrinterOffline(f"USB {self.vendor_id:04x}:{self.product_id:04x}: {exc}") from exc


def _int_id(value: object, key: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 16)
    except ValueError:
        raise PrinterConfigError(f'printer.{key} must be a hex id like "04b8"') from None


def open_backend(section: Mapping[str, object], base_dir: Path) -> Backend:
    """The backend a ``[printer]`` config section asks for."""
    kind = section.get("backend", "emulator")
    profile = str(section.get("profile", DEFAULT_PROFILE))
    timeout = float(section.get("timeout_s", DEFAULT_TIMEOUT_S))
    if kind == "emulator":
        return EmulatorBackend(base_dir / str(section.get("out", "printed")), profile)
    if kind == "file":
        return FileBackend(str(section["path"]), profile, timeout)
    if kind == "network":
        return NetworkBackend(
            str(section["host"]), int(section.get("port", 9100)), profile, timeout
        )
    if kind == "usb":
        return UsbBackend(
            _int_id(section["vendor_id"], "vendor_id"),
            _int_id(section["product_id"], "product_id"),
            profile,
            timeout,
        )
    raise PrinterConfigError(f"unknown printer backend {kind!r}")
