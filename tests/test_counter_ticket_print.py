"""A ticket staff give at a counter, printed at a kiosk of the branch: a real
server, a paired kiosk's sync daemon and printing path (tests/counter_print_process.py)
as processes of their own, and the ESC/POS emulator as the network printer."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import zxingcpp
from PIL import Image

from printer.escpos_lib import profile_codepages, profile_media_width
from printer.render import render_bytes
from server.storage import Rejected
from sync import cli as sync_cli
from sync import commands, devices, protocol, state
from sync.credentials import Credentials
from tests.emulator_process import Emulator
from tests.server_process import SyncProcess, sync_once, wait_until

ROOT = Path(__file__).resolve().parent.parent
#: the kiosk's side is the point here; the storage verbs run on both databases
#: in tests/test_counter_ticket_print_storage.py
SERVER_DATABASES = ("sqlite",)


class KioskPrinting:
    """``python -m tests.counter_print_process``: the kiosk's printing path."""

    def __init__(self, kiosk_dir: Path, printer: Emulator, timeout_s: float = 2) -> None:
        self.log = (kiosk_dir / "printing.log").open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.counter_print_process",
                str(kiosk_dir),
                printer.address,
                str(timeout_s),
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=ROOT,
        )
        self.results: list[tuple[str, str]] = []
        self.checked = threading.Event()
        line = self.process.stdout.readline()
        assert line == "ready\n", line
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            what, rest = line.split(maxsplit=1)
            if what == "checked":
                self.checked.set()
                continue
            command, result = rest.split(maxsplit=1)
            self.results.append((command, result.strip()))

    def wait_checked(self) -> None:
        """Until it asked the printer once (and looked for commands five times)."""
        assert self.checked.wait(timeout=30), "the kiosk never checked its printer"

    def wait_results(self, count: int) -> list[tuple[str, str]]:
        wait_until(lambda: len(self.results) >= count, timeout=30, what=f"{count} result(s)")
        return self.results

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=20) in (0, -signal.SIGKILL)
        self.reader.join(timeout=5)
        self.log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=20)
        self.reader.join(timeout=5)
        self.log.close()


@pytest.fixture
def counter(own_branch, tmp_path):
    """The test's branch with its kiosk "door" paired, a printer emulator, and
    what the counter screen calls."""
    printer = Emulator(tmp_path / "printed", port=0)
    yield own_branch, printer
    printer.stop()


def kiosk_rows(kiosk_dir: Path, query: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{kiosk_dir / 'state.db'}?mode=ro", uri=True)
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def read_paper(png: Path):
    """What the emulator printed: the lines and native QR codes its renderer read
    from the raw bytes, and what a phone's QR reader makes of the picture."""
    data = png.with_suffix(".bin").read_bytes()
    profile = "TM-T20II"
    (page,) = render_bytes(data, profile_media_width(profile), profile_codepages(profile))
    scanned = [code.text for code in zxingcpp.read_barcodes(Image.open(png))]
    return page, scanned


@pytest.mark.screenshot
def test_a_ticket_given_at_the_counter_prints_at_the_kiosk_with_its_qr_code(counter, shots):
    branch, printer = counter
    storage, kiosk_dir = branch.server.storage, branch.kiosk_dir
    daemon = SyncProcess(kiosk_dir)
    kiosk = KioskPrinting(kiosk_dir, printer)
    db = state.connect(kiosk_dir / "state.db")
    try:
        kiosk.wait_checked()
        # the admin menu's "sync now" (here: the test) wakes the daemon for a heartbeat
        devices.request_sync(db)
        wait_until(lambda: storage.kiosks(branch.id)[0]["printer"] == "ok", what="printer ok")
        given = storage.issue_at_counter(branch.id, "payments", None)
        assert storage.print_at_kiosk(branch.id, given["id"], language="fi") == "door"
        assert storage.print_outcome(branch.id, given["id"])["state"] == "queued"
        devices.request_sync(db)
        (png,) = printer.wait_printed(1)
        assert kiosk.wait_results(1)[0][1] == "printed"
        devices.request_sync(db)
        wait_until(
            lambda: storage.print_outcome(branch.id, given["id"])["state"] == "printed",
            what="the printed result reported with the next heartbeat",
        )
    finally:
        db.close()
        kiosk.stop()
        daemon.stop()
    page, scanned = read_paper(png)
    url = f"{branch.server.url}/t/{given['public_token']}"
    assert given["display"] in page.lines, page.lines
    assert "Annettu palvelupisteessä" in page.lines, "marked, in the ticket's language"
    assert page.qr_codes == [url] and scanned == [url]
    assert "Maksut" in " ".join(page.lines), "the service's Finnish name"
    (shots / "tickets").mkdir(exist_ok=True)
    shutil.copy(png, shots / "tickets" / "counter-ticket.png")
    # never a number of the kiosk's own, never in its outbox: the server has it
    assert kiosk_rows(kiosk_dir, "SELECT COUNT(*) FROM tickets") == [(0,)]
    assert kiosk_rows(kiosk_dir, "SELECT COUNT(*) FROM outbox") == [(0,)]
    assert branch.server.sql("SELECT COUNT(*) FROM tickets WHERE branch_id = ?", [branch.id]) == [
        (1,)
    ]
    # the ticket page the QR code opens is the counter's ticket
    public = requests.get(
        f"{branch.server.url}/api/v1/tickets/{given['public_token']}", timeout=10
    ).json()
    assert public["number"] == given["display"] and public["status"] == "waiting"


def test_no_kiosk_that_can_print_means_none(counter, tmp_path):
    branch, _printer = counter
    storage, kiosk_dir = branch.server.storage, branch.kiosk_dir
    given = storage.issue_at_counter(branch.id, "payments", None)
    with pytest.raises(Rejected):
        storage.print_at_kiosk(branch.id, "no-such-ticket")
    with pytest.raises(Rejected):  # a command that needs its ticket is not an operator's
        storage.send_command(storage.kiosks(branch.id)[0]["id"], "print_ticket")
    # the paired kiosk heartbeats (printer not yet asked: unknown, still worth a try)
    sync_once(kiosk_dir)
    assert storage.print_at_kiosk(branch.id, given["id"]) == "door"
    # its printer out of paper, as the kiosk recorded it: the heartbeat tells
    db = state.connect(kiosk_dir / "state.db")
    devices.record(db, "printer", "paper_out", "printer: paper out")
    sync_once(kiosk_dir)
    assert storage.print_at_kiosk(branch.id, given["id"]) is None
    # switched out of order from its admin menu
    devices.record(db, "printer", "ok")
    devices.set_out_of_order(db, True)
    sync_once(kiosk_dir)
    assert storage.print_at_kiosk(branch.id, given["id"]) is None
    devices.set_out_of_order(db, False)
    sync_once(kiosk_dir)
    assert storage.print_at_kiosk(branch.id, given["id"]) == "door"
    # a kiosk of an older version: its heartbeat does not say it accepts print_ticket
    old = branch.server.kiosk_token("old", branch=branch.id)
    reply = requests.post(
        f"{branch.server.url}{protocol.API}/kiosk/heartbeat",
        json={"printer": "ok", "version": "0.9"},
        headers={"Authorization": f"Bearer {old}"},
        timeout=10,
    )
    assert reply.status_code == 200
    kiosks = {k["name"]: k["id"] for k in storage.kiosks(branch.id)}
    assert storage.revoke(kiosks["door"])
    assert storage.print_at_kiosk(branch.id, given["id"]) is None, "revoked; the old one cannot"
    db.close()


def test_a_failing_printer_prints_nothing_and_staff_are_told(counter, tmp_path, capsys):
    branch, _printer = counter
    storage, kiosk_dir = branch.server.storage, branch.kiosk_dir
    sync_once(kiosk_dir)  # printer state not known yet: the kiosk may still print
    given = storage.issue_at_counter(branch.id, "permits", None)
    assert storage.print_at_kiosk(branch.id, given["id"]) == "door"
    empty = Emulator(tmp_path / "empty", "--paper-out", port=0)
    kiosk = KioskPrinting(kiosk_dir, empty)
    try:
        sync_once(kiosk_dir)  # the command arrives
        assert kiosk.wait_results(1)[0][1] == "failed:paper_out"
        sync_once(kiosk_dir)  # the result goes back
    finally:
        kiosk.stop()
        empty.stop()
    assert empty.printed() == []
    outcome = storage.print_outcome(branch.id, given["id"])
    assert outcome == {"kiosk": "door", "state": "failed", "detail": "paper_out"}
    # that heartbeat said the printer is out of paper: no kiosk is asked now
    assert storage.print_at_kiosk(branch.id, given["id"]) is None
    # and the technician's `vuoro-sync status` says so
    capsys.readouterr()
    assert sync_cli.main(["--state-dir", str(kiosk_dir), "status"]) == 0
    assert "counter tickets failed:paper_out: 1" in capsys.readouterr().out


def test_a_counter_ticket_prints_once_across_restarts_and_a_kill_mid_print(counter, tmp_path):
    branch, printer = counter
    storage, kiosk_dir = branch.server.storage, branch.kiosk_dir
    sync_once(kiosk_dir)
    first = storage.issue_at_counter(branch.id, "payments", None)
    assert storage.print_at_kiosk(branch.id, first["id"]) == "door"
    sync_once(kiosk_dir)
    kiosk = KioskPrinting(kiosk_dir, printer)
    assert kiosk.wait_results(1)[0][1] == "printed"
    kiosk.stop()
    assert len(printer.wait_printed(1)) == 1
    # a kill while the bytes go to a slow printer: handed, so never printed again
    slow = Emulator(tmp_path / "slow", "--slow", "40", port=0)
    second = storage.issue_at_counter(branch.id, "payments", None)
    assert storage.print_at_kiosk(branch.id, second["id"]) == "door"
    sync_once(kiosk_dir)
    kiosk = KioskPrinting(kiosk_dir, slow, timeout_s=60)  # killed long before
    wait_until(
        lambda: (
            kiosk_rows(kiosk_dir, "SELECT COUNT(*) FROM commands WHERE handed_at IS NOT NULL")
            == [(2,)]
        ),
        what="the second ticket handed to the printer",
    )
    kiosk.kill()
    slow.stop()
    # taken by a kiosk that died before it reached the printer: printed after the restart
    third = storage.issue_at_counter(branch.id, "payments", None)
    assert storage.print_at_kiosk(branch.id, third["id"]) == "door"
    sync_once(kiosk_dir)
    db = state.connect(kiosk_dir / "state.db")
    (taken,) = commands.take(db, (commands.PRINT_TICKET,))  # ... and the kiosk dies here
    db.close()
    kiosk = KioskPrinting(kiosk_dir, printer)
    assert kiosk.wait_results(1) == [(taken.id, "printed")]
    kiosk.wait_checked()  # it has looked for more five times since
    kiosk.stop()
    assert len(kiosk.results) == 1, "the first and the second not printed again"
    assert len(printer.wait_printed(2)) == 2
    sync_once(kiosk_dir)
    assert storage.print_outcome(branch.id, first["id"])["state"] == "printed"
    assert storage.print_outcome(branch.id, second["id"]) == {
        "kiosk": "door",
        "state": "unknown",
        "detail": "the kiosk stopped while printing",
    }
    assert storage.print_outcome(branch.id, third["id"])["state"] == "printed"


class Tamper:
    """Passes the kiosk's requests to the real server and adds ``extra`` to the
    commands of each heartbeat reply: a server gone wrong, or hostile."""

    def __init__(self, upstream: str, extra: list) -> None:
        tamper = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:
                pass

            def do_GET(self) -> None:
                self.forward("GET")

            def do_POST(self) -> None:
                self.forward("POST")

            def forward(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = requests.request(
                    method,
                    upstream + self.path,
                    data=body,
                    headers={
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() in ("authorization", "content-type", "if-none-match")
                    },
                    timeout=10,
                )
                content = reply.content
                if self.path.endswith("/kiosk/heartbeat") and reply.status_code == 200:
                    doc = reply.json()
                    doc["commands"] = doc["commands"] + tamper.extra
                    content = json.dumps(doc).encode()
                self.send_response(reply.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                if "etag" in reply.headers:
                    self.send_header("ETag", reply.headers["etag"])
                self.end_headers()
                self.wfile.write(content)

        self.extra = extra
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


GOOD = {
    "ticket_id": "t-1",
    "number": "A900",
    "service_id": "payments",
    "url": "https://queue.example.org/t/AAAAAAAAAAAAAAAAAAAAAA",
    "issued_at": "2026-12-02T10:00:00+00:00",
}
HOSTILE = [
    {"id": "901", "kind": "self_destruct"},  # a kind of a newer protocol
    {"id": "902", "kind": "print_ticket"},  # no data
    {"id": "903", "kind": "print_ticket", "data": {**GOOD, "number": "A" * 5000}},
    {"id": "904", "kind": "print_ticket", "data": {**GOOD, "number": "A9\x1b@\n"}},
    {"id": "905", "kind": "print_ticket", "data": {**GOOD, "url": "javascript:alert(1)"}},
    {"id": "906", "kind": "print_ticket", "data": {k: v for k, v in GOOD.items() if k != "url"}},
    {"id": "907", "kind": "print_ticket", "data": "not an object"},
    {"id": "x" * 10_000, "kind": "reboot"},
    {"kind": "reload"},
    ["not", "a", "command"],
    {"id": "908", "kind": "print_ticket", "data": {**GOOD, "issued_at": "yesterday"}},
    {
        "id": "909",
        "kind": "print_ticket",
        "data": {**GOOD, "service_names": {"fi": "Äö 🎫 עברית " * 3}, "number": "Ä12"},
    },
]


def test_hostile_commands_are_logged_and_skipped_and_the_kiosk_keeps_going(counter, tmp_path):
    branch, printer = counter
    storage, kiosk_dir = branch.server.storage, branch.kiosk_dir
    tamper = Tamper(branch.server.url, HOSTILE)
    credentials = Credentials.load(kiosk_dir)
    Credentials(**{**credentials.__dict__, "server": tamper.url}).save(kiosk_dir)
    try:
        sync_once(kiosk_dir)  # the reply still counts: the queue, the clock
        assert kiosk_rows(kiosk_dir, "SELECT COUNT(*) FROM queue_snapshot") != [(0,)]
        rows = dict(kiosk_rows(kiosk_dir, "SELECT id, COALESCE(result, '') FROM commands"))
        for skipped in ("901", "902", "903", "904", "905", "906", "907", "908"):
            assert rows[skipped].startswith("skipped:"), (skipped, rows[skipped])
        assert rows["909"] == "", "odd but valid: printed, its emoji left out"
        assert not any(len(k) > 64 for k in rows), "no id it could not answer is kept"
        # data that got into the state DB unchecked (an older daemon, a damaged row)
        db = state.connect(kiosk_dir / "state.db")
        db["commands"].insert(
            {
                "id": "910",
                "kind": "print_ticket",
                "received_at": state.iso(state.now_utc()),
                "data": json.dumps({"number": ["A1"], "url": None}),
            }
        )
        db["commands"].insert(
            {"id": "911", "kind": "print_ticket", "received_at": "x", "data": "{not json"}
        )
        db.close()
        kiosk = KioskPrinting(kiosk_dir, printer)
        try:
            results = dict(kiosk.wait_results(3))
        finally:
            kiosk.stop()
        assert results["909"] == "printed"
        assert results["910"].startswith("skipped:invalid")
        assert results["911"].startswith("skipped:invalid")
        assert len(printer.wait_printed(1)) == 1
        page, _ = read_paper(printer.printed()[0])
        assert "Ä12" in page.lines
        sync_once(kiosk_dir)  # the results go back; the server ignores ids not its own
        assert kiosk_rows(
            kiosk_dir,
            "SELECT COUNT(*) FROM commands WHERE reported_at IS NULL AND result IS NOT NULL",
        ) == [(0,)]
    finally:
        Credentials(**credentials.__dict__).save(kiosk_dir)
        tamper.close()
    assert storage.kiosks(branch.id)[0]["last_seen_at"] is not None
    log = (kiosk_dir / "printing.log").read_text()
    assert "Traceback" not in log, log


def test_a_reply_with_a_kind_this_kiosk_does_not_know_still_counts():
    """Protocol v1 grows kinds: an unknown kind (or a bad row) is kept apart,
    answered when it has an id, and never refuses the reply."""
    reply = protocol.HeartbeatResponse.model_validate_json(
        json.dumps(
            {
                "server_time": "2026-12-02T10:00:00+00:00",
                "queue": {},
                "commands": [
                    {"id": "1", "kind": "reload"},
                    {"id": "2", "kind": "print_ticket", "data": GOOD},
                    {"id": "3", "kind": "teleport", "data": {"where": "mars"}},
                    {"id": 4, "kind": "reboot"},
                ],
            }
        )
    )
    kinds = [getattr(c, "kind", None) or c.reason for c in reply.commands]
    assert kinds == ["reload", "print_ticket", "unknown kind", "invalid:id"]
