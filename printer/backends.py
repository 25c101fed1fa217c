"""Ways bytes reach a printer, chosen by one config section.

Each backend takes finished ESC/POS bytes (from :mod:`printer.layout`) and
raises only :mod:`printer.errors` types, so the kiosk can react the same way
whatever the link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from printer.emulator import EmulatedPrinter
from printer.errors import CoverOpen, PaperOut, PrinterConfigError, PrinterOffline, PrinterTimeout
from printer.layout import DEFAULT_PROFILE
from printer.status import QUERIES, QUERY_BYTES, UNKNOWN, Paper, PrinterStatus
from printer.status import parse as parse_status

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_STATUS_TIMEOUT_S = 1.0
HEALTHY = PrinterStatus(answered=True, online=True, paper=Paper.OK)

OnSend = Callable[[], None] | None


def _sending(on_send: OnSend) -> None:
    if on_send is not None:
        on_send()


class Backend(Protocol):
    """Sends one job's bytes; raises a :class:`printer.errors.PrinterError`.

    ``send`` returns the status seen after the job (``UNKNOWN`` for one-way
    links); ``status`` asks without printing. ``on_send`` is called once, just
    before the first byte of the job leaves: before it, the printer certainly
    has nothing; after it, the paper may come out whatever happens next.
    """

    profile: str

    def send(self, data: bytes, job: str, on_send: OnSend = None) -> PrinterStatus: ...

    def status(self) -> PrinterStatus: ...


class EmulatorBackend:
    """The development printer, in process: an :class:`EmulatedPrinter` that
    keeps each ticket's raw bytes (``.bin``) and its rendering (``.png``) in
    ``out_dir``, and is always healthy."""

    def __init__(self, out_dir: str | os.PathLike[str], profile: str = DEFAULT_PROFILE) -> None:
        self.out_dir = Path(out_dir)
        self.profile = profile
        self._printer = EmulatedPrinter(self.out_dir, profile)

    def send(self, data: bytes, job: str, on_send: OnSend = None) -> PrinterStatus:
        _sending(on_send)
        try:
            self._printer.receive(data)
            self._printer.end_of_job()
        except OSError as exc:
            raise PrinterOffline(f"emulator output {self.out_dir}: {exc.strerror}") from exc
        return HEALTHY

    def status(self) -> PrinterStatus:
        return HEALTHY


class FileBackend:
    """A device node such as ``/dev/usb/lp0`` (or any file), opened per job."""

    def __init__(
        self, path: str, profile: str = DEFAULT_PROFILE, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        self.path = path
        self.profile = profile
        self.timeout = timeout

    def status(self) -> PrinterStatus:
        """A one-way link cannot say more than whether the device is there."""
        if not os.path.exists(self.path):
            raise PrinterOffline(f"{self.path}: no such device")
        return UNKNOWN

    def send(self, data: bytes, job: str, on_send: OnSend = None) -> PrinterStatus:
        deadline = time.monotonic() + self.timeout
        try:
            fd = self._open(deadline)
        except OSError as exc:
            raise PrinterOffline(f"{self.path}: {exc.strerror}") from exc
        try:
            _sending(on_send)
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
        return UNKNOWN

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


class _Link(Protocol):
    """A two-way byte link, opened per job (so an unplugged printer is found again)."""

    def write(self, data: bytes, deadline: float) -> None: ...

    def read(self, size: int, deadline: float) -> bytes: ...

    def drain(self) -> None: ...

    def close(self) -> None: ...


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise PrinterTimeout(f"{what}: timed out")
    return left


class LinkBackend:
    """The status protocol over any two-way link.

    Before a ticket: ask (``DLE EOT``) and refuse to print on paper out, cover
    open or offline. After it: ask again, so paper running out mid-ticket, a
    dropped link or a printer that swallowed the bytes and went silent is a
    failure, never a "printed". The whole job has one deadline.
    """

    def __init__(
        self,
        profile: str = DEFAULT_PROFILE,
        timeout: float = DEFAULT_TIMEOUT_S,
        status_timeout: float = DEFAULT_STATUS_TIMEOUT_S,
        query_status: bool = True,
    ) -> None:
        self.profile = profile
        self.timeout = timeout
        self.status_timeout = status_timeout
        self.query_status = query_status

    name = "printer"

    def _open(self, deadline: float) -> _Link:
        raise NotImplementedError

    def send(self, data: bytes, job: str, on_send: OnSend = None) -> PrinterStatus:
        deadline = time.monotonic() + self.timeout
        link = self._open(deadline)
        try:
            if not self.query_status:
                _sending(on_send)
                link.write(data, deadline)
                return UNKNOWN
            before = self._ask(link, min(deadline, time.monotonic() + self.status_timeout))
            _refuse_unless_printable(before, self.name)
            _sending(on_send)
            link.write(data, deadline)
            after = self._ask(link, deadline)
            if not after.answered:
                raise PrinterTimeout(
                    f"{self.name}: no answer after the ticket; it may not have printed"
                )
            _refuse_unless_printable(after, self.name)
            return after
        finally:
            link.close()

    def status(self) -> PrinterStatus:
        """Ask without printing (for the idle screen and the heartbeat)."""
        if not self.query_status:
            return UNKNOWN
        deadline = time.monotonic() + self.status_timeout  # short: a ticket may be waiting
        link = self._open(deadline)
        try:
            return self._ask(link, deadline)
        finally:
            link.close()

    def _ask(self, link: _Link, until: float) -> PrinterStatus:
        link.drain()
        link.write(QUERY_BYTES, until)
        reply = b""
        while len(reply) < len(QUERIES) and time.monotonic() < until:
            chunk = link.read(len(QUERIES) - len(reply), until)
            if not chunk:
                break
            reply += chunk
        return parse_status(reply)


def _refuse_unless_printable(status: PrinterStatus, name: str) -> None:
    if status.can_print:
        return
    if status.cover_open:
        raise CoverOpen(f"{name}: cover open")
    if status.paper is Paper.OUT:
        raise PaperOut(f"{name}: paper out")
    raise PrinterOffline(f"{name}: {status.state}")


class _TcpLink:
    def __init__(self, host: str, port: int, deadline: float) -> None:
        self.where = f"{host}:{port}"
        try:
            self.sock = socket.create_connection(
                (host, port), timeout=_remaining(deadline, self.where)
            )
        except TimeoutError as exc:
            raise PrinterTimeout(f"{self.where}: no connection") from exc
        except OSError as exc:
            raise PrinterOffline(f"{self.where}: {exc.strerror or exc}") from exc

    def write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self.sock.settimeout(_remaining(deadline, f"{self.where}: printer stopped taking data"))
            try:
                view = view[self.sock.send(view) :]
            except TimeoutError as exc:
                raise PrinterTimeout(f"{self.where}: printer stopped taking data") from exc
            except OSError as exc:
                raise PrinterOffline(f"{self.where}: {exc.strerror or exc}") from exc

    def read(self, size: int, deadline: float) -> bytes:
        try:
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            return self.sock.recv(size)
        except OSError:  # a timeout or a reset: no answer
            return b""

    def drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while self.sock.recv(4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()


class NetworkBackend(LinkBackend):
    """A printer on TCP (port 9100 by convention), one connection per job."""

    def __init__(self, host: str, port: int = 9100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.host, self.port = host, port
        self.name = f"{host}:{port}"

    def _open(self, deadline: float) -> _Link:
        return _TcpLink(self.host, self.port, deadline)


class _SerialLink:
    def __init__(self, device: str, baudrate: int, deadline: float) -> None:
        import serial  # pyserial, imported only where serial is used

        self.errors = (serial.SerialException, OSError)
        self.timeout_error = serial.SerialTimeoutException
        self.where = device
        try:
            self.port = serial.Serial(device, baudrate, timeout=0, write_timeout=0.1)
        except self.errors as exc:
            raise PrinterOffline(f"{device}: {exc}") from exc

    def write(self, data: bytes, deadline: float) -> None:
        try:
            self.port.write_timeout = _remaining(
                deadline, f"{self.where}: printer stopped taking data"
            )
            self.port.write(data)
        except self.timeout_error as exc:
            raise PrinterTimeout(f"{self.where}: printer stopped taking data") from exc
        except self.errors as exc:
            raise PrinterOffline(f"{self.where}: {exc}") from exc

    def read(self, size: int, deadline: float) -> bytes:
        try:
            self.port.timeout = max(deadline - time.monotonic(), 0.001)
            return self.port.read(size)
        except self.errors:
            return b""

    def drain(self) -> None:
        with contextlib.suppress(self.errors):
            self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()


class SerialBackend(LinkBackend):
    """A serial printer (``/dev/ttyUSB0``, ``/dev/serial0``) at a fixed baud rate."""

    def __init__(self, device: str, baudrate: int = 9600, **kwargs) -> None:
        super().__init__(**kwargs)
        self.device, self.baudrate = device, baudrate
        self.name = device

    def _open(self, deadline: float) -> _Link:
        return _SerialLink(self.device, self.baudrate, deadline)


PRINTER_CLASS = 7  # USB interface class of printers


class _UsbLink:
    def __init__(self, vendor_id: int | None, product_id: int | None) -> None:
        import usb.core  # pyusb, imported only where USB is used
        import usb.util

        self.usb = usb
        self.where = f"USB {vendor_id:04x}:{product_id:04x}" if vendor_id else "USB printer"
        try:
            if vendor_id is not None and product_id is not None:
                device = usb.core.find(idVendor=vendor_id, idProduct=product_id)
            else:
                device = next(
                    (d for d in usb.core.find(find_all=True) if _has_printer_interface(d)), None
                )
            if device is None:
                raise PrinterOffline(f"{self.where}: not connected")
            self.device = device
            if device.is_kernel_driver_active(0):
                device.detach_kernel_driver(0)
            interface = device.get_active_configuration()[(0, 0)]

            def endpoint(direction: int):
                return usb.util.find_descriptor(
                    interface,
                    custom_match=lambda e: (
                        usb.util.endpoint_direction(e.bEndpointAddress) == direction
                        and usb.util.endpoint_type(e.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK
                    ),
                )

            self.out_ep = endpoint(usb.util.ENDPOINT_OUT)
            self.in_ep = endpoint(usb.util.ENDPOINT_IN)  # None: a one-way printer
        except (usb.core.USBError, usb.core.NoBackendError) as exc:
            raise PrinterOffline(f"{self.where}: {exc}") from exc
        if self.out_ep is None:
            raise PrinterOffline(f"{self.where}: no bulk OUT endpoint")

    def write(self, data: bytes, deadline: float) -> None:
        milliseconds = int(_remaining(deadline, self.where) * 1000) or 1
        try:
            self.out_ep.write(data, timeout=milliseconds)
        except self.usb.core.USBTimeoutError as exc:
            raise PrinterTimeout(f"{self.where}: printer stopped taking data") from exc
        except self.usb.core.USBError as exc:
            raise PrinterOffline(f"{self.where}: {exc}") from exc

    def read(self, size: int, deadline: float) -> bytes:
        if self.in_ep is None:
            return b""
        milliseconds = max(int((deadline - time.monotonic()) * 1000), 1)
        try:
            return bytes(self.in_ep.read(self.in_ep.wMaxPacketSize, timeout=milliseconds))
        except self.usb.core.USBError:
            return b""

    def drain(self) -> None:
        while self.read(64, time.monotonic() + 0.005):
            pass

    def close(self) -> None:
        self.usb.util.dispose_resources(self.device)


def _has_printer_interface(device) -> bool:
    try:
        return any(
            interface.bInterfaceClass == PRINTER_CLASS for config in device for interface in config
        )
    except Exception:  # a device we may not even read the descriptors of
        return False


class UsbBackend(LinkBackend):
    """A USB printer by vendor and product id, or the first printer-class device."""

    def __init__(
        self, vendor_id: int | None = None, product_id: int | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.vendor_id, self.product_id = vendor_id, product_id
        self.name = f"USB {vendor_id:04x}:{product_id:04x}" if vendor_id else "USB printer"

    def _open(self, deadline: float) -> _Link:
        return _UsbLink(self.vendor_id, self.product_id)


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
    link = {
        "profile": profile,
        "timeout": timeout,
        "status_timeout": float(section.get("status_timeout_s", DEFAULT_STATUS_TIMEOUT_S)),
        "query_status": bool(section.get("status", True)),
    }
    if kind == "emulator":
        return EmulatorBackend(base_dir / str(section.get("out", "printed")), profile)
    if kind == "file":
        return FileBackend(str(section["path"]), profile, timeout)
    if kind == "network":
        return NetworkBackend(str(section["host"]), int(section.get("port", 9100)), **link)
    if kind == "serial":
        return SerialBackend(str(section["device"]), int(section.get("baudrate", 9600)), **link)
    if kind == "usb":
        if ("vendor_id" in section) != ("product_id" in section):
            raise PrinterConfigError("give both vendor_id and product_id, or neither (auto-detect)")
        if "vendor_id" not in section:
            return UsbBackend(**link)
        return UsbBackend(
            _int_id(section["vendor_id"], "vendor_id"),
            _int_id(section["product_id"], "product_id"),
            **link,
        )
    raise PrinterConfigError(f"unknown printer backend {kind!r}")
