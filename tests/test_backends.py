"""Backends through real files, FIFOs and sockets; errors are Vuoro's own."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from printer.backends import EmulatorBackend, FileBackend, NetworkBackend, open_backend
from printer.errors import PrinterConfigError, PrinterOffline, PrinterTimeout
from printer.render import read_transcript
from tests.server_process import free_port

TICKET = b"\x1b@\x1ba\x01A001\n\x1dV\x00"


def test_the_emulator_keeps_the_bytes_and_renders_the_paper(tmp_path):
    EmulatorBackend(tmp_path / "out").send(TICKET, "A001")
    (bin_file,) = (tmp_path / "out").glob("*-A001.bin")
    (png,) = (tmp_path / "out").glob("*-A001.png")
    assert bin_file.read_bytes() == TICKET
    assert read_transcript(png) == "A001"
    assert not list((tmp_path / "out").glob(".*")), "no temporary files left behind"


def test_job_names_cannot_escape_the_output_folder(tmp_path):
    EmulatorBackend(tmp_path / "out").send(TICKET, "../../etc/passwd")
    assert [p.parent for p in (tmp_path / "out").iterdir()] == [tmp_path / "out"] * 2


def test_an_unwritable_emulator_folder_is_printer_offline(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PrinterOffline):
        EmulatorBackend(blocker / "out").send(TICKET, "A001")


def test_a_device_file_gets_exactly_the_bytes(tmp_path):
    device = tmp_path / "lp0"
    device.touch()
    FileBackend(str(device)).send(TICKET, "A001")
    assert device.read_bytes() == TICKET


def test_a_missing_device_is_offline(tmp_path):
    with pytest.raises(PrinterOffline, match="No such file"):
        FileBackend(str(tmp_path / "lp9")).send(TICKET, "A001")


def test_a_device_nobody_reads_times_out_instead_of_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(PrinterTimeout, match="nobody is reading"):
        FileBackend(str(fifo), timeout=0.3).send(TICKET, "A001")


def test_a_device_that_stops_reading_times_out(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opens, never reads
    try:
        with pytest.raises(PrinterTimeout, match="stopped taking data"):
            FileBackend(str(fifo), timeout=0.3).send(b"x" * (1 << 20), "big")
    finally:
        os.close(reader)


def test_a_one_way_network_printer_receives_the_bytes():
    server = socket.create_server(("127.0.0.1", 0))
    received = []

    def accept():
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(4096):
                received.append(chunk)

    thread = threading.Thread(target=accept)
    thread.start()
    backend = NetworkBackend("127.0.0.1", server.getsockname()[1], timeout=5, query_status=False)
    assert backend.send(TICKET, "A001").state == "unknown", "it cannot say more"
    thread.join(timeout=5)
    server.close()
    assert b"".join(received) == TICKET


def test_a_network_printer_that_is_off_is_offline():
    port = free_port()  # nothing listens there
    with pytest.raises(PrinterOffline, match=f"127.0.0.1:{port}"):
        NetworkBackend("127.0.0.1", port, timeout=1).send(TICKET, "A001")


def test_config_sections_choose_the_backend(tmp_path):
    assert isinstance(open_backend({"backend": "emulator"}, tmp_path), EmulatorBackend)
    assert open_backend({}, tmp_path).out_dir == Path(tmp_path / "printed")
    net = open_backend({"backend": "network", "host": "10.0.0.5", "timeout_s": 2}, tmp_path)
    assert (net.host, net.port, net.timeout, net.query_status) == ("10.0.0.5", 9100, 2.0, True)
    usb = open_backend({"backend": "usb", "vendor_id": "04b8", "product_id": "0e15"}, tmp_path)
    assert (usb.vendor_id, usb.product_id) == (0x04B8, 0x0E15)
    auto = open_backend({"backend": "usb", "status": False}, tmp_path)
    assert (auto.vendor_id, auto.name, auto.query_status) == (None, "USB printer", False)
    serial = open_backend({"backend": "serial", "device": "/dev/ttyUSB0"}, tmp_path)
    assert (serial.device, serial.baudrate) == ("/dev/ttyUSB0", 9600)
    with pytest.raises(PrinterConfigError, match="both vendor_id and product_id"):
        open_backend({"backend": "usb", "vendor_id": "04b8"}, tmp_path)
    with pytest.raises(PrinterConfigError, match="hex id"):
        open_backend({"backend": "usb", "vendor_id": "epson", "product_id": 1}, tmp_path)
    with pytest.raises(PrinterConfigError, match="unknown printer backend"):
        open_backend({"backend": "carrier-pigeon"}, tmp_path)
