"""An emulated thermal printer on a real link (TCP like port 9100, or a serial pty).

It interprets what it receives with :class:`printer.render.EscPosRenderer`,
answers real-time status queries (``DLE EOT n``), writes every cut ticket as
``.bin`` + ``.png``, and can be told to misbehave the ways real printers do:
paper near its end, paper out, cover open, hung, dropping the connection,
a slow link, or never answering status queries.
"""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from printer.escpos_lib import profile_codepages, profile_media_width
from printer.layout import DEFAULT_PROFILE
from printer.render import EscPosRenderer, Ticket
from printer.status import reply_for

log = logging.getLogger("vuoro.printer.emulator")

HANG_LIMIT_S = 600  # even a hung emulator lets go eventually: tests must end


@dataclass
class Faults:
    paper_near_end: bool = False
    paper_out: bool = False
    cover_open: bool = False
    hang: bool = False  # accepts, never reads, never answers
    mute: bool = False  # prints, but never answers status queries
    drop_after: int | None = None  # closes the link after this many bytes
    bytes_per_second: int | None = None  # a slow link

    @property
    def offline(self) -> bool:
        return self.paper_out or self.cover_open


class EmulatedPrinter:
    """The printer's brain, link-agnostic: bytes in, replies and paper out."""

    def __init__(
        self, out_dir: Path, profile: str = DEFAULT_PROFILE, faults: Faults | None = None
    ) -> None:
        self.out_dir = Path(out_dir)
        self.profile = profile
        self.faults = faults or Faults()
        self.printed: list[Path] = []
        self._start_job()

    def _start_job(self) -> None:
        self._replies = bytearray()
        self._received = bytearray()
        self._renderer = EscPosRenderer(
            profile_media_width(self.profile),
            profile_codepages(self.profile),
            on_status_query=self._answer,
        )

    def _answer(self, n: int) -> None:
        if self.faults.mute:
            return
        f = self.faults
        reply = reply_for(cover_open=f.cover_open, paper_out=f.paper_out, near_end=f.paper_near_end)
        if n in reply:
            self._replies.append(reply[n])

    def receive(self, chunk: bytes) -> bytes:
        """Take bytes from the link; return what the printer sends back."""
        self._received += chunk
        for page in self._renderer.feed(chunk):
            self._keep(page)
        replies, self._replies = bytes(self._replies), bytearray()
        return replies

    def end_of_job(self) -> None:
        """The link closed: print what is left (a ticket with no cut stays uncut)."""
        tail = self._renderer.finish()
        if tail is not None:
            self._keep(tail)
        self._start_job()

    def _keep(self, page: Ticket) -> None:
        if self.faults.offline:
            log.info(
                "offline (%s): nothing printed",
                "cover open" if self.faults.cover_open else "paper out",
            )
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{datetime.now():%Y%m%d-%H%M%S-%f}-{_job_name(page)}"
        (self.out_dir / f"{stem}.bin").write_bytes(bytes(self._received))
        self._received = bytearray()
        tmp = self.out_dir / f".{stem}.png.tmp"
        page.save_png(tmp)
        path = tmp.rename(self.out_dir / f"{stem}.png")
        self.printed.append(path)
        log.info("printed %s%s", path.name, "" if page.cut else " (not cut)")


def _job_name(page: Ticket) -> str:
    """The ticket's number when one stands on a line of its own (``A042``, or
    ``AK1-07`` from a kiosk's own series), else "job"."""
    for line in page.lines:
        if _NUMBER.fullmatch(line):
            return line
    return "job"


_NUMBER = re.compile(r"[A-Z]{1,3}(?:[A-Z0-9]{1,3}-)?[0-9]{2,4}")


def serve_connection(printer: EmulatedPrinter, conn: socket.socket) -> None:
    """One client: read, answer, print, misbehave as told."""
    faults = printer.faults
    if faults.hang:
        _hold_without_reading(conn)
        return
    if faults.bytes_per_second:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    received = 0
    conn.settimeout(30)
    try:
        while True:
            size = max(1, faults.bytes_per_second // 10) if faults.bytes_per_second else 65536
            chunk = conn.recv(size)
            if not chunk:
                break
            if faults.drop_after is not None and received + len(chunk) >= faults.drop_after:
                printer.receive(chunk[: max(faults.drop_after - received, 0)])
                log.info("dropping the connection after %d bytes", faults.drop_after)
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                return  # closing with linger 0 sends a reset
            received += len(chunk)
            reply = printer.receive(chunk)
            if reply:
                conn.sendall(reply)
            if faults.bytes_per_second:
                time.sleep(len(chunk) / faults.bytes_per_second)
    except (TimeoutError, ConnectionError) as exc:
        log.info("link ended: %s", exc)
    finally:
        printer.end_of_job()


def _hold_without_reading(conn: socket.socket) -> None:
    """A hung printer: takes nothing, answers nothing, until the client gives up."""
    deadline = time.monotonic() + HANG_LIMIT_S
    while time.monotonic() < deadline:
        try:
            if conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                return  # the client closed
        except BlockingIOError:
            pass
        except OSError:
            return
        time.sleep(0.2)


def serve_tcp(
    printer: EmulatedPrinter,
    host: str,
    port: int,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Accept one client at a time, as a real printer does."""
    with socket.create_server((host, port)) as server:
        if ready:
            ready(server.getsockname()[1])
        while True:
            conn, _ = server.accept()
            with conn:
                serve_connection(printer, conn)


def serve_pty(printer: EmulatedPrinter, ready: Callable[[str], None] | None = None) -> None:
    """A serial printer: the client opens the printed device path (a pty)."""
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    if ready:
        ready(path)
    faults = printer.faults
    while True:
        readable, _, _ = select.select([master], [], [], 1.0)
        if not readable:
            continue
        try:
            chunk = os.read(
                master, max(1, faults.bytes_per_second // 10) if faults.bytes_per_second else 4096
            )
        except OSError:  # the client closed the device; wait for the next one
            time.sleep(0.05)
            continue
        if faults.hang:
            continue
        reply = printer.receive(chunk)
        if reply:
            os.write(master, reply)
        if faults.bytes_per_second:
            time.sleep(len(chunk) / faults.bytes_per_second)
