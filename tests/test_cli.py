"""The console scripts: help, rendering captured bytes, the emulator, DB status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from printer.render import read_transcript
from tests.server_process import free_port

BIN = Path(sys.executable).parent


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("script", ["vuoro-kiosk", "vuoro-printer", "vuoro-sync"])
def test_every_console_script_explains_itself(script):
    result = run(script, "--help")
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {script}")


def test_test_page_then_render_round_trip(tmp_path):
    out = tmp_path / "printed"
    assert run("vuoro-printer", "test", "--out", str(out)).returncode == 0
    (captured,) = out.glob("*-T000.bin")
    result = run("vuoro-printer", "render", str(captured), str(tmp_path / "again.png"))
    assert result.returncode == 0, result.stderr
    transcript = read_transcript(tmp_path / "again.png")
    assert "ÄÖÅ äöå Õ õ Š š Ž ž" in transcript and "T000" in transcript
    codes = zxingcpp.read_barcodes(Image.open(tmp_path / "again.png"))
    assert [c.text for c in codes] == ["https://example.org/vuoro-printer-test"]


def test_render_names_a_missing_file():
    result = run("vuoro-printer", "render", "/nonexistent.bin", "/tmp/x.png")
    assert result.returncode == 2 and "No such file" in result.stderr


def test_the_emulator_is_a_network_printer(tmp_path):
    port = free_port()
    out = tmp_path / "printed"
    emulator = subprocess.Popen(
        [str(BIN / "vuoro-printer"), "emulator", "--port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "emulated printer on" in emulator.stdout.readline()
        result = run("vuoro-printer", "test", "--host", "127.0.0.1", "--port", str(port))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "test page printed; printer state: ok"
        status = run("vuoro-printer", "status", "--host", "127.0.0.1", "--port", str(port))
        assert (status.returncode, status.stdout) == (0, "ok\n")
        deadline = time.monotonic() + 20
        while not list(out.glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (png,) = out.glob("*.png")
        assert "Printer test" in read_transcript(png)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


def test_profiles_are_listed_with_their_paper_width():
    result = run("vuoro-printer", "profiles")
    rows = {line.split()[0]: line.split()[1:4] for line in result.stdout.splitlines()[1:]}
    assert rows["TM-T20II"] == ["576", "72", "native"]
    assert rows["ZJ-5870"] == ["384", "48", "image"]


def test_status_of_a_printer_that_is_not_there():
    result = run("vuoro-printer", "status", "--host", "127.0.0.1", "--port", "9")
    assert result.returncode == 1 and result.stdout.startswith("offline: 127.0.0.1:9")


def test_the_kiosk_config_names_the_printer_to_test(tmp_path, write_config):
    config = write_config()  # the emulator, writing under the current folder's "printed"
    result = subprocess.run(
        [str(BIN / "vuoro-printer"), "test", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "printed").glob("*-T000.png"))


def test_sync_status_reports_the_state_db(tmp_path):
    db = tmp_path / "state.db"
    assert run("vuoro-sync", "--db", str(db), "status").returncode == 2
    assert run("vuoro-sync", "--db", str(db), "migrate").returncode == 0
    result = run("vuoro-sync", "--db", str(db), "status")
    assert result.returncode == 0
    assert "outbox waiting: 0" in result.stdout and "integrity: ok" in result.stdout


def test_a_technician_can_reprint_the_last_ticket_without_a_window(tmp_path, write_config):
    from kiosk import config as kiosk_config
    from sync import state, tickets

    settings_path = write_config()
    settings = kiosk_config.load(settings_path)
    args = ("vuoro-kiosk", "--config", str(settings_path), "--state-dir", str(tmp_path / "s"))
    result = run(*args, "--reprint-last")
    assert result.returncode == 1 and "no ticket to reprint yet" in result.stderr

    db = state.connect(tmp_path / "s" / "state.db")
    tickets.apply_standalone_config(
        db,
        branch=settings.branch,
        ticket=settings.ticket,
        services=[{"id": s.id, "prefix": s.prefix, "names": s.names} for s in settings.services],
    )
    tickets.mark_printed(db, tickets.issue_ticket(db, "permits", language="fi").id)
    result = run(*args, "--reprint-last")
    assert (result.returncode, result.stdout) == (0, "reprinted B001\n"), result.stderr
    (png,) = (tmp_path / "s" / "printed").glob("*.png")
    assert read_transcript(png).splitlines()[0].strip() == "KOPIO"
