"""What a Raspberry Pi meets in its first months, with the real kiosk and real processes:
a wrong clock at boot (libfaketime), a kill while the printer is still taking
the ticket, a second kiosk process, a damaged state DB, a full disk (a small
tmpfs). Each fault used to lose a customer; each test fails on that code.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import zxingcpp
from PIL import Image

from printer.render import read_transcript
from tests.chaos import forget_server_time, wrong_clock
from tests.conftest import TWO_SERVICES
from tests.kiosk_driver import Kiosk, button_center, ocr_text
from tests.server_process import DEMO_BRANCH, Server, SyncProcess, run, wait_until

pytestmark = pytest.mark.ui

ZONE = ZoneInfo("Europe/Helsinki")


def issue_in_process(state_dir: Path, service: str, count: int, env: dict) -> list[str]:
    """The kiosk's ticket path (tests/kiosk_process.py) under ``env``'s clock."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.kiosk_process", str(state_dir), service, str(count)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def tap_one(kiosk: Kiosk, screen, count: int) -> list[dict]:
    """Tap the first service; the kiosk's tickets once ``count`` are decided."""
    screen.click(*button_center(0, 2))
    return kiosk.wait_for_tickets(count, ("printed", "print_failed", "void"))


def a_first_day(screen, state: Path, config: Path) -> list[dict]:
    """The kiosk as it ran before the fault: one ticket, then a clean stop."""
    kiosk = Kiosk(screen, state, config)
    try:
        return tap_one(kiosk, screen, 1)
    finally:
        kiosk.stop()


# -- 1. a wrong clock at boot -----------------------------------------------------


def test_a_standalone_kiosk_on_a_wrong_clock_never_gives_two_customers_one_number(
    screen, write_config, tmp_path
):
    """The same real morning: a boot on 2020's clock, one on yesterday's shutdown
    time, one after NTP. Three customers, three different numbers, no false date."""
    config = write_config()
    state = tmp_path / "state"
    clocks = (wrong_clock("@2020-01-01 10:00:00"), wrong_clock("-1d"), {})
    for count, env in enumerate(clocks, start=1):
        kiosk = Kiosk(screen, state, config, env=env)
        try:
            rows = tap_one(kiosk, screen, count)
        finally:
            kiosk.stop()
    numbers = [r["display"] for r in rows]
    assert numbers == ["AX-01", "AX-02", "A001"], "unsure of the day: the kiosk's own series"
    assert [r["time_source"] for r in rows] == ["unsure", "unsure", "system"]
    papers = {r["display"]: read_transcript(_png(state, r["display"])) for r in rows}
    today = datetime.now(ZONE)
    assert today.strftime("%d.%m.%Y") in papers["A001"], "a synced clock prints the date"
    for unsure in ("AX-01", "AX-02"):
        assert "2020" not in papers[unsure] and ".20" not in papers[unsure], papers[unsure]


def _png(state: Path, display: str) -> Path:
    matches = list((state / "printed").glob(f"*-{display}.png"))
    assert len(matches) == 1, f"one PNG for {display}"
    return matches[0]


def test_a_paired_kiosk_on_a_wrong_clock_puts_every_ticket_in_todays_queue(branch, tmp_path):
    """Nine customers on one real morning, the kiosk's clock first in 2020, then on
    yesterday's shutdown time, then corrected by the server's heartbeat: all nine
    are in today's queue, staff call all nine, no number is held twice."""
    server, kiosk_dir = branch
    forget_server_time(kiosk_dir)  # a new boot: what it learned of the server is old
    issued = issue_in_process(kiosk_dir, "payments", 3, wrong_clock("@2020-01-01 10:00:00"))
    issued += issue_in_process(kiosk_dir, "payments", 3, wrong_clock("-1d"))
    sync = SyncProcess(kiosk_dir)  # its own wall clock is right; the kiosk's is not
    try:
        wait_until(lambda: _delivered(kiosk_dir) == 6, what="the offline tickets delivered")
        wait_until(lambda: _server_time_known(kiosk_dir), what="a heartbeat")
        issued += issue_in_process(kiosk_dir, "payments", 3, wrong_clock("-1d"))
        wait_until(lambda: _delivered(kiosk_dir) == 9, what="all delivered")
    finally:
        sync.stop()
    displays = issued[0::3]
    sources = issued[2::3]
    assert sources == ["unsure"] * 6 + ["server"] * 3, issued
    assert len(set(displays)) == 9, f"two customers hold one number: {displays}"
    rows = server.sql("SELECT display, day, status FROM tickets ORDER BY queued_at")
    today = datetime.now(ZONE).date().isoformat()
    assert {(day, status) for _, day, status in rows} == {(today, "waiting")}, rows
    called = [server.storage.call_next("demo", "1", finish="served") for _ in range(10)]
    assert sorted(c["number"] for c in called if c) == sorted(displays)
    assert called[-1] is None


def _delivered(kiosk_dir: Path) -> int:
    with sqlite3.connect(kiosk_dir / "state.db") as db:
        return db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NOT NULL").fetchone()[
            0
        ]


def _server_time_known(kiosk_dir: Path) -> bool:
    with sqlite3.connect(kiosk_dir / "state.db") as db:
        row = db.execute("SELECT value FROM config WHERE key = 'server_clock'").fetchone()
    return row is not None and "mono_ns" in row[0]


# -- 2. a kill between "bytes sent" and "printer confirmed" --------------------------


def test_a_kill_while_the_printer_takes_the_ticket_keeps_it_valid(
    screen, write_config, emulator, tmp_path
):
    """The paper comes out of the kernel's buffer after the kill: the ticket must
    be in the queue, not void."""
    slow = emulator("--slow", "120")  # bytes per second: a ticket takes seconds
    host, port = slow.address.rsplit(":", 1)
    config = write_config(
        TWO_SERVICES.replace(
            'backend = "emulator"',
            f'backend = "network"\nhost = "{host}"\nport = {port}\ntimeout_s = 60',
        ),
        name="slow.toml",
    )
    state = tmp_path / "state"
    kiosk = Kiosk(screen, state, config)
    try:
        screen.click(*button_center(0, 2))
        wait_until(lambda: _handed(state), what="the bytes handed to the printer")
        assert kiosk.tickets()[0]["state"] == "committed", "still printing"
    finally:
        kiosk.kill()
    assert slow.wait_printed(1), "the paper came out after the kill"
    kiosk = Kiosk(screen, state, write_config())
    try:
        assert "kept 1 ticket(s) whose print was cut short (the paper may exist): A001" in kiosk.log
        rows = tap_one(kiosk, screen, 2)
    finally:
        kiosk.stop()
    assert [(r["display"], r["state"]) for r in rows] == [
        ("A001", "print_failed"),
        ("A002", "printed"),
    ]
    assert "outcome unknown" in rows[0]["print_error"]


def _handed(state: Path) -> bool:
    with sqlite3.connect(state / "state.db", timeout=10) as db:
        return (
            db.execute("SELECT COUNT(*) FROM tickets WHERE handed_at IS NOT NULL").fetchone()[0]
            == 1
        )


# -- 3. a second kiosk process on the same state directory ----------------------------


def test_a_second_kiosk_on_the_same_state_directory_refuses_to_start(
    screen, write_config, hung_printer_config, tmp_path
):
    state = tmp_path / "state"
    first = Kiosk(screen, state, hung_printer_config)  # its ticket stays in flight
    try:
        screen.click(*button_center(0, 2))
        first.wait_for_tickets(1, ("committed",))
        second = subprocess.run(
            [
                str(Path(sys.executable).parent / "vuoro-kiosk"),
                "--state-dir",
                str(state),
                "--config",
                str(write_config()),
                "--windowed",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=os.environ | screen.env(),
        )
        assert second.returncode == 4, second.stderr
        assert f"another process (pid {first.process.pid}) is using {state}" in second.stderr
        assert first.tickets()[0]["state"] == "committed", "the first one's ticket is untouched"
    finally:
        first.kill()


# -- 4. a damaged state DB --------------------------------------------------------------


def test_a_damaged_state_db_is_set_aside_salvaged_and_numbering_goes_on(
    screen, write_config, tmp_path
):
    config = write_config()
    state = tmp_path / "state"
    assert a_first_day(screen, state, config)[0]["display"] == "A001"
    _grow(state, 400)  # a day's worth of tickets: pages enough to damage one in the middle
    db_file = state / "state.db"
    with open(db_file, "r+b") as f:  # bytes overwritten in the middle, as a failing card does
        f.seek(db_file.stat().st_size // 2)
        f.write(b"\xde\xad\xbe\xef" * 4096)
    status = subprocess.run(
        [str(Path(sys.executable).parent / "vuoro-sync"), "--state-dir", str(state), "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 3 and "the state DB is damaged" in status.stderr, status.stderr
    assert "Traceback" not in status.stderr

    kiosk = Kiosk(screen, state, config)
    try:
        assert "is damaged" in kiosk.log and "salvaged" in kiosk.log
        salvaged = kiosk.tickets()
        rows = tap_one(kiosk, screen, len(salvaged) + 1)
    finally:
        kiosk.stop()
    kept = list(state.glob("state.db.damaged-*Z"))
    assert kept and kept[0].stat().st_size > 0, "the damaged file is kept for diagnosis"
    assert 300 < len(salvaged) < 401, "most of the 401 tickets are salvaged"
    newest = max(rows, key=lambda r: r["kiosk_seq"])
    assert newest["state"] == "printed"
    assert newest["number"] == max(r["number"] for r in salvaged) + 101, (
        "numbering goes on past any number that may be lost with the damaged pages"
    )
    with sqlite3.connect(state / "state.db") as db:
        undelivered = db.execute(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()[0]
        problem = db.execute(
            "SELECT state, detail FROM device_status WHERE component = 'state_db'"
        ).fetchone()
    assert undelivered >= len(rows) - 1, "the outbox of every salvaged ticket is kept"
    assert problem[0] == "recovered" and "damaged state DB kept as" in problem[1]
    out = run("vuoro-sync", "--state-dir", str(state), "status")
    assert "problem: state_db recovered" in out


def _grow(state: Path, count: int) -> None:
    from sync import state as state_db
    from sync import tickets

    db = state_db.connect(state / "state.db")
    for _ in range(count):
        ticket = tickets.issue_ticket(db, "payments", language="fi")
        tickets.mark_handed(db, ticket.id)
        tickets.mark_printed(db, ticket.id)
    db.close()


# -- 5. a full disk at start-up ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs: a card that fills up (root is needed to mount it)."""
    mount = tmp_path / "card"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"mounting a tmpfs needs root: {done.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_at_start_shows_out_of_order_and_recovers_when_space_returns(
    screen, write_config, small_disk
):
    config = write_config()
    state = small_disk / "state"
    a_first_day(screen, state, config)
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    kiosk = Kiosk(screen, state, config, log_dir=small_disk.parent)  # the journal is elsewhere
    try:
        kiosk.wait_for_log("out of order: cannot write the state")
        shot = kiosk.picture()
        shot.save(small_disk.parent / "full-disk.png")
        assert "laitteen muisti on t" in ocr_text(shot), "the customer is told, in Finnish"
        assert kiosk.alive()
        filler.unlink()
        kiosk.wait_for_log("usable again", timeout=30)
        rows = tap_one(kiosk, screen, 2)
    finally:
        kiosk.stop()
    assert [r["display"] for r in rows] == ["A001", "A002"]


# -- 9. the installed appliance before pairing ------------------------------------------


def test_the_installed_appliance_says_it_is_not_set_up_until_paired(screen, tmp_path):
    """The shipped /etc/vuoro/kiosk.toml (mode = "paired") prints nothing pointing at
    127.0.0.1 before pairing; once a technician pairs it, the server's services come."""
    shipped = (Path(__file__).resolve().parent.parent / "systemd" / "kiosk.toml").read_text()
    config = tmp_path / "kiosk.toml"
    config.write_text(
        shipped.replace('backend = "usb"', 'backend = "emulator"\nout = "printed"')
        .replace("kiosk_mode = true", "kiosk_mode = false")
        .replace("require_time_sync = true", "require_time_sync = false"),
        encoding="utf-8",
    )
    state = tmp_path / "kiosk"
    kiosk = Kiosk(screen, state, config)
    try:
        words = ocr_text(kiosk.picture())
        assert "not set up yet" in words, words
        screen.click(*button_center(0, 3))
        screen.key("1")
        unpaired = kiosk.caught_up()  # the tap and the key are handled
        assert kiosk.tickets() == [], "no ticket before pairing"
        assert unpaired["screen"] == "home", "no ticket under way"
        server = Server(tmp_path / "server" / "server.db")
        try:
            server.load_branch(_branch_at(server, tmp_path))
            server.pair(state, "door")
            kiosk.wait_for_log("paired: taking the server's services", timeout=30)
            kiosk.until(
                lambda s: any(b["class"] == "ServiceButton" for b in s["buttons"]),
                "the server's services on screen",
            )
            screen.key("1")
            row = kiosk.wait_for_tickets(1, ("printed",))[0]
        finally:
            server.stop()
    finally:
        kiosk.stop()
    assert row["display"] == "A001"
    with Image.open(_png(state, "A001")) as paper:
        codes = [code.text for code in zxingcpp.read_barcodes(paper)]
    assert codes == [f"{server.url}/t/{row['public_token']}"], "the QR opens the server's page"


def _branch_at(server, tmp_path: Path) -> Path:
    branch = tmp_path / "branch.toml"
    branch.write_text(
        DEMO_BRANCH.read_text(encoding="utf-8").replace("http://127.0.0.1:8000", server.url),
        encoding="utf-8",
    )
    return branch
